//! `qkv_concat`: the query, key and value projections of one attention
//! become one matmul over the concatenated weights.
//!
//! Matched from the attention backwards, so the order of the segments is
//! known to be [Wq, Wk, Wv]:
//!
//! ```text
//! attention(q = rope(q'), kv = kv_store(k = rope(k'), v = v'))
//!   where q', k', v' = matmul(x=h, w=W·)  or  add(a=matmul(x=h, w=W·), b=bias·)
//! ```
//!
//! becomes `qkv = matmul(x=h, w=[Wq,Wk,Wv])` (with epilogue `Bias` and
//! operands bias=[bq,bk,bv], index i belonging to W[i], when biases exist),
//! and q', k', v' become `slice` views of its columns.
//!
//! **Segments keep their own quant types.** In the real model
//! (Qwen2.5-Coder-0.5B Q4_K_M) attn_q and attn_k are Q5_0 in every layer while
//! attn_v is Q8_0 in 12 layers and Q5_0 in the other 12. Concatenating the
//! rows into one tensor of one type would mean requantizing, which changes
//! the model's numbers (and its bytes). Instead the matmul carries a list of
//! weight segments and the kernel walks it: one launch, every weight read
//! once, in its file type, with no copy. The weight bytes read per token are
//! unchanged by this pass; the launches per token drop by two per layer, and
//! by three more where the biases move into the epilogue.
//!
//! Preserves: every value the rest of the graph reads (q', k', v' are the
//! same columns, now views), all weights and their bytes, the outputs.

use crate::ir::{Epilogue, Graph, MatMulOp, Node, NodeId, Op, Operand, Role, TensorType};

use super::rewrite::{is_plain_matmul, layer_name, sole_user, sweep, width};
use super::PassError;

/// One projection: the value read downstream (the matmul, or the bias add
/// over it), its matmul, weight and bias.
#[derive(Debug, Clone, Copy)]
struct Projection {
    value: NodeId,
    matmul: NodeId,
    weight: NodeId,
    bias: Option<NodeId>,
    cols: u64,
}

/// Concatenates the q/k/v projections of every attention.
pub fn run(g: &mut Graph) -> Result<(), PassError> {
    let attentions: Vec<NodeId> = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Attention(_)))
        .collect();
    for att in attentions {
        if let Some(found) = match_qkv(g, att) {
            concat(g, found);
        }
    }
    Ok(())
}

/// The q, k, v projections feeding `att`, when they have the canonical form.
fn match_qkv(g: &Graph, att: NodeId) -> Option<[Projection; 3]> {
    let rope_input = |id: NodeId| match g.node(id).op {
        Op::Rope(_) => g.operand(id, Role::X),
        _ => None,
    };
    let q = rope_input(g.operand(att, Role::Q)?)?;
    let store = g.operand(att, Role::Kv)?;
    if !matches!(g.node(store).op, Op::KvStore { .. }) {
        return None;
    }
    let k = rope_input(g.operand(store, Role::K)?)?;
    let v = g.operand(store, Role::V)?;
    let [q, k, v] = [q, k, v].map(|id| projection(g, id));
    let (q, k, v) = (q?, k?, v?);
    let x = g.operand(q.matmul, Role::X)?;
    let same_x = [k, v]
        .iter()
        .all(|p| g.operand(p.matmul, Role::X) == Some(x));
    let distinct = q.matmul != k.matmul && k.matmul != v.matmul && q.matmul != v.matmul;
    (same_x && distinct).then_some([q, k, v])
}

/// `id` as a plain one-weight matmul, possibly under a bias add, each read
/// only once.
fn projection(g: &Graph, id: NodeId) -> Option<Projection> {
    let (matmul, bias) = match g.node(id).op {
        Op::Add => {
            let mm = g.operand(id, Role::A)?;
            let b = g.operand(id, Role::B)?;
            let is_bias = matches!(g.node(b).op, Op::Weight { .. }) && g.node(b).ty.rank() == 1;
            (is_bias && sole_user(g, mm)?.0 == id).then_some((mm, Some(b)))?
        }
        Op::MatMul(_) => (id, None),
        _ => return None,
    };
    if !is_plain_matmul(g, matmul) || sole_user(g, id).is_none() {
        return None;
    }
    Some(Projection {
        value: id,
        matmul,
        weight: g.operand(matmul, Role::W)?,
        bias,
        cols: width(g, matmul)?,
    })
}

/// Replaces the three projections by one matmul and three slices of it.
fn concat(g: &mut Graph, p: [Projection; 3]) {
    let first = g.node(p[0].matmul).clone();
    let x = g
        .operand(p[0].matmul, Role::X)
        .expect("matched a matmul with an input");
    let total: u64 = p.iter().map(|s| s.cols).sum();
    let mut shape = first.ty.shape.clone();
    *shape.last_mut().expect("a matmul result has rank >= 1") = crate::ir::Dim::Fixed(total);
    let has_bias = p.iter().any(|s| s.bias.is_some());
    let op = Op::MatMul(MatMulOp {
        prologue: None,
        epilogue: if has_bias {
            vec![Epilogue::Bias]
        } else {
            vec![]
        },
    });
    let name = layer_name(first.layer, "qkv");
    let mut node = Node::new(op, TensorType::new(first.ty.dtype, shape), name);
    node.layer = first.layer;
    let ws: Vec<(Role, NodeId)> = p.iter().map(|s| (Role::W, s.weight)).collect();
    let qkv = g.add(node, &[&[(Role::X, x)], ws.as_slice()].concat());
    for (i, s) in p.iter().enumerate() {
        if let Some(b) = s.bias {
            g.connect_at(
                b,
                qkv,
                Operand {
                    role: Role::Bias,
                    index: i as u8,
                },
            );
        }
    }
    let mut start = 0;
    for (s, name) in p.iter().zip(["q", "k", "v"]) {
        let mut view = Node::new(
            Op::Slice { start, len: s.cols },
            g.node(s.value).ty.clone(),
            layer_name(first.layer, name),
        );
        view.layer = first.layer;
        let slice = g.add(view, &[(Role::X, qkv)]);
        g.replace_all_uses(s.value, slice);
        start += s.cols;
    }
    sweep(g, p.iter().map(|s| s.value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::test_graph::{build, Tiny};

    fn count(g: &Graph, kind: &str) -> usize {
        g.node_ids()
            .filter(|&id| g.node(id).op.kind() == kind)
            .count()
    }

    #[test]
    fn three_projections_become_one_matmul_per_layer() {
        let (mut g, _) = build(&Tiny::llama());
        run(&mut g).unwrap();
        // two layers' qkv + o + gate + up + down, and the logits
        assert_eq!(count(&g, "matmul"), 2 * 5 + 1);
        assert_eq!(count(&g, "slice"), 2 * 3);
    }

    #[test]
    fn segments_are_q_k_v_in_order_with_their_own_types() {
        let m = Tiny::qwen2();
        let (mut g, _) = build(&m);
        run(&mut g).unwrap();
        let qkv = g
            .node_ids()
            .find(|&id| g.node(id).name == "blk.0.qkv")
            .unwrap();
        let names: Vec<String> = g
            .operand_list(qkv, Role::W)
            .iter()
            .map(|&w| g.node(w).name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "blk.0.attn_q.weight",
                "blk.0.attn_k.weight",
                "blk.0.attn_v.weight"
            ]
        );
        let types: Vec<_> = g
            .operand_list(qkv, Role::W)
            .iter()
            .map(|&w| g.node(w).ty.dtype)
            .collect();
        assert_eq!(types, m.qkv_types);
        assert_eq!(g.node(qkv).ty.to_string(), "f32[T,128]");
    }

    #[test]
    fn biases_move_into_the_epilogue_aligned_with_their_weights() {
        let (mut g, _) = build(&Tiny::qwen2());
        run(&mut g).unwrap();
        assert_eq!(count(&g, "add"), 2 * 2, "only the residual adds remain");
        let qkv = g
            .node_ids()
            .find(|&id| g.node(id).name == "blk.0.qkv")
            .unwrap();
        let Op::MatMul(m) = &g.node(qkv).op else {
            panic!()
        };
        assert_eq!(m.epilogue, vec![Epilogue::Bias]);
        let biases: Vec<String> = g
            .operand_list(qkv, Role::Bias)
            .iter()
            .map(|&b| g.node(b).name.clone())
            .collect();
        assert_eq!(
            biases,
            [
                "blk.0.attn_q.bias",
                "blk.0.attn_k.bias",
                "blk.0.attn_v.bias"
            ]
        );
    }

    #[test]
    fn slices_cover_q_then_k_then_v_columns() {
        let (mut g, _) = build(&Tiny::llama());
        run(&mut g).unwrap();
        let mut slices: Vec<(String, u64, u64)> = g
            .node_ids()
            .filter(|&id| g.node(id).layer == Some(1))
            .filter_map(|id| match g.node(id).op {
                Op::Slice { start, len } => Some((g.node(id).name.clone(), start, len)),
                _ => None,
            })
            .collect();
        slices.sort();
        assert_eq!(
            slices,
            [
                ("blk.1.k".into(), 64, 32),
                ("blk.1.q".into(), 0, 64),
                ("blk.1.v".into(), 96, 32)
            ]
        );
    }

    #[test]
    fn a_projection_read_twice_is_left_alone() {
        let (mut g, _) = build(&Tiny::llama());
        let v = g
            .node_ids()
            .find(|&id| g.node(id).name == "blk.0.v")
            .unwrap();
        let extra = g.add(
            Node::new(Op::Silu, g.node(v).ty.clone(), "extra"),
            &[(Role::X, v)],
        );
        g.set_output("extra", extra);
        run(&mut g).unwrap();
        assert_eq!(count(&g, "slice"), 3, "only layer 1 is concatenated");
    }
}
