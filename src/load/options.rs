//! The limits a model is compiled and loaded for: tokens, logit rows and
//! sequences per step, context, the KV cache's element type and pool size.

use crate::exec::cpu::KvTypes;
use crate::exec::kv_pages::PAGE_SIZE;
use crate::ir::DimEnv;

/// The limits a model is compiled for.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Tokens per step (prefill chunk).
    pub max_tokens: usize,
    /// Logit rows per step: 1 for generation, `max_tokens` for perplexity.
    pub max_rows: usize,
    /// Context length (capped by the model's own).
    pub context: usize,
    /// Element types of the KV cache's keys and values (f16 like
    /// llama.cpp, exact f32, bf16, or a block type such as q8_0).
    pub kv_types: KvTypes,
    /// Sequences one step may hold (the server's parallel slots).
    pub max_seqs: usize,
    /// Pages in the KV pool; `None`: every sequence its whole context
    /// (`context / PAGE_SIZE × max_seqs`).
    pub kv_pages: Option<usize>,
    /// Artifacts: skip the fast per-weight checksums every load checks
    /// (`--no-verify`).
    pub skip_weight_check: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_tokens: 512,
            max_rows: 1,
            context: 4096,
            kv_types: KvTypes::both(crate::exec::cpu::KvType::F16),
            max_seqs: 1,
            kv_pages: None,
            skip_weight_check: false,
        }
    }
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
