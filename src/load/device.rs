//! [`load`] compiles a GGUF file for the device a [`DeviceSpec`] names
//! (`--device auto|cpu|hip[:N]|cuda[:N]`).
//!
//! `auto` takes a GPU when one opens and the model compiles for it, else
//! the CPU; the reason is kept in [`AnyBackend::describe`] for the CLI to
//! print, and logged. An artifact from `rfc compile` decides by its target:
//! a CPU artifact runs on the CPU, a GPU artifact on a device of its
//! architecture with its stored code objects (no kernel compiler loaded).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::cpu::load_cpu;
use super::model::{LoadError, LoadedModel};
use super::options::{kv_pool_pages, plan_env, LoadOptions};
use crate::artifact::ArtifactTarget;
use crate::backend::{BackendError, Device, DeviceSpec, Gpu, Vendor};
use crate::codegen::KernelCache;
use crate::exec::any_backend::AnyBackend;
use crate::exec::cpu::KvType;
use crate::exec::cpu_model::CpuModel;
use crate::exec::gpu_model::GpuModel;
use crate::exec::kv_pages::PAGE_SIZE;
use crate::exec::session::Session;
use crate::exec::ExecError;
use crate::frontend;
use crate::gguf::GgufFile;
use crate::passes;
use crate::tokenizer::Tokenizer;

/// Opens `path` and compiles it for the device `spec` names.
pub fn load(
    path: &Path,
    opts: &LoadOptions,
    spec: DeviceSpec,
) -> Result<LoadedModel<AnyBackend>, LoadError> {
    load_with(path, opts, spec, false)
}

/// [`load`]; with `verify`, a GPU artifact's weights are checked against
/// their stored checksums first (a CPU artifact's: `load_cpu_verified`).
pub fn load_with(
    path: &Path,
    opts: &LoadOptions,
    spec: DeviceSpec,
    verify: bool,
) -> Result<LoadedModel<AnyBackend>, LoadError> {
    // An artifact's target decides the device before any is opened: a CPU
    // artifact loads no GPU runtime, a GPU artifact no kernel compiler.
    let target = crate::artifact::peek_target(path);
    match (spec, target) {
        (DeviceSpec::Cpu, _) => load_on_cpu(path, opts, "asked for".into()),
        (DeviceSpec::Auto, Some(ArtifactTarget::Cpu)) => {
            load_on_cpu(path, opts, "a CPU artifact".into())
        }
        (spec, Some(t @ ArtifactTarget::Gpu(_))) => {
            load_artifact_on_gpu(path, opts, spec, &t, verify)
        }
        (DeviceSpec::Gpu { vendor, ordinal }, Some(ArtifactTarget::Cpu)) => {
            Err(ArtifactTarget::Cpu
                .require_vendor(vendor, &format!("{vendor}:{ordinal}"))
                .expect_err("a CPU artifact runs on no GPU")
                .into())
        }
        (DeviceSpec::Gpu { .. }, None) => {
            let Device::Gpu(gpu) = Device::open(spec).map_err(ExecError::from)? else {
                unreachable!("a GPU spec opens a GPU or fails")
            };
            load_gpu(path, opts, &gpu)
        }
        (DeviceSpec::Auto, None) => {
            let gpu = match first_gpu() {
                Ok(g) => g,
                Err(why) => return load_on_cpu(path, opts, format!("auto: no GPU: {why}")),
            };
            match load_gpu(path, opts, &gpu) {
                Ok(m) => Ok(m),
                Err(e) => {
                    let why = format!("auto: {} did not take the model: {e}", gpu.info().name);
                    tracing::warn!("{why}");
                    load_on_cpu(path, opts, why)
                }
            }
        }
    }
}

/// A GPU artifact on the device `spec` names (`auto`: device 0 of the
/// artifact's vendor), opened without its runtime compiler.
fn load_artifact_on_gpu(
    path: &Path,
    opts: &LoadOptions,
    spec: DeviceSpec,
    target: &ArtifactTarget,
    verify: bool,
) -> Result<LoadedModel<AnyBackend>, LoadError> {
    let (vendor, ordinal) = match (spec, target) {
        (DeviceSpec::Gpu { vendor, ordinal }, _) => {
            target.require_vendor(vendor, &format!("{vendor}:{ordinal}"))?;
            (vendor, ordinal)
        }
        (_, ArtifactTarget::Gpu(t)) => (t.vendor(), 0),
        (_, ArtifactTarget::Cpu) => unreachable!("only GPU artifacts come here"),
    };
    // `auto` has no CPU to fall back to: the artifact holds no CPU plan.
    let gpu = Gpu::open(vendor, ordinal).map_err(|e| match spec {
        DeviceSpec::Auto => LoadError::Artifact(crate::artifact::ArtifactError::NotForDevice {
            artifact: target.to_string(),
            asked: "auto".into(),
            hint: format!(
                "it needs a {vendor} device ({}); run the GGUF, or compile it with --target cpu",
                short(&e)
            ),
        }),
        _ => LoadError::Exec(e.into()),
    })?;
    let file = Arc::new(GgufFile::open(path)?);
    super::gpu_artifact::load_gpu_artifact(file, opts, &gpu, verify, &crate::artifact::Silent)
}

/// A GPU artifact stores the kernels of an f16 KV cache (`rfc compile`
/// fixes no other): another type of keys or values is refused, naming it.
/// (A GGUF file on the GPU compiles its kernels for any cache type.)
pub fn require_f16_cache(opts: &LoadOptions) -> Result<(), LoadError> {
    let t = opts.kv_types;
    let (what, ty) = match (t.k, t.v) {
        (KvType::F16, KvType::F16) => return Ok(()),
        (k, v) if k == v => ("keys and values", k),
        (KvType::F16, v) => ("values", v),
        (k, _) => ("keys", k),
    };
    Err(LoadError::Exec(ExecError::Unsupported {
        node: "kv_cache".into(),
        kind: "kv_cache",
        reason: format!(
            "a GPU artifact holds the kernels of an f16 KV cache; {ty} {what} (--cache-type{}) \
             need the GGUF file (its kernels are compiled at load) or --device cpu",
            match what {
                "keys" => "-k",
                "values" => "-v",
                _ => "",
            }
        ),
    }))
}

/// CUDA device 0, else HIP device 0 (a GPU counts only if its runtime
/// compiler loads too); the reasons for each when neither works.
fn first_gpu() -> Result<Arc<Gpu>, String> {
    let mut reasons = Vec::new();
    for vendor in [Vendor::Cuda, Vendor::Hip] {
        let opened: Result<Arc<Gpu>, BackendError> =
            Gpu::open(vendor, 0).and_then(|g| g.compiler().map(|_| g));
        match opened {
            Ok(g) => return Ok(g),
            Err(e) => reasons.push(format!("{vendor}: {}", short(&e))),
        }
    }
    Err(reasons.join("; "))
}

/// The first clause of an error (a library's list of tried paths is
/// left to the logs).
fn short(e: &BackendError) -> String {
    let s = e.to_string();
    match s.find(" (tried ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn load_on_cpu(
    path: &Path,
    opts: &LoadOptions,
    why: String,
) -> Result<LoadedModel<AnyBackend>, LoadError> {
    Ok(on_cpu(load_cpu(path, opts)?, why))
}

/// A model loaded for the CPU as an [`AnyBackend`] model; `why` says how
/// the CPU was chosen.
pub fn on_cpu(m: LoadedModel<CpuModel>, why: String) -> LoadedModel<AnyBackend> {
    tracing::info!("running on the CPU ({why})");
    LoadedModel {
        file: m.file,
        config: m.config,
        tokenizer: m.tokenizer,
        session: Session::new(AnyBackend::Cpu {
            model: m.session.into_backend(),
            why,
        }),
        load_time: m.load_time,
    }
}

/// Opens `path` and compiles it for `gpu`.
pub fn load_gpu(
    path: &Path,
    opts: &LoadOptions,
    gpu: &Arc<Gpu>,
) -> Result<LoadedModel<AnyBackend>, LoadError> {
    let t0 = Instant::now();
    let file = Arc::new(GgufFile::open(path)?);
    if crate::artifact::is_artifact(&file) {
        // A GPU artifact is loaded by `load`; this is a CPU one, or one
        // whose first keys were damaged.
        let artifact = crate::artifact::Artifact::from_file(file.clone())?;
        artifact.target.require_device(gpu.info())?;
    }
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let (config, graph) = frontend::build_graph_for(&file, opts.context)?;
    let compiled = passes::compile(graph, plan_env(opts, config.context_length))?;
    let cache = KernelCache::with_default_dir();
    let model = GpuModel::new(
        gpu,
        &file,
        &compiled.graph,
        &compiled.plan,
        PAGE_SIZE,
        kv_pool_pages(opts.kv_pages, &compiled.plan.env),
        opts.kv_types,
        &cache,
        None,
        &crate::artifact::progress::Bars::new(),
    )?;
    Ok(LoadedModel {
        file,
        config,
        tokenizer,
        session: Session::new(AnyBackend::Gpu(model)),
        load_time: t0.elapsed(),
    })
}
