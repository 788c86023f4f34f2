//! What can go wrong specializing a kernel.

use thiserror::Error;

use crate::backend::BackendError;

#[derive(Debug, Error)]
pub enum CodegenError {
    /// The op's shape or options are outside what the templates cover.
    #[error("{kernel}: unsupported: {reason}")]
    Unsupported { kernel: String, reason: String },

    /// A graph node lacks an operand its kernel needs, or has a wrong type.
    #[error("node {node}: {reason}")]
    BadNode { node: String, reason: String },

    #[error("unknown target {0:?} (expected sm_NN or gfxNNNN)")]
    UnknownTarget(String),

    /// A well-formed name no compiler is known to take (runtime compilers
    /// may abort the process on one, so it is refused before they see it).
    #[error("unknown {vendor} architecture {arch:?}; known: {known}")]
    UnknownArch {
        arch: String,
        vendor: &'static str,
        known: String,
    },

    /// Compiling, caching or loading failed (compile errors carry the log).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

pub(crate) fn unsupported(kernel: &str, reason: impl Into<String>) -> CodegenError {
    CodegenError::Unsupported {
        kernel: kernel.to_string(),
        reason: reason.into(),
    }
}
