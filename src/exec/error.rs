//! Errors of executing a compiled model.

/// What can go wrong while running a model.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    #[error("{tokens} tokens do not fit the context of {context} tokens")]
    ContextOverflow { tokens: usize, context: usize },
    #[error("KV cache full: {needed_tokens} tokens need more than the {free_pages} free pages of {page_size} tokens")]
    KvCacheFull {
        needed_tokens: usize,
        free_pages: usize,
        page_size: usize,
    },
    #[error("a step of {tokens} tokens exceeds the plan's limit of {limit}")]
    StepTooLarge { tokens: usize, limit: usize },
    #[error("{what}: {found} exceeds the plan's limit of {limit}")]
    PlanLimit {
        what: &'static str,
        found: usize,
        limit: usize,
    },
    #[error("weight {name:?}: {reason}")]
    Weight { name: String, reason: String },
    #[error("node {node} ({kind}): {reason}")]
    Unsupported {
        node: String,
        kind: &'static str,
        reason: String,
    },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    BadToken { id: i64, vocab: usize },
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Kernel(#[from] super::cpu::KernelError),
    #[error(transparent)]
    Gpu(#[from] super::gpu_model::GpuError),
}
