//! LongRoPE (Phi-3) and Gemma 2's soft-capping run on the CPU only: a GPU
//! target must refuse each by node and by name — the LongRoPE rope
//! epilogue, the attention with a soft-cap, the final `softcap` op — with
//! a clear error, never a panic or a wrong kernel.

mod common;

use rocmforge::codegen::plan::{node_sources, PlanOptions};
use rocmforge::gguf::GgufFile;
use rocmforge::ir::{Graph, Op};
use rocmforge::synth::{TinyArch, TinySpec};

fn longrope_phi3() -> TinySpec {
    TinySpec {
        arch: TinyArch::Phi3,
        longrope: Some(256),
        ..TinySpec::default()
    }
}

/// The tiny model's graph after every pass, built for its own context.
fn compiled(spec: &TinySpec) -> Graph {
    let file = GgufFile::from_bytes(spec.to_bytes(7).unwrap()).unwrap();
    let (_, graph) = rocmforge::frontend::build_graph(&file).unwrap();
    rocmforge::passes::compile(graph, Default::default())
        .unwrap()
        .graph
}

/// The GPU codegen's error for the first node matching `pick`.
fn refusal(g: &Graph, pick: impl Fn(&Op) -> bool) -> String {
    let id = g
        .topo_order()
        .unwrap()
        .into_iter()
        .find(|&id| pick(&g.node(id).op))
        .expect("such a node");
    match node_sources(g, id, &PlanOptions::default()) {
        Ok(_) => panic!("the GPU accepted {:?}", g.node(id).op),
        Err(e) => e.to_string(),
    }
}

#[test]
fn compiling_a_longrope_phi3_for_a_gpu_names_the_rope_and_fails_cleanly() {
    for target in ["sm_90", "gfx1100"] {
        let (code, stderr, left) = common::compile_tiny(&longrope_phi3(), 5, target);
        assert_eq!(code, 1, "{target}: {stderr}");
        assert!(
            stderr.contains("blk.0.qkv") && stderr.contains("LongRoPE scaling is not supported"),
            "{target}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!left, "{target}: a failed compile left a file");
    }
    let (code, stderr, _) = common::compile_tiny(&longrope_phi3(), 5, "cpu");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn gemma2_soft_caps_are_refused_on_the_gpu_by_name() {
    let g = compiled(&TinySpec {
        arch: TinyArch::Gemma2,
        window: Some(4),
        ..TinySpec::default()
    });
    let e = refusal(&g, |op| matches!(op, Op::SoftCap { .. }));
    assert!(
        e.contains("logits (softcap)") && e.contains("no GPU kernel for this op yet"),
        "{e}"
    );
    let e = refusal(&g, |op| matches!(op, Op::Attention(_)));
    assert!(
        e.contains("attention logit soft-capping is not supported on the GPU"),
        "{e}"
    );
}

#[test]
fn a_gemma2_gpu_compile_fails_with_a_message_and_no_file() {
    let spec = TinySpec {
        arch: TinyArch::Gemma2,
        ..TinySpec::default()
    };
    let (code, stderr, left) = common::compile_tiny(&spec, 5, "sm_90");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no GPU kernel for this op yet"), "{stderr}");
    assert!(!stderr.contains("panicked") && !left, "{stderr}");
    let (code, stderr, _) = common::compile_tiny(&spec, 5, "cpu");
    assert_eq!(code, 0, "{stderr}");
}
