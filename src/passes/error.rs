//! Errors of the passes and the pass manager.

use thiserror::Error;

use crate::ir::NodeId;

#[derive(Debug, Error)]
pub enum PassError {
    #[error("unknown pass `{0}` (known: qkv_concat, fuse, dce, plan_memory)")]
    UnknownPass(String),
    #[error("the graph is invalid after pass `{pass}`: {source}")]
    Invalid {
        pass: &'static str,
        source: crate::ir::verify::VerifyError,
    },
    #[error("the graph has a cycle through node {0:?}")]
    Cycle(NodeId),
    #[error("the pipeline ended without a memory plan")]
    NoPlan,
}
