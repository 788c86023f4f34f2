//! `dce`: removes the nodes that no output depends on.
//!
//! Roots are the graph's outputs, its inputs (the step's interface stays
//! the same whatever is read), the KV caches and every op that writes one
//! (their effect is read by later steps, not by this step's outputs).
//! Everything a root reaches backwards through operand edges, data or
//! `after`, is kept; the rest goes, unread weights included.
//!
//! Preserves: outputs, inputs, the KV cache and its writers, and every
//! value they depend on, unchanged.

use std::collections::BTreeSet;

use crate::ir::{Graph, NodeId, Op};

use super::rewrite::writes_state;
use super::PassError;

/// Removes every node no root depends on.
pub fn run(g: &mut Graph) -> Result<(), PassError> {
    let live = live_nodes(g);
    let dead: Vec<NodeId> = g.node_ids().filter(|id| !live.contains(id)).collect();
    for id in dead {
        tracing::debug!(node = ?id, name = %g.node(id).name, "dce");
        g.remove(id);
    }
    Ok(())
}

/// The roots and everything they read, transitively.
fn live_nodes(g: &Graph) -> BTreeSet<NodeId> {
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|(_, id)| *id).collect();
    stack.extend(g.node_ids().filter(|&id| {
        let op = &g.node(id).op;
        matches!(op, Op::Input(_) | Op::KvCache { .. }) || writes_state(op)
    }));
    let mut live = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if live.insert(id) {
            stack.extend(g.operands(id).into_iter().map(|(_, src)| src));
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Node, Role, TensorType};
    use crate::passes::test_graph::{build, Tiny};

    #[test]
    fn a_value_nothing_reads_is_removed_with_its_private_operands() {
        let (mut g, [tokens, ..]) = build(&Tiny::llama());
        let before = g.node_count();
        let w = g.add(
            Node::new(
                Op::Weight {
                    name: "unused".into(),
                },
                TensorType::f32(vec![]),
                "unused",
            ),
            &[],
        );
        g.add(
            Node::new(Op::Embed, TensorType::f32(vec![]), "dead"),
            &[(Role::Table, w), (Role::Tokens, tokens)],
        );
        run(&mut g).unwrap();
        assert_eq!(g.node_count(), before);
    }

    #[test]
    fn the_canonical_graph_has_nothing_dead() {
        let (mut g, _) = build(&Tiny::qwen2());
        let before = g.node_count();
        run(&mut g).unwrap();
        assert_eq!(g.node_count(), before);
    }

    #[test]
    fn a_kv_store_nobody_reads_is_kept() {
        let (mut g, _) = build(&Tiny::llama());
        let store = g
            .node_ids()
            .find(|&id| matches!(g.node(id).op, Op::KvStore { .. }))
            .unwrap();
        let att = g.users(store)[0].0;
        // Cut the attention off from the logits: it dies, the store it read stays.
        let (user, operand) = g.users(att)[0];
        g.disconnect(user, operand);
        run(&mut g).unwrap();
        assert!(g.contains(store));
        assert!(!g.contains(att));
    }

    #[test]
    fn inputs_stay_even_when_unread() {
        let (mut g, [.., rows]) = build(&Tiny::llama());
        let gather = g.users(rows)[0].0;
        g.remove(gather);
        run(&mut g).unwrap();
        assert!(g.contains(rows));
    }
}
