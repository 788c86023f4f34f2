//! Errors of the GPU executor: the driver layer's and code generation's,
//! plus what the executor itself refuses (a graph it cannot map to kernels).

use crate::backend::BackendError;
use crate::codegen::CodegenError;
use crate::exec::ExecError;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// A driver call, allocation, copy or launch failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A kernel could not be specialized or compiled.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// A node of the compiled graph has no GPU mapping (yet).
    #[error("node {node} ({kind}) cannot run on the GPU: {reason}")]
    Unsupported {
        node: String,
        kind: &'static str,
        reason: String,
    },
    /// Device argmax found no number in a row of logits.
    #[error("the logits of output row {row} are all NaN")]
    NanLogits { row: usize },
}

impl From<BackendError> for ExecError {
    fn from(e: BackendError) -> Self {
        ExecError::Gpu(GpuError::Backend(e))
    }
}

impl From<CodegenError> for ExecError {
    fn from(e: CodegenError) -> Self {
        ExecError::Gpu(GpuError::Codegen(e))
    }
}
