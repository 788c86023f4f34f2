//! Small queries and edits on a [`Graph`] shared by the rewriting passes.

use std::collections::BTreeSet;

use crate::ir::{Epilogue, Graph, MatMulOp, NodeId, Op, Operand};

/// The matmul payload of `id`, if it is a matmul.
pub fn matmul(g: &Graph, id: NodeId) -> Option<&MatMulOp> {
    match &g.node(id).op {
        Op::MatMul(m) => Some(m),
        _ => None,
    }
}

/// A matmul of one weight with nothing fused yet.
pub fn is_plain_matmul(g: &Graph, id: NodeId) -> bool {
    matmul(g, id).is_some_and(|m| m.prologue.is_none() && m.epilogue.is_empty())
        && g.operand_list(id, crate::ir::Role::W).len() == 1
}

/// A new node's name: `blk.{layer}.{base}` inside a decoder layer, the
/// frontend's convention.
pub fn layer_name(layer: Option<u32>, base: &str) -> String {
    match layer {
        Some(l) => format!("blk.{l}.{base}"),
        None => base.to_string(),
    }
}

/// Whether a graph output names `id`.
pub fn is_output(g: &Graph, id: NodeId) -> bool {
    g.outputs().iter().any(|(_, o)| *o == id)
}

/// The only reader of `id` (one edge, and `id` is not an output).
pub fn sole_user(g: &Graph, id: NodeId) -> Option<(NodeId, Operand)> {
    match g.users(id).as_slice() {
        [one] if !is_output(g, id) => Some(*one),
        _ => None,
    }
}

/// The width (last dim) of `id`'s value when it is fixed.
pub fn width(g: &Graph, id: NodeId) -> Option<u64> {
    g.node(id).ty.last().and_then(|d| d.fixed())
}

/// Whether executing `id` changes state that outlives the step (the KV
/// cache): such ops are kept even when no value of theirs is read.
pub fn writes_state(op: &Op) -> bool {
    match op {
        Op::KvStore { .. } => true,
        Op::MatMul(m) => m
            .epilogue
            .iter()
            .any(|e| matches!(e, Epilogue::KvStore { .. })),
        _ => false,
    }
}

/// Whether `to` can be reached from `from` along operand edges (adding an
/// edge `to -> from` would then close a cycle).
pub fn reaches(g: &Graph, from: NodeId, to: NodeId) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n) {
            stack.extend(g.users(n).into_iter().map(|(u, _)| u));
        }
    }
    false
}

/// Removes the computations among `candidates` (and, transitively, their
/// operands) that nothing reads any more. Inputs, weights, state and ops that
/// write state are left to `dce`, which knows the whole graph's roots.
pub fn sweep(g: &mut Graph, candidates: impl IntoIterator<Item = NodeId>) {
    let mut work: Vec<NodeId> = candidates.into_iter().collect();
    while let Some(id) = work.pop() {
        if !g.contains(id) || !g.users(id).is_empty() || is_output(g, id) {
            continue;
        }
        let op = &g.node(id).op;
        if matches!(op, Op::Input(_) | Op::Weight { .. } | Op::KvCache { .. }) || writes_state(op) {
            continue;
        }
        work.extend(g.operands(id).into_iter().map(|(_, src)| src));
        g.remove(id);
    }
}
