//! From a GGUF path to a model ready to generate on the CPU: open, build
//! the graph, run the passes, plan memory, make the executor.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::any_backend::load;
use super::cpu::KvType;
use super::cpu_model::CpuModel;
use super::session::{Session, StepBackend};
use crate::frontend::{self, ModelConfig};
use crate::gguf::GgufFile;
use crate::ir::DimEnv;
use crate::passes;
use crate::tokenizer::Tokenizer;

/// Tokens per KV-cache page.
pub const PAGE_SIZE: usize = 16;

/// The limits a model is compiled for.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Tokens per step (prefill chunk).
    pub max_tokens: usize,
    /// Logit rows per step: 1 for generation, `max_tokens` for perplexity.
    pub max_rows: usize,
    /// Context length (capped by the model's own).
    pub context: usize,
    /// Element type of the KV cache (f16 like llama.cpp, or exact f32).
    pub kv_type: KvType,
    /// Sequences one step may hold (the server's parallel slots).
    pub max_seqs: usize,
    /// Pages in the KV pool; `None`: every sequence its whole context
    /// (`context / PAGE_SIZE × max_seqs`).
    pub kv_pages: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_tokens: 512,
            max_rows: 1,
            context: 4096,
            kv_type: KvType::F16,
            max_seqs: 1,
            kv_pages: None,
        }
    }
}

/// What can stop a model from loading.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Frontend(#[from] crate::frontend::FrontendError),
    #[error(transparent)]
    Pass(#[from] crate::passes::PassError),
    #[error(transparent)]
    Exec(#[from] super::ExecError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error(transparent)]
    Artifact(#[from] crate::artifact::ArtifactError),
}

/// A model on a backend (the CPU unless named) with its tokenizer.
pub struct LoadedModel<B: StepBackend = CpuModel> {
    pub file: Arc<GgufFile>,
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub session: Session<B>,
    pub load_time: Duration,
}

/// The step sizes for `opts` on a model whose own context is `model_ctx`.
pub fn plan_env(opts: &LoadOptions, model_ctx: usize) -> DimEnv {
    let context = if model_ctx > 0 {
        opts.context.min(model_ctx)
    } else {
        opts.context
    };
    let pages = context.div_ceil(PAGE_SIZE) as u64;
    DimEnv {
        tokens: opts.max_tokens as u64,
        rows: opts.max_rows as u64,
        seqs: opts.max_seqs.max(1) as u64,
        pages,
        kv_len: pages * PAGE_SIZE as u64,
    }
}

/// Pages in the KV pool for a plan made for `env`: `kv_pages` where given
/// (at least one sequence's whole context is not required: a server may
/// hold less and preempt), else every sequence its whole context.
pub fn kv_pool_pages(kv_pages: Option<usize>, env: &DimEnv) -> usize {
    kv_pages.unwrap_or((env.pages * env.seqs) as usize).max(1)
}

/// Opens `path` and compiles it for the CPU (an artifact from `rfc
/// compile` is loaded as compiled).
pub fn load_cpu(path: &Path, opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let t0 = Instant::now();
    let file = Arc::new(GgufFile::open(path)?);
    if crate::artifact::is_artifact(&file) {
        return crate::artifact::load_cpu_artifact(file, opts, false, &crate::artifact::Silent);
    }
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let (config, graph) = frontend::build_graph(&file)?;
    let env = plan_env(opts, config.context_length);
    let compiled = passes::compile(graph, env)?;
    let pool = kv_pool_pages(opts.kv_pages, &compiled.plan.env);
    let model = CpuModel::new(file.clone(), compiled.graph, compiled.plan, PAGE_SIZE)?
        .with_kv_type(opts.kv_type)
        .with_kv_pages(pool);
    Ok(LoadedModel {
        file,
        config,
        tokenizer,
        session: Session::new(model),
        load_time: t0.elapsed(),
    })
}
