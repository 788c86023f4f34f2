//! LongRoPE (Phi-3 128k files): the graph's rope takes the long factor set
//! when built for sequences longer than `rope.scaling.original_context_length`
//! and the short set otherwise (llama.cpp's `get_rope_factors`), and scales
//! cos and sin by the file's `rope.scaling.attn_factor`.

use rocmforge::gguf::GgufFile;
use rocmforge::ir::{Graph, Op, Role, RopeScaling};
use rocmforge::synth::{TinyArch, TinySpec};

/// A tiny Phi-3 (context 512) with factor sets split at `orig` positions.
fn phi3(longrope: Option<u32>) -> GgufFile {
    let spec = TinySpec {
        arch: TinyArch::Phi3,
        longrope,
        ..TinySpec::default()
    };
    GgufFile::from_bytes(spec.to_bytes(3).unwrap()).unwrap()
}

/// The weight every rope reads its factors from, and the ropes' scaling.
fn factors(g: &Graph) -> (Vec<String>, Vec<RopeScaling>) {
    let mut names = Vec::new();
    let mut scalings = Vec::new();
    for id in g.topo_order().unwrap() {
        if let Op::Rope(spec) = &g.node(id).op {
            scalings.push(spec.scaling);
            if let Some(f) = g.operand(id, Role::Freqs) {
                if let Op::Weight { name } = &g.node(f).op {
                    names.push(name.clone());
                }
            }
        }
    }
    (names, scalings)
}

fn built_for(file: &GgufFile, context: usize) -> (Vec<String>, Vec<RopeScaling>) {
    let (_, g) = rocmforge::frontend::build_graph_for(file, context).unwrap();
    factors(&g)
}

#[test]
fn contexts_beyond_the_original_take_the_long_factors() {
    let file = phi3(Some(256));
    for (context, set) in [(256, "short"), (64, "short"), (257, "long"), (512, "long")] {
        let (names, _) = built_for(&file, context);
        // q and k of both layers.
        assert_eq!(names.len(), 4, "{context}");
        let want = format!("rope_factors_{set}.weight");
        assert!(names.iter().all(|n| *n == want), "{context}: {names:?}");
    }
    // Without a loader's context: the file's own (512), as llama.cpp's
    // default n_ctx.
    let (_, g) = rocmforge::frontend::build_graph(&file).unwrap();
    assert!(factors(&g)
        .0
        .iter()
        .all(|n| n == "rope_factors_long.weight"));
    // A context above the file's is capped by it.
    assert!(built_for(&file, 1 << 20)
        .0
        .iter()
        .all(|n| n == "rope_factors_long.weight"));
}

#[test]
fn the_attention_factor_is_the_converters_for_the_stretch() {
    let (_, scalings) = built_for(&phi3(Some(256)), 256);
    let want = (1.0 + 2f64.ln() / 256f64.ln()).sqrt() as f32;
    for s in scalings {
        match s {
            RopeScaling::LongRope { attn_factor } => {
                assert!((attn_factor - want).abs() < 1e-6, "{attn_factor}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_phi3_without_factor_sets_is_plain_rope() {
    let (names, scalings) = built_for(&phi3(None), 512);
    assert!(names.is_empty());
    assert!(scalings.iter().all(|s| *s == RopeScaling::None));
}

#[test]
fn a_longrope_file_is_not_flagged_by_inspect() {
    let d = rocmforge::frontend::diagnose::diagnose(&phi3(Some(256)));
    assert_eq!(d.closest, "phi3");
    assert!(d.is_clean(), "{d:?}");
}
