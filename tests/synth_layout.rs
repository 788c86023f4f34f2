//! `rfc synth --layout` copies a model's layout: the JSON of `rfc inspect
//! --json --full` becomes a file with the same metadata (values and GGUF
//! types) and the same tensor table, with random weights.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::real_model_or_skip;
use rocmforge::gguf::GgufFile;
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

fn rfc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(args)
        .output()
        .expect("rfc runs");
    assert!(
        out.status.success(),
        "rfc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rfc-synth-layout-{}-{name}", std::process::id()))
}

/// Inspects `model`, synthesizes from the JSON, and checks that the copy has
/// the same metadata (values and types, in the same order or not) and tensor
/// table (names, types, dims, in order).
fn assert_layout_copied(model: &Path, tag: &str) {
    let json = temp(&format!("{tag}.json"));
    let copy = temp(&format!("{tag}.gguf"));
    let layout = rfc(&["inspect", "--json", "--full", model.to_str().unwrap()]);
    std::fs::write(&json, layout).unwrap();
    rfc(&[
        "synth",
        "--layout",
        json.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    let (a, b) = (
        GgufFile::open(model).unwrap(),
        GgufFile::open(&copy).unwrap(),
    );
    assert_eq!(a.metadata().len(), b.metadata().len());
    for (key, value) in a.metadata().iter() {
        assert_eq!(b.metadata().get(key), Some(value), "metadata key {key}");
    }
    let table = |f: &GgufFile| -> Vec<(String, GgmlType, Vec<u64>)> {
        f.tensors()
            .iter()
            .map(|t| (t.name.clone(), t.ty, t.dims.clone()))
            .collect()
    };
    assert_eq!(table(&a), table(&b));
    for p in [json, copy] {
        std::fs::remove_file(p).ok();
    }
}

#[test]
fn tiny_model_layout_is_copied_exactly() {
    let spec = TinySpec {
        arch: TinyArch::Mistral,
        window: Some(8),
        bias: true,
        ..TinySpec::for_type(TinyArch::Mistral, GgmlType::Q4_K)
    };
    let model = temp("tiny.gguf");
    std::fs::write(&model, spec.to_bytes(3).unwrap()).unwrap();
    assert_layout_copied(&model, "tiny");
    std::fs::remove_file(model).ok();
}

#[test]
fn real_model_layout_is_copied_exactly() {
    let model = real_model_or_skip!();
    assert_layout_copied(&model, "real");
}

#[test]
fn layout_weights_stay_small_and_norms_near_one() {
    let model = temp("small.gguf");
    let spec = TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q6_K);
    std::fs::write(&model, spec.to_bytes(0).unwrap()).unwrap();
    let json = temp("small.json");
    std::fs::write(
        &json,
        rfc(&["inspect", "--json", "--full", model.to_str().unwrap()]),
    )
    .unwrap();
    let copy = temp("small-copy.gguf");
    rfc(&[
        "synth",
        "--layout",
        json.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    let f = GgufFile::open(&copy).unwrap();
    let values = |name: &str| {
        let t = f.tensor(name).unwrap();
        let mut x = vec![0f32; t.info.n_elements() as usize];
        rocmforge::quant::dequantize(t.info.ty, t.data, &mut x).unwrap();
        x
    };
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    let w = values("blk.0.ffn_down.weight");
    assert!((0.01..0.1).contains(&rms(&w)), "ffn_down rms {}", rms(&w));
    let n = values("blk.0.attn_norm.weight");
    assert!(n.iter().all(|v| (v - 1.0).abs() < 0.1), "norm values");
    for p in [model, json, copy] {
        std::fs::remove_file(p).ok();
    }
}
