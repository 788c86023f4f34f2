//! An artifact compiled for a GPU target to a model on that GPU: the stored
//! IR and plan restored as for the CPU, the weights read from the mapped
//! file, and every kernel loaded from its stored code object with the
//! driver (`cuModuleLoadData` / `hipModuleLoadData`). The runtime compiler
//! (NVRTC / hiprtc) is never loaded: a missing code object or a device of
//! another architecture is an error, never a compile.

use std::sync::Arc;
use std::time::Instant;

use super::device::require_f16_cache;
use super::model::{LoadError, LoadedModel};
use super::options::{kv_pool_pages, LoadOptions};
use crate::artifact::kernels::require_stored;
use crate::artifact::progress::Progress;
use crate::artifact::Artifact;
use crate::backend::Gpu;
use crate::codegen::plan::PlanOptions;
use crate::codegen::KernelCache;
use crate::exec::any_backend::AnyBackend;
use crate::exec::gpu_model::GpuModel;
use crate::exec::session::Session;
use crate::exec::ExecError;
use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

/// Loads the artifact `file` onto `gpu`, whose architecture must be the
/// artifact's target; with `verify`, every weight's checksum is checked
/// first.
pub fn load_gpu_artifact(
    file: Arc<GgufFile>,
    opts: &LoadOptions,
    gpu: &Arc<Gpu>,
    verify: bool,
    progress: &dyn Progress,
) -> Result<LoadedModel<AnyBackend>, LoadError> {
    let t0 = Instant::now();
    let artifact = Artifact::from_file(file.clone())?;
    artifact.target.require_device(gpu.info())?;
    require_f16_cache(opts)?;
    super::cpu_artifact::check_weights(&artifact, opts, verify, progress)?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let config = artifact.model_config()?;
    let (graph, plan) = artifact.graph_and_plan()?;
    super::cpu_artifact::warn_if_limited(opts, config.context_length, &artifact);
    let page_size = artifact.plan.page_size as usize;
    let stored = artifact.kernels()?;
    let plan_opts = PlanOptions {
        page_size: page_size as u32,
        vendor: gpu.vendor(),
        kv: opts.kv_types,
    };
    require_stored(&graph, &plan_opts, &stored)?;
    let t = Instant::now();
    let cache = KernelCache::from_stored(gpu, stored.iter().map(|k| (k.source, k.code)))
        .map_err(ExecError::from)?;
    tracing::info!(
        objects = stored.len(),
        ms = t.elapsed().as_millis() as u64,
        "code objects loaded from the artifact"
    );
    let pool = kv_pool_pages(
        opts.kv_pages.or(artifact.plan.kv_pages.map(|p| p as usize)),
        &plan.env,
    );
    let tuning = artifact.matmul_tuning()?;
    let model = GpuModel::new(
        gpu,
        &file,
        &graph,
        &plan,
        page_size,
        pool,
        opts.kv_types,
        &cache,
        tuning.as_ref(),
        progress,
    )?;
    tracing::info!(ms = t0.elapsed().as_millis() as u64, "GPU artifact loaded");
    Ok(LoadedModel {
        file,
        config,
        tokenizer,
        session: Session::new(AnyBackend::Gpu(model)),
        load_time: t0.elapsed(),
    })
}
