use super::*;
use crate::passes::qkv_concat;
use crate::passes::test_graph::{build, Tiny};

fn fused(m: &Tiny) -> Graph {
    let (mut g, _) = build(m);
    qkv_concat::run(&mut g).unwrap();
    run(&mut g).unwrap();
    g
}

/// The node named `name` (`blk.{layer}.{name}` inside a layer).
fn find(g: &Graph, layer: Option<u32>, name: &str) -> NodeId {
    let full = layer.map_or(name.to_string(), |l| format!("blk.{l}.{name}"));
    g.node_ids()
        .find(|&id| g.node(id).layer == layer && g.node(id).name == full)
        .unwrap_or_else(|| panic!("no node {name} in layer {layer:?}"))
}

fn names(g: &Graph, ids: Vec<NodeId>) -> Vec<String> {
    ids.into_iter().map(|id| g.node(id).name.clone()).collect()
}

#[test]
fn a_layer_is_five_launches() {
    for m in [Tiny::llama(), Tiny::qwen2()] {
        let g = fused(&m);
        for l in 0..m.layers {
            let mut kinds: Vec<&str> = g
                .node_ids()
                .filter(|&id| g.node(id).layer == Some(l) && g.node(id).op.is_launch())
                .map(|id| g.node(id).op.kind())
                .collect();
            kinds.sort();
            assert_eq!(kinds, ["attention", "matmul", "matmul", "matmul", "matmul"]);
        }
    }
}

#[test]
fn qkv_matmul_takes_norm_bias_rope_and_kv_store() {
    let g = fused(&Tiny::qwen2());
    let qkv = find(&g, Some(1), "qkv");
    let Op::MatMul(m) = &g.node(qkv).op else {
        panic!()
    };
    assert_eq!(m.prologue, Some(Prologue::RmsNorm { eps: 1e-6 }));
    let kinds: Vec<_> = m.epilogue.iter().map(std::mem::discriminant).collect();
    let rope = m.epilogue[1];
    assert!(
        matches!(
            rope,
            Epilogue::Rope {
                q_heads: 4,
                k_heads: 2,
                ..
            }
        ),
        "{rope:?}"
    );
    assert_eq!(
        m.epilogue[2],
        Epilogue::KvStore {
            layer: 1,
            k_col: 64,
            v_col: 96,
            kv_dim: 32
        }
    );
    assert_eq!(kinds.len(), 3);
    assert_eq!(m.epilogue[0], Epilogue::Bias);
    assert_eq!(
        names(&g, g.operand_list(qkv, Role::Norm)),
        ["blk.1.attn_norm.weight"]
    );
    assert_eq!(names(&g, g.operand_list(qkv, Role::Kv)), ["blk.1.kv_cache"]);
    for role in [Role::Pos, Role::Seq, Role::Pages] {
        assert_eq!(g.operand_list(qkv, role).len(), 1, "{role}");
    }
}

#[test]
fn attention_reads_the_q_slice_and_the_cache_after_the_qkv_matmul() {
    let g = fused(&Tiny::llama());
    let att = g
        .node_ids()
        .find(|&id| g.node(id).layer == Some(0) && matches!(g.node(id).op, Op::Attention(_)))
        .unwrap();
    let q = g.operand(att, Role::Q).unwrap();
    assert_eq!(g.node(q).op, Op::Slice { start: 0, len: 64 });
    let qkv = g.operand(q, Role::X).unwrap();
    assert_eq!(g.operand_list(att, Role::After), [qkv]);
    assert_eq!(names(&g, g.operand_list(att, Role::Kv)), ["blk.0.kv_cache"]);
}

#[test]
fn no_rope_kv_store_or_elementwise_op_is_left() {
    let g = fused(&Tiny::qwen2());
    for id in g.node_ids() {
        let kind = g.node(id).op.kind();
        assert!(
            !["rope", "kv_store", "add", "mul", "silu", "rms_norm"].contains(&kind),
            "{kind} left"
        );
    }
}

#[test]
fn gate_and_up_become_one_matmul_with_swiglu() {
    let g = fused(&Tiny::llama());
    let gu = find(&g, Some(0), "gate_up");
    assert_eq!(
        names(&g, g.operand_list(gu, Role::W)),
        ["blk.0.ffn_gate.weight", "blk.0.ffn_up.weight"]
    );
    assert_eq!(
        names(&g, g.operand_list(gu, Role::Norm)),
        ["blk.0.ffn_norm.weight"]
    );
    let Op::MatMul(m) = &g.node(gu).op else {
        panic!()
    };
    assert_eq!(m.epilogue, vec![Epilogue::SwiGlu]);
    assert_eq!(g.node(gu).ty.to_string(), "f32[T,128]");
}

#[test]
fn residual_adds_go_into_the_output_and_down_matmuls() {
    let g = fused(&Tiny::llama());
    let o = find(&g, Some(0), "o");
    let dn = find(&g, Some(0), "dn");
    for mm in [o, dn] {
        let Op::MatMul(m) = &g.node(mm).op else {
            panic!()
        };
        assert_eq!(m.epilogue, vec![Epilogue::Residual]);
    }
    assert_eq!(
        g.operand(dn, Role::Residual),
        Some(o),
        "down adds to the stream after attention"
    );
    assert_eq!(
        names(&g, g.operand_list(o, Role::Residual)),
        ["x"],
        "layer 0 adds to the embedding"
    );
    let gu = find(&g, Some(0), "gate_up");
    assert_eq!(g.operand(gu, Role::X), Some(o));
}

#[test]
fn final_norm_goes_into_the_output_projection() {
    let g = fused(&Tiny::qwen2());
    let logits = g.output("logits").unwrap();
    let Op::MatMul(m) = &g.node(logits).op else {
        panic!()
    };
    assert_eq!(m.prologue, Some(Prologue::RmsNorm { eps: 1e-6 }));
    assert_eq!(
        names(&g, g.operand_list(logits, Role::Norm)),
        ["output_norm.weight"]
    );
    assert_eq!(
        names(&g, g.operand_list(logits, Role::W)),
        ["token_embd.weight"],
        "tied"
    );
    let xr = g.operand(logits, Role::X).unwrap();
    assert_eq!(g.node(xr).op, Op::GatherRows);
}

#[test]
fn fusing_twice_changes_nothing() {
    let mut g = fused(&Tiny::qwen2());
    let before = g.node_count();
    run(&mut g).unwrap();
    assert_eq!(g.node_count(), before);
}

#[test]
fn a_matmul_read_twice_keeps_its_residual_add() {
    let (mut g, _) = build(&Tiny::llama());
    let o = g
        .node_ids()
        .find(|&id| g.node(id).name == "blk.0.o")
        .unwrap();
    g.set_output("o", o);
    qkv_concat::run(&mut g).unwrap();
    run(&mut g).unwrap();
    let adds = g.node_ids().filter(|&id| g.node(id).op == Op::Add).count();
    assert_eq!(adds, 1);
}

/// A tiny synthetic file of `arch` through the frontend, then qkv_concat.
fn from_file(arch: crate::synth::TinyArch) -> Graph {
    let spec = crate::synth::TinySpec {
        arch,
        ..crate::synth::TinySpec::default()
    };
    let file = crate::gguf::GgufFile::from_bytes(spec.to_bytes(3).unwrap()).unwrap();
    let (_, mut g) = crate::frontend::build_graph(&file).unwrap();
    qkv_concat::run(&mut g).unwrap();
    g
}

fn gate_ups(g: &Graph) -> Vec<NodeId> {
    g.node_ids()
        .filter(|&id| g.node(id).name.ends_with("gate_up"))
        .collect()
}

#[test]
fn gemma_geglu_goes_into_the_gate_up_matmul() {
    let mut g = from_file(crate::synth::TinyArch::Gemma3);
    run(&mut g).unwrap();
    let gu = gate_ups(&g);
    assert_eq!(gu.len(), 2, "one per layer");
    for id in gu {
        let Op::MatMul(m) = &g.node(id).op else {
            panic!()
        };
        assert_eq!(m.epilogue, vec![Epilogue::GeGlu]);
        assert_eq!(g.operand_list(id, Role::W).len(), 2);
        assert!(m.prologue.is_some());
    }
    assert!(g.node_ids().all(|id| g.node(id).op != Op::Gelu));
}

#[test]
fn one_gate_up_matrix_takes_swiglu_itself() {
    let mut g = from_file(crate::synth::TinyArch::Phi3);
    run(&mut g).unwrap();
    let gu = gate_ups(&g);
    assert_eq!(gu.len(), 2, "one per layer");
    for id in gu {
        let Op::MatMul(m) = &g.node(id).op else {
            panic!()
        };
        assert_eq!(m.epilogue, vec![Epilogue::SwiGlu]);
        assert_eq!(
            names(&g, g.operand_list(id, Role::W)),
            [format!("blk.{}.ffn_up.weight", g.node(id).layer.unwrap())]
        );
        assert_eq!(g.node(id).ty.to_string(), "f32[T,128]", "half of 2·ffn");
    }
    assert!(g.node_ids().all(|id| g.node(id).op != Op::Silu));
    let ffn_slices = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Slice { len: 128, .. }))
        .count();
    assert_eq!(ffn_slices, 0);
}

#[test]
fn a_gate_up_half_read_elsewhere_stays_unfused() {
    let mut g = from_file(crate::synth::TinyArch::Phi3);
    let gate = g
        .node_ids()
        .find(|&id| matches!(g.node(id).op, Op::Slice { start: 0, len: 128 }))
        .unwrap();
    g.set_output("gate", gate);
    run(&mut g).unwrap();
    assert_eq!(
        g.node_ids().filter(|&id| g.node(id).op == Op::Silu).count(),
        1,
        "the layer whose gate is an output keeps its silu"
    );
}
