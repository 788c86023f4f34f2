//! The whole pass pipeline on tiny synthetic models of every architecture:
//! the fused form the executors rely on, and what the passes must not change.

use rocmforge::frontend::build_graph;
use rocmforge::frontend::synthetic::{SyntheticArch, SyntheticModel};
use rocmforge::ir::{DimEnv, Epilogue, Graph, Op, Prologue, Role};
use rocmforge::passes::stats::{stats, weight_bytes_per_token};
use rocmforge::passes::{compile, run_until, PASSES};

fn tiny(arch: SyntheticArch) -> (SyntheticModel, Graph) {
    let m = SyntheticModel::tiny(arch);
    let g = build_graph(&m.to_gguf().unwrap()).unwrap().1;
    (m, g)
}

fn matmul_named(
    g: &Graph,
    layer: u32,
    name: &str,
) -> (rocmforge::ir::NodeId, rocmforge::ir::MatMulOp) {
    g.node_ids()
        .find_map(|id| match &g.node(id).op {
            Op::MatMul(m) if g.node(id).layer == Some(layer) && g.node(id).name.ends_with(name) => {
                Some((id, m.clone()))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no matmul {name} in layer {layer}"))
}

#[test]
fn every_architecture_decodes_in_five_launches_a_layer_and_three_more() {
    for arch in SyntheticArch::ALL {
        let (m, g) = tiny(arch);
        let s = stats(&compile(g, DimEnv::default()).unwrap().graph);
        for (layer, n) in &s.launches_by_layer {
            assert_eq!(*n, 5, "{arch:?} layer {layer}");
        }
        assert_eq!(s.launches_per_token, 5 * m.n_layer as usize + 3, "{arch:?}");
    }
}

#[test]
fn no_pass_changes_the_weight_bytes_read_per_token() {
    for arch in SyntheticArch::ALL {
        let (_, g) = tiny(arch);
        let before = weight_bytes_per_token(&g);
        for pass in PASSES {
            let after = weight_bytes_per_token(&run_until(g.clone(), pass.name).unwrap());
            assert_eq!(after, before, "{arch:?} after {}", pass.name);
        }
    }
}

#[test]
fn the_qkv_matmul_carries_norm_bias_rope_and_kv_store_in_that_order() {
    for arch in SyntheticArch::ALL {
        let (m, g) = tiny(arch);
        let g = run_until(g, "dce").unwrap();
        let (id, mm) = matmul_named(&g, 1, "qkv");
        assert!(
            matches!(mm.prologue, Some(Prologue::RmsNorm { .. })),
            "{arch:?}"
        );
        let steps: Vec<&str> = mm
            .epilogue
            .iter()
            .map(|e| match e {
                Epilogue::Bias => "bias",
                Epilogue::Rope { .. } => "rope",
                Epilogue::KvStore { .. } => "kv_store",
                Epilogue::SwiGlu => "swiglu",
                Epilogue::GeGlu => "geglu",
                Epilogue::Residual => "residual",
            })
            .collect();
        let expected: &[&str] = if m.qkv_bias {
            &["bias", "rope", "kv_store"]
        } else {
            &["rope", "kv_store"]
        };
        assert_eq!(steps, expected, "{arch:?}");
        assert_eq!(g.operand_list(id, Role::W).len(), 3);
        assert_eq!(
            g.operand_list(id, Role::Bias).len(),
            if m.qkv_bias { 3 } else { 0 }
        );
    }
}

#[test]
fn mistral_attention_keeps_its_window_through_the_passes() {
    let (m, g) = tiny(SyntheticArch::Mistral);
    let g = run_until(g, "dce").unwrap();
    let windows: Vec<Option<u32>> = g
        .node_ids()
        .filter_map(|id| match g.node(id).op {
            Op::Attention(spec) => Some(spec.window),
            _ => None,
        })
        .collect();
    assert_eq!(windows, vec![m.window; m.n_layer as usize]);
}

#[test]
fn the_arena_lies_between_the_lower_bound_and_the_naive_sum() {
    for arch in SyntheticArch::ALL {
        let (_, g) = tiny(arch);
        let p = compile(g, DimEnv::default()).unwrap().plan;
        assert!(p.lower_bound <= p.arena_bytes, "{arch:?}");
        assert!(p.arena_bytes < p.naive_bytes, "{arch:?}");
    }
}

#[test]
fn an_unknown_pass_name_is_an_error() {
    let (_, g) = tiny(SyntheticArch::Llama);
    let err = run_until(g, "fusion").unwrap_err();
    assert!(err.to_string().contains("unknown pass `fusion`"), "{err}");
}

#[test]
fn rope_frequency_factors_become_an_operand_of_the_qkv_matmul() {
    let mut m = SyntheticModel::tiny(SyntheticArch::Llama);
    m.rope_freqs = true;
    let g = build_graph(&m.to_gguf().unwrap()).unwrap().1;
    let g = run_until(g, "dce").unwrap();
    for layer in 0..m.n_layer {
        let (id, _) = matmul_named(&g, layer, "qkv");
        let freqs = g.operand_list(id, Role::Freqs);
        assert_eq!(freqs.len(), 1, "layer {layer}");
        assert_eq!(
            g.node(freqs[0]).op,
            Op::Weight {
                name: "rope_freqs.weight".into()
            }
        );
    }
}
