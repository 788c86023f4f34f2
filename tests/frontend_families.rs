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
    ] {
        let (cfg, _) = build_graph(&tiny(arch)).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(cfg.arch, spec);
    }
}

#[test]
fn phi3_with_longrope_factors_is_refused_by_name() {
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
    assert!(
        err.contains("rope_factors_long") && err.contains("LongRoPE"),
        "{err}"
    );
}

#[test]
fn gemma3_without_a_window_attends_globally_in_every_layer() {
    let f = tiny(TinyArch::Gemma3);
    let (cfg, _) = build_graph(&f).unwrap();
    assert_eq!(cfg.window, None);
    assert!((0..6).all(|l| !cfg.is_local(l) && cfg.attention(l).window.is_none()));
    assert!((0..6).all(|l| cfg.rope_for(l).base == 1_000_000.0));
}
