//! The families of issue #17 at the frontend: each tiny synthetic file is
//! detected as its spec and builds; what a spec cannot run is refused by
//! name rather than run wrong.

use rocmforge::frontend::build_graph;
use rocmforge::gguf::{GgufFile, GgufWriter};
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

fn tiny(arch: TinyArch) -> GgufFile {
    let spec = TinySpec {
        arch,
        ..TinySpec::default()
    };
    GgufFile::from_bytes(spec.to_bytes(9).unwrap()).unwrap()
}

#[test]
fn every_new_family_is_detected_and_builds() {
    for (arch, spec) in [
        (TinyArch::Qwen3, "qwen3"),
        (TinyArch::Gemma3, "gemma3"),
        (TinyArch::Phi3, "phi3"),
        (TinyArch::Qwen3Moe, "qwen3moe"),
        (TinyArch::Mixtral, "mixtral"),
    ] {
        let (cfg, _) = build_graph(&tiny(arch)).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(cfg.arch, spec);
    }
}

/// `src` with its metadata changed by `edit` (tensors unchanged).
fn with_metadata(
    src: &GgufFile,
    edit: impl Fn(&str) -> Option<rocmforge::gguf::Value>,
) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata().iter() {
        w.add_metadata(k, edit(k).unwrap_or_else(|| v.clone()))
            .unwrap();
    }
    for t in src.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())
            .unwrap();
    }
    GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

#[test]
fn a_mixtral_file_named_after_mistral_is_still_mixtral() {
    // Real files say "mistralai_Mixtral-8x7B-Instruct-v0.1": the name hint
    // of the mistral spec must not win over the expert_count key.
    let f = with_metadata(&tiny(TinyArch::Mixtral), |k| {
        (k == "general.name").then(|| "mistralai_Mixtral-8x7B-Instruct-v0.1".into())
    });
    let (cfg, _) = build_graph(&f).unwrap();
    assert_eq!(cfg.arch, "mixtral");
    assert_eq!(
        (cfg.n_expert, cfg.n_expert_used, cfg.expert_ffn),
        (4, 2, 128)
    );
}

#[test]
fn qwen3moe_experts_take_their_own_width_and_more_used_than_exist_is_refused() {
    let (cfg, _) = build_graph(&tiny(TinyArch::Qwen3Moe)).unwrap();
    assert_eq!((cfg.n_expert, cfg.n_expert_used), (4, 2));
    assert_eq!((cfg.ffn, cfg.expert_ffn), (128, 64));
    let f = with_metadata(&tiny(TinyArch::Qwen3Moe), |k| {
        (k == "qwen3moe.expert_used_count").then(|| 5u32.into())
    });
    let err = build_graph(&f).unwrap_err().to_string();
    assert!(err.contains("qwen3moe.expert_used_count"), "{err}");
}

#[test]
fn phi3_with_only_one_longrope_factor_set_names_the_missing_one() {
    let src = tiny(TinyArch::Phi3);
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata().iter() {
        w.add_metadata(k, v.clone()).unwrap();
    }
    for t in src.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())
            .unwrap();
    }
    // head_dim 16: 8 factors.
    w.add_tensor("rope_factors_long.weight", &[8], GgmlType::F32, vec![0; 32])
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let err = build_graph(&f).unwrap_err().to_string();
    assert!(err.contains("rope_factors_short.weight"), "{err}");
}

#[test]
fn gemma3_without_a_window_attends_globally_in_every_layer() {
    let f = tiny(TinyArch::Gemma3);
    let (cfg, _) = build_graph(&f).unwrap();
    assert_eq!(cfg.window, None);
    assert!((0..6).all(|l| !cfg.is_local(l) && cfg.attention(l).window.is_none()));
    assert!((0..6).all(|l| cfg.rope_for(l).base == 1_000_000.0));
}
