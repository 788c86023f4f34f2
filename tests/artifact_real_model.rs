//! The real model (Qwen2.5-Coder 0.5B Q4_K_M) compiled to a CPU artifact
//! runs exactly like the GGUF: same greedy tokens, bitwise-identical
//! logits; its weights verify. Run in the optimized profile:
//! `cargo test --release --test artifact_real_model`.

mod common;

use std::path::Path;
use std::time::Instant;

use common::real_model_or_skip;
use rocmforge::artifact::{compile_artifact, Artifact, CompileOptions, Silent};
use rocmforge::load::{load_cpu, LoadOptions, LoadedModel};

fn greedy(model: &mut LoadedModel, prompt: &[u32], steps: usize) -> (Vec<Vec<u32>>, Vec<u32>) {
    let s = &mut model.session;
    s.reset();
    let mut logits = s.eval_last(prompt).unwrap();
    let mut bits = vec![logits.iter().map(|x| x.to_bits()).collect::<Vec<_>>()];
    let mut tokens = Vec::new();
    for _ in 0..steps {
        let next = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
        tokens.push(next as u32);
        logits = s.eval_last(&[next as u32]).unwrap();
        bits.push(logits.iter().map(|x| x.to_bits()).collect());
    }
    (bits, tokens)
}

fn compile(model: &Path, out: &Path) {
    let t = Instant::now();
    let r = compile_artifact(model, out, &CompileOptions::default(), &Silent).unwrap();
    eprintln!(
        "compiled {} bytes ({} weights) in {:.2} s",
        r.file_bytes,
        r.weights,
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn real_model_artifact_gives_bitwise_identical_logits_and_tokens() {
    let model = real_model_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let rfc = dir.path().join("qwen.rfc");
    compile(&model, &rfc);
    let opts = LoadOptions::default();
    let mut direct = load_cpu(&model, &opts).unwrap();
    let mut compiled = load_cpu(&rfc, &opts).unwrap();
    let prompt = direct
        .tokenizer
        .encode(
            "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
            false,
            false,
        )
        .unwrap();
    let (want_bits, want_tokens) = greedy(&mut direct, &prompt, 16);
    let (got_bits, got_tokens) = greedy(&mut compiled, &prompt, 16);
    eprintln!("compared {} greedy tokens", want_tokens.len());
    assert_eq!(got_tokens, want_tokens);
    assert!(got_bits == want_bits, "logits are not bitwise identical");
}

#[test]
fn real_model_artifact_weights_verify_and_keep_their_types() {
    let model = real_model_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let rfc = dir.path().join("qwen.rfc");
    compile(&model, &rfc);
    let a = Artifact::open(&rfc).unwrap();
    let t = Instant::now();
    a.verify_weights(&Silent).unwrap();
    eprintln!("verified weights in {:.2} s", t.elapsed().as_secs_f64());
    let source = rocmforge::gguf::GgufFile::open(&model).unwrap();
    for w in a.weights() {
        let s = source.tensor_info(&w.name).unwrap();
        assert_eq!((w.ty, &w.dims), (s.ty, &s.dims), "{}", w.name);
    }
    assert_eq!(a.weights().count(), source.tensors().len());
}
