use super::*;
use crate::ir::tensor_type::n;
use crate::ir::{Dim, InputKind, Node, TensorType};
use crate::passes::run_until;
use crate::passes::test_graph::{build, Tiny};

fn env(tokens: u64) -> DimEnv {
    DimEnv {
        tokens,
        ..DimEnv::default()
    }
}

/// tokens -> x = embed -> y = rms_norm(x) -> z = matmul(y) -> out = x + z,
/// every activation f32[T, 64] (1 KiB at T = 4).
fn chain() -> (Graph, [NodeId; 5]) {
    let mut g = Graph::new();
    let act = || TensorType::f32(vec![Dim::Tokens, n(64)]);
    let w = |name: &str, shape: Vec<Dim>| {
        Node::new(
            Op::Weight { name: name.into() },
            TensorType::f32(shape),
            name,
        )
    };
    let tokens = g.add(
        Node::new(
            Op::Input(InputKind::Tokens),
            TensorType::i32(vec![Dim::Tokens]),
            "tokens",
        ),
        &[],
    );
    let table = g.add(w("table", vec![n(8), n(64)]), &[]);
    let norm = g.add(w("norm", vec![n(64)]), &[]);
    let wm = g.add(w("w", vec![n(64), n(64)]), &[]);
    let x = g.add(
        Node::new(Op::Embed, act(), "x"),
        &[(Role::Table, table), (Role::Tokens, tokens)],
    );
    let y = g.add(
        Node::new(Op::RmsNorm { eps: 1e-6 }, act(), "y"),
        &[(Role::X, x), (Role::Norm, norm)],
    );
    let z = g.add(
        Node::new(Op::MatMul(Default::default()), act(), "z"),
        &[(Role::X, y), (Role::W, wm)],
    );
    let out = g.add(
        Node::new(Op::Add, act(), "out"),
        &[(Role::A, x), (Role::B, z)],
    );
    g.set_output("out", out);
    (g, [tokens, x, y, z, out])
}

#[test]
fn a_chain_reuses_the_normalized_input_for_the_sum() {
    let (g, [tokens, x, y, z, out]) = chain();
    let p = plan(&g, env(4)).unwrap();
    // x lives to the end; y dies at z; out takes y's place; the tokens,
    // dead once embedded, sit where y will be.
    assert_eq!(p.offset_of(x), Some(0));
    assert_eq!(p.offset_of(y), Some(1024));
    assert_eq!(p.offset_of(z), Some(2048));
    assert_eq!(p.offset_of(out), Some(1024));
    assert_eq!(p.offset_of(tokens), Some(1024));
    assert_eq!(p.slot_of(tokens).map(|s| s.bytes), Some(16));
    assert_eq!(
        (p.arena_bytes, p.lower_bound, p.naive_bytes),
        (3072, 3072, 4 * 1024 + 256)
    );
}

#[test]
fn weights_have_no_slot() {
    let (g, _) = chain();
    let p = plan(&g, env(4)).unwrap();
    let weights = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Weight { .. }));
    for w in weights {
        assert_eq!(p.offset_of(w), None);
    }
}

/// Every pair of buffers live at one step must not share a byte.
fn assert_no_overlap(g: &Graph, p: &MemoryPlan) {
    let views = view_bases(g, &p.schedule);
    let bufs = buffers(g, &p.schedule, &views, &p.env);
    let slot = |b: &Buffer| match b.holds {
        Holds::Value(n) => p.slots[&n],
        Holds::Scratch(n) => p.scratch[&n],
    };
    for (i, a) in bufs.iter().enumerate() {
        let sa = slot(a);
        assert_eq!(sa.offset % ALIGN, 0);
        assert!(sa.offset + sa.bytes <= p.arena_bytes);
        for b in &bufs[i + 1..] {
            let sb = slot(b);
            let apart = sa.offset + a.size() <= sb.offset || sb.offset + b.size() <= sa.offset;
            assert!(!a.overlaps(b) || apart, "{a:?} {sa:?} and {b:?} {sb:?}");
        }
    }
}

#[test]
fn buffers_live_together_never_share_bytes() {
    for m in [Tiny::llama(), Tiny::qwen2()] {
        for pass in ["qkv_concat", "fuse", "dce"] {
            let (g, _) = build(&m);
            let g = run_until(g, pass).unwrap();
            let p = plan(&g, env(7)).unwrap();
            assert_no_overlap(&g, &p);
            assert!(p.lower_bound <= p.arena_bytes && p.arena_bytes <= p.naive_bytes);
        }
    }
}

#[test]
fn a_slice_is_a_view_of_its_base_column_range() {
    let (g, _) = build(&Tiny::llama());
    let g = run_until(g, "qkv_concat").unwrap();
    let p = plan(&g, env(4)).unwrap();
    let v = g
        .node_ids()
        .find(|&id| g.node(id).op == Op::Slice { start: 96, len: 32 })
        .unwrap();
    let qkv = g.operand(v, Role::X).unwrap();
    assert_eq!(p.view_of(v), Some((qkv, 96)));
    assert_eq!(p.offset_of(v), None);
    assert!(p.offset_of(qkv).is_some());
}

#[test]
fn the_q_view_keeps_the_qkv_matmul_alive_until_attention() {
    let (g, _) = build(&Tiny::llama());
    let g = run_until(g, "dce").unwrap();
    let p = plan(&g, env(4)).unwrap();
    let views = view_bases(&g, &p.schedule);
    let bufs = buffers(&g, &p.schedule, &views, &p.env);
    let att = p
        .schedule
        .iter()
        .position(|&id| matches!(g.node(id).op, Op::Attention(_)))
        .unwrap();
    let q = g.operand(p.schedule[att], Role::Q).unwrap();
    let (qkv, _) = p.view_of(q).unwrap();
    let b = bufs.iter().find(|b| b.holds == Holds::Value(qkv)).unwrap();
    assert_eq!(b.end, att);
}

#[test]
fn gate_up_scratch_holds_the_normalized_input_then_the_pre_activation() {
    let m = Tiny::llama();
    let (g, _) = build(&m);
    let g = run_until(g, "dce").unwrap();
    let p = plan(&g, env(4)).unwrap();
    let gu = g
        .node_ids()
        .find(|&id| g.node(id).name == "blk.0.gate_up")
        .unwrap();
    let s = p.scratch_layout(&g, gu);
    let norm = s.normalized.unwrap();
    let pre = s.pre_activation.unwrap();
    assert_eq!(norm.bytes, 4 * m.d * 4);
    assert_eq!(pre.bytes, 4 * 2 * m.ff * 4);
    assert_eq!(pre.offset, norm.offset + 1024);
    assert_eq!(p.scratch_of(gu).unwrap().offset, norm.offset);
}

#[test]
fn a_matmul_without_prologue_or_swiglu_has_no_scratch() {
    let (g, _) = build(&Tiny::llama());
    let g = run_until(g, "dce").unwrap();
    let p = plan(&g, env(4)).unwrap();
    let o = g
        .node_ids()
        .find(|&id| g.node(id).name == "blk.0.o")
        .unwrap();
    assert_eq!(p.scratch_of(o), None);
    assert_eq!(p.scratch_layout(&g, o), ScratchLayout::default());
}

#[test]
fn the_kv_cache_lives_outside_the_arena() {
    let (g, _) = build(&Tiny::qwen2());
    let p = plan(&g, env(4)).unwrap();
    for id in g.node_ids() {
        if matches!(g.node(id).op, Op::KvCache { .. } | Op::KvStore { .. }) {
            assert_eq!(p.offset_of(id), None);
        }
    }
}

#[test]
fn logits_live_to_the_end() {
    let (g, _) = build(&Tiny::llama());
    let g = run_until(g, "dce").unwrap();
    let p = plan(&g, env(4)).unwrap();
    let logits = g.output("logits").unwrap();
    assert_eq!(p.schedule.last(), Some(&logits));
    assert!(p.offset_of(logits).is_some());
}
