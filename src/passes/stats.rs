//! Counts that describe a graph's cost per decoded token: ops by kind,
//! kernel launches, weight bytes read.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ir::{DimEnv, Graph, Op, Role};

/// What one decoded token costs under a graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphStats {
    pub nodes: usize,
    /// Nodes by op kind.
    pub ops: BTreeMap<&'static str, usize>,
    /// Ops that launch a kernel, each once per step.
    pub launches_per_token: usize,
    /// Launching ops in each decoder layer (layer index -> count).
    pub launches_by_layer: BTreeMap<u32, usize>,
    /// The most launching ops of any one layer.
    pub ops_per_layer: usize,
    /// Bytes of weights read for one token: every weight another op than
    /// `embed` reads, in full, plus one row of the embedding table; of an
    /// experts op's 3-D weights only the token's top-k experts.
    pub weight_bytes_per_token: u64,
    /// Bytes of every weight the graph reads, all experts included (equal
    /// to the above, less the embedding table, for a dense model).
    pub weight_bytes_stored: u64,
}

/// The stats of `g`.
pub fn stats(g: &Graph) -> GraphStats {
    let mut ops = BTreeMap::new();
    let mut launches_by_layer = BTreeMap::new();
    let mut launches = 0;
    for id in g.node_ids() {
        let node = g.node(id);
        *ops.entry(node.op.kind()).or_insert(0) += 1;
        if node.op.is_launch() {
            launches += 1;
            if let Some(l) = node.layer {
                *launches_by_layer.entry(l).or_insert(0) += 1;
            }
        }
    }
    GraphStats {
        nodes: g.node_count(),
        ops,
        launches_per_token: launches,
        ops_per_layer: launches_by_layer.values().copied().max().unwrap_or(0),
        launches_by_layer,
        weight_bytes_per_token: weight_bytes_per_token(g),
        weight_bytes_stored: weight_bytes_stored(g),
    }
}

/// Bytes of every weight node (see [`GraphStats::weight_bytes_stored`]).
pub fn weight_bytes_stored(g: &Graph) -> u64 {
    let env = DimEnv::default();
    g.node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Weight { .. }))
        .map(|id| g.node(id).ty.bytes(&env))
        .sum()
}

/// The share of a weight one token reads when `user` reads it: `top_k` of
/// `n_expert` experts for an experts op's 3-D weight, else all of it, as
/// (numerator, denominator).
fn share_read(g: &Graph, user: crate::ir::NodeId, weight: crate::ir::NodeId) -> (u64, u64) {
    if !matches!(g.node(user).op, Op::Experts(_)) {
        return (1, 1);
    }
    let experts = g.node(weight).ty.shape.first().and_then(|d| d.fixed());
    let k = g
        .operand(user, Role::Route)
        .and_then(|r| g.node(r).ty.last().and_then(|d| d.fixed()))
        .map(|cols| cols / 2);
    match (k, experts) {
        (Some(k), Some(e)) if e > 0 && k <= e => (k, e),
        _ => (1, 1),
    }
}

/// Weight bytes one token reads (see [`GraphStats::weight_bytes_per_token`]).
pub fn weight_bytes_per_token(g: &Graph) -> u64 {
    let env = DimEnv::default();
    g.node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Weight { .. }))
        .map(|id| {
            let ty = &g.node(id).ty;
            let users = g.users(id);
            let is_table = |&(u, o): &(_, crate::ir::Operand)| {
                o.role == Role::Table && g.node(u).op == Op::Embed
            };
            let rows = ty.shape.first().map_or(1, |d| d.eval(&env).max(1));
            let row = if users.iter().any(is_table) {
                ty.bytes(&env) / rows
            } else {
                0
            };
            // The largest share any reader takes (a weight read whole by
            // one op is read whole, whatever an experts op reads of it).
            let share = users
                .iter()
                .filter(|u| !is_table(u))
                .map(|&(u, _)| share_read(g, u, id))
                .max_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)));
            let full = share.map_or(0, |(num, den)| ty.bytes(&env) * num / den);
            row + full
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::test_graph::{build, Tiny};
    use crate::passes::{run_until, PASSES};

    #[test]
    fn fusion_leaves_five_launches_a_layer_and_three_around() {
        let (g, _) = build(&Tiny::llama());
        let s = stats(&run_until(g, "dce").unwrap());
        assert_eq!(s.ops_per_layer, 5);
        assert_eq!(s.launches_per_token, 2 * 5 + 3);
    }

    #[test]
    fn the_unfused_qwen2_layer_is_twenty_launches() {
        let (g, _) = build(&Tiny::qwen2());
        // norm, 3 matmuls, 3 bias adds, 2 ropes, kv_store, attention, o, add,
        // norm, gate, up, silu, mul, down, add
        assert_eq!(stats(&g).ops_per_layer, 20);
    }

    #[test]
    fn weight_bytes_are_the_same_after_every_pass() {
        for m in [Tiny::llama(), Tiny::qwen2()] {
            let (g, _) = build(&m);
            let before = weight_bytes_per_token(&g);
            for p in PASSES {
                let after = weight_bytes_per_token(&run_until(g.clone(), p.name).unwrap());
                assert_eq!(after, before, "{}", p.name);
            }
        }
    }

    #[test]
    fn the_embedding_costs_one_row_and_a_tied_output_the_whole_table() {
        let m = Tiny::llama();
        let (g, _) = build(&m);
        let table = g
            .node_ids()
            .find(|&id| g.node(id).name == "token_embd.weight")
            .unwrap();
        let full = g.node(table).ty.bytes(&DimEnv::default());
        let tied = weight_bytes_per_token(
            &build(&Tiny {
                tied: true,
                ..m.clone()
            })
            .0,
        );
        let untied = weight_bytes_per_token(&g);
        let output = m.vocab * m.d / 256 * 210; // output.weight is Q6_K
                                                // tied: the table in full for the logits plus a row for the embedding
        assert_eq!(tied + output, untied + full);
    }
}
