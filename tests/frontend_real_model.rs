//! The real model (Qwen2.5-Coder 0.5B, Q4_K_M) through the frontend.

mod common;
use common::real_model_or_skip;

use rocmforge::frontend::{build_graph, detect};
use rocmforge::gguf::GgufFile;
use rocmforge::ir::{verify::verify, Dim, Op, RopeStyle};

#[test]
fn real_model_is_detected_as_qwen2() {
    let path = real_model_or_skip!();
    let file = GgufFile::open(&path).unwrap();
    let d = detect(&file).unwrap();
    assert_eq!(d.spec.name, "qwen2");
    assert_eq!(d.reason, "general.architecture = qwen2");
}

#[test]
fn real_model_builds_a_verified_graph_of_24_layers() {
    let path = real_model_or_skip!();
    let file = GgufFile::open(&path).unwrap();
    let (cfg, g) = build_graph(&file).unwrap();
    verify(&g).unwrap();
    assert_eq!(cfg.arch, "qwen2");
    assert_eq!(cfg.n_layer, 24);
    let caches = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::KvCache { .. }))
        .count();
    assert_eq!(caches, 24);
}

#[test]
fn real_model_hparams_match_its_metadata() {
    let path = real_model_or_skip!();
    let file = GgufFile::open(&path).unwrap();
    let (cfg, _) = build_graph(&file).unwrap();
    assert_eq!(
        (
            cfg.d_model,
            cfg.n_heads,
            cfg.n_kv_heads,
            cfg.head_dim,
            cfg.ffn
        ),
        (896, 14, 2, 64, 4864)
    );
    assert_eq!(cfg.vocab, 151936);
    assert_eq!(cfg.context_length, 32768);
    assert_eq!(cfg.rms_eps, 1e-6);
    assert_eq!(cfg.rope.base, 1e6);
    assert_eq!(cfg.rope.style, RopeStyle::Neox);
    assert_eq!(cfg.window, None);
    // This file ships output.weight (Q8_0) beside token_embd (Q5_0).
    assert!(!cfg.tied_output);
    assert!(cfg.optional_tensors.contains(&"attn_q_bias".to_string()));
}

#[test]
fn real_model_logits_are_f32_rows_by_vocab() {
    let path = real_model_or_skip!();
    let file = GgufFile::open(&path).unwrap();
    let (_, g) = build_graph(&file).unwrap();
    let logits = g.output("logits").unwrap();
    assert_eq!(g.node(logits).ty.to_string(), "f32[R,151936]");
    assert_eq!(g.node(logits).ty.shape[0], Dim::Rows);
}

#[test]
fn rfc_inspect_says_which_spec_is_chosen_and_why() {
    let path = real_model_or_skip!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(["inspect", path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["spec"], "qwen2");
    assert!(j["spec_reason"]
        .as_str()
        .unwrap()
        .contains("general.architecture"));
}
