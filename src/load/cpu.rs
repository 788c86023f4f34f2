//! From a GGUF path to a model ready to generate on the CPU: open, build
//! the graph, run the passes, plan memory, make the executor.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::model::{LoadError, LoadedModel};
use super::options::{kv_pool_pages, plan_env, LoadOptions};
use crate::exec::cpu_model::CpuModel;
use crate::exec::kv_pages::PAGE_SIZE;
use crate::exec::session::Session;
use crate::frontend;
use crate::gguf::GgufFile;
use crate::passes;
use crate::tokenizer::Tokenizer;

/// Opens `path` and compiles it for the CPU (an artifact from `rfc
/// compile` is loaded as compiled).
pub fn load_cpu(path: &Path, opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let t0 = Instant::now();
    let file = Arc::new(GgufFile::open(path)?);
    if crate::artifact::is_artifact(&file) {
        return super::cpu_artifact::load_cpu_artifact(file, opts, false, &crate::artifact::Silent);
    }
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let (config, graph) = frontend::build_graph_for(&file, opts.context)?;
    let env = plan_env(opts, config.context_length);
    let compiled = passes::compile(graph, env)?;
    let pool = kv_pool_pages(opts.kv_pages, &compiled.plan.env);
    let model = CpuModel::new(file.clone(), compiled.graph, compiled.plan, PAGE_SIZE)?
        .with_kv(opts.kv_types, pool)?;
    Ok(LoadedModel {
        file,
        config,
        tokenizer,
        session: Session::new(model),
        load_time: t0.elapsed(),
    })
}
