//! Facts every executor reads off a compiled graph, and the error that
//! names a node it cannot run.

use super::ExecError;
use crate::ir::{Dim, Graph, NodeId};

/// An `Unsupported` error naming node `id`.
pub(crate) fn unsupported(graph: &Graph, id: NodeId, reason: impl Into<String>) -> ExecError {
    let n = graph.node(id);
    ExecError::Unsupported {
        node: n.name.clone(),
        kind: n.op.kind(),
        reason: reason.into(),
    }
}

/// The (fixed) size of `id`'s last dim: its row length.
pub(crate) fn fixed_cols(graph: &Graph, id: NodeId) -> Result<usize, ExecError> {
    graph
        .node(id)
        .ty
        .last()
        .and_then(Dim::fixed)
        .map(|c| c as usize)
        .ok_or_else(|| unsupported(graph, id, "the last dim must be fixed"))
}
