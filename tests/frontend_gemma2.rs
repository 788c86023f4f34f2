//! Gemma 2's hparams as llama.cpp fills them in: a 4096 window where the
//! file gives none, every second layer global, soft-caps 50 and 30 where
//! the file gives none, the query scale 1/√key_length (1/√(d_model/heads)
//! for the 27B's 46 layers), and the output projection read from
//! token_embd.

use rocmforge::frontend::ModelConfig;
use rocmforge::gguf::GgufFile;
use rocmforge::ir::Op;
use rocmforge::synth::{Fill, TinyArch, TinySpec};

fn gemma2(layers: usize, keys: bool) -> GgufFile {
    let spec = TinySpec {
        arch: TinyArch::Gemma2,
        n_layers: layers,
        window: keys.then_some(4),
        ..TinySpec::default()
    };
    let mut d = spec.decoder().unwrap();
    if !keys {
        d.softcaps = None;
    }
    GgufFile::from_bytes(d.to_bytes(Fill::Test, 9).unwrap()).unwrap()
}

fn config(file: &GgufFile) -> ModelConfig {
    rocmforge::frontend::build_graph(file).unwrap().0
}

#[test]
fn the_files_keys_give_window_and_caps() {
    let cfg = config(&gemma2(4, true));
    assert_eq!(cfg.arch, "gemma2");
    assert_eq!(
        (cfg.attn_softcap, cfg.final_softcap),
        (Some(2.0), Some(5.0))
    );
    let windows: Vec<_> = (0..4).map(|l| cfg.attention(l).window).collect();
    assert_eq!(windows, [Some(4), None, Some(4), None]);
    assert_eq!(cfg.attn_scale, 0.25); // 1/sqrt(16)
}

#[test]
fn absent_keys_take_llama_cpps_defaults() {
    let cfg = config(&gemma2(2, false));
    assert_eq!(
        (cfg.attn_softcap, cfg.final_softcap),
        (Some(50.0), Some(30.0))
    );
    assert_eq!(cfg.attention(0).window, Some(4096));
    assert_eq!(cfg.attention(1).window, None);
}

#[test]
fn forty_six_layers_scale_queries_by_the_model_width_per_head() {
    // Tiny files have key_length = d_model / heads, so the two rules agree
    // in value: check the table that picks the rule, and that it applies.
    let spec = rocmforge::frontend::ArchSpec::builtin_named("gemma2").unwrap();
    let rule = &spec.defaults.attention_scale_for_layers["46"];
    assert_eq!(rule, "1/sqrt(d_model/n_heads)");
    let cfg = config(&gemma2(46, true));
    assert_eq!(
        cfg.attn_scale,
        1.0 / ((cfg.d_model / cfg.n_heads) as f32).sqrt()
    );
}

#[test]
fn the_output_projection_is_token_embd_and_the_logits_are_capped() {
    let (_, g) = rocmforge::frontend::build_graph(&gemma2(2, true)).unwrap();
    let logits = g.output("logits").unwrap();
    assert_eq!(g.node(logits).op, Op::SoftCap { cap: 5.0 });
    let weights: Vec<_> = g
        .topo_order()
        .unwrap()
        .into_iter()
        .filter_map(|id| match &g.node(id).op {
            Op::Weight { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert!(!weights.iter().any(|n| n == "output.weight"));
}
