//! Logits of our CPU executor on tiny synthetic models of llama, qwen2,
//! mistral, qwen3, gemma3, phi3, qwen3moe and mixtral against HF
//! transformers (the last five,
//! for now, against scripts/numpy-goldens.py's float64 numpy reference) (tests/fixtures/hf, made by
//! scripts/make-hf-goldens.sh): every position of every prompt, relative
//! error ‖ours − ref‖₂ / ‖ref‖₂ in f64 within the fixture's tolerance
//! (shared/COMPARING.md: 1e-4 for F32/F16 weights, 2e-2 for quantized).
//!
//! The model files are not committed: each is regenerated from the
//! fixture's `rfc synth tiny` settings and seed, and must hash to the
//! SHA-256 the fixture records, so HF and we read the same bytes.
//!
//! The models run with an f32 KV cache (HF computes in float64).

use std::path::{Path, PathBuf};

use rocmforge::exec::cpu::{KvType, KvTypes};
use rocmforge::load::{load_cpu, LoadOptions};
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
struct Fixture {
    name: String,
    synth: Settings,
    gguf_sha256: String,
    tolerance: f64,
    /// The context to load with (LongRoPE picks its factors by it).
    #[serde(default)]
    context: Option<usize>,
    prompts: Vec<Prompt>,
}

/// The settings `rfc synth tiny` was given.
#[derive(Debug, Deserialize)]
struct Settings {
    arch: String,
    #[serde(rename = "type")]
    ty: String,
    /// Mixed files: token_embd's and output's own types.
    #[serde(default)]
    embd_type: Option<String>,
    #[serde(default)]
    output_type: Option<String>,
    heads: usize,
    kv_heads: usize,
    d: usize,
    ffn: usize,
    layers: usize,
    vocab: usize,
    tied: bool,
    bias: bool,
    window: Option<u32>,
    seed: u64,
    /// Mixture-of-experts fixtures: experts per layer and per token.
    #[serde(default)]
    experts: Option<usize>,
    #[serde(default)]
    experts_used: Option<usize>,
    /// YaRN fixtures: (factor, original context length).
    #[serde(default)]
    yarn: Option<(f32, u32)>,
    /// LongRoPE fixtures: the original context length.
    #[serde(default)]
    longrope: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Prompt {
    tokens: Vec<u32>,
    /// One row of vocab logits per position.
    logits: Vec<Vec<f64>>,
}

/// tests/fixtures/hf/`sub`, or `$RFC_HF_FIXTURES/sub` (diagnosis: fixtures
/// made with other options of scripts/make-hf-goldens.py).
fn fixture_dir(sub: &str) -> PathBuf {
    std::env::var_os("RFC_HF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf"))
        .join(sub)
}

fn read_fixture(sub: &str, name: &str) -> Fixture {
    let path = fixture_dir(sub).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spec(s: &Settings) -> TinySpec {
    TinySpec {
        arch: TinyArch::from_name(&s.arch).expect("known arch"),
        n_heads: s.heads,
        n_kv_heads: s.kv_heads,
        d_model: s.d,
        ffn: s.ffn,
        n_layers: s.layers,
        n_vocab: s.vocab,
        ty: GgmlType::from_name(&s.ty).expect("known type"),
        embd_ty: s
            .embd_type
            .as_deref()
            .map(|t| GgmlType::from_name(t).expect("known type")),
        output_ty: s
            .output_type
            .as_deref()
            .map(|t| GgmlType::from_name(t).expect("known type")),
        tied: s.tied,
        bias: s.bias,
        window: s.window,
        rope_freqs: false,
        yarn: s.yarn,
        longrope: s.longrope,
        n_experts: s.experts.unwrap_or(TinySpec::default().n_experts),
        experts_used: s.experts_used.unwrap_or(TinySpec::default().experts_used),
    }
}

/// The fixture's model, regenerated and checked against the recorded hash.
fn write_model(f: &Fixture, path: &Path) {
    let bytes = spec(&f.synth).to_bytes(f.synth.seed).unwrap();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest, f.gguf_sha256,
        "{}: the synthetic model's bytes changed (src/synth); \
         regenerate the fixtures with scripts/make-hf-goldens.sh",
        f.name
    );
    std::fs::write(path, bytes).unwrap();
}

/// ‖ours − ref‖₂ / ‖ref‖₂ in f64; infinite if `ours` holds a NaN or Inf.
fn relative_error(ours: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "vocab size");
    if ours.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = ours
        .iter()
        .zip(reference)
        .map(|(&a, &b)| (a as f64 - b).powi(2))
        .sum();
    let norm: f64 = reference.iter().map(|b| b * b).sum();
    (diff / norm).sqrt()
}

/// Runs every prompt from an empty cache, all positions' logits, and
/// returns (prompt, position, relative error) for each.
fn errors(f: &Fixture) -> Vec<(usize, usize, f64)> {
    let path = std::env::temp_dir().join(format!(
        "rfc-hf-golden-{}-{}.gguf",
        std::process::id(),
        f.name
    ));
    write_model(f, &path);
    let opts = LoadOptions {
        max_tokens: 32,
        max_rows: 32,
        context: f.context.unwrap_or(64),
        // HF computes in float64: compare with an exact (f32) cache. The f16
        // cache follows llama.cpp and is checked against it on the real model.
        kv_types: KvTypes::both(KvType::F32),
        ..Default::default()
    };
    let mut model = load_cpu(&path, &opts).unwrap_or_else(|e| panic!("{}: load: {e}", f.name));
    std::fs::remove_file(&path).ok();
    let mut out = Vec::new();
    for (i, p) in f.prompts.iter().enumerate() {
        model.session.reset();
        let mut seen = 0;
        model
            .session
            .eval(&p.tokens, true, |pos, logits| {
                out.push((i, pos, relative_error(logits, &p.logits[pos])));
                seen += 1;
            })
            .unwrap_or_else(|e| panic!("{}: prompt {i}: {e}", f.name));
        assert_eq!(
            seen,
            p.tokens.len(),
            "{}: prompt {i}: logits for every position",
            f.name
        );
    }
    out
}

/// Compares one fixture; on failure names the first failing position and
/// lists the worst error per prompt.
fn check(sub: &str, name: &str) {
    let f = read_fixture(sub, name);
    assert_eq!(f.name, name);
    let errs = errors(&f);
    let worst = errs.iter().map(|e| e.2).fold(0.0, f64::max);
    eprintln!(
        "{name}: {} positions, worst relative error {worst:.3e} (tolerance {:.0e})",
        errs.len(),
        f.tolerance
    );
    if let Some(&(prompt, pos, err)) = errs.iter().find(|e| e.2.is_nan() || e.2 > f.tolerance) {
        let per_prompt: Vec<String> = (0..f.prompts.len())
            .map(|i| {
                let w = errs
                    .iter()
                    .filter(|e| e.0 == i)
                    .map(|e| e.2)
                    .fold(0.0, f64::max);
                format!(
                    "prompt {i} ({} tokens): worst {w:.3e}",
                    f.prompts[i].tokens.len()
                )
            })
            .collect();
        panic!(
            "{name}: first failure at prompt {prompt} position {pos}: relative error {err:.3e} > {:.0e}\n  {}",
            f.tolerance,
            per_prompt.join("\n  ")
        );
    }
}

/// One test per fixture of tests/fixtures/hf/`$sub`, and `NAMES`.
macro_rules! goldens {
    ($sub:literal: $($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                check($sub, stringify!($name));
            }
        )*
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

/// Against exact HF (float64; COMPARING.md tolerances).
mod exact {
    use super::check;
    goldens!("":
        llama_mha_f32,
        llama_gqa_f32,
        llama_gqa_tied_bias_f32,
        qwen2_gqa_tied_bias_f32,
        qwen2_mha_untied_nobias_f32,
        mistral_gqa_f32,
        mistral_gqa_window4_f32,
        llama_gqa_f16,
        qwen2_gqa_tied_bias_f16,
        llama_gqa_q8_0,
        qwen2_gqa_tied_bias_q8_0,
        llama_gqa_q4_0,
        qwen2_gqa_tied_bias_q4_0,
        llama_gqa_q4_k,
        qwen2_gqa_tied_bias_q4_k,
        mistral_gqa_window4_q4_k,
        llama_gqa_q6_k,
        qwen2_gqa_tied_bias_q6_k,
        // Qwen3 (issue #17): until HF fixtures are made, these come from
        // scripts/numpy-goldens.py (a float64 numpy forward of HF's Qwen3;
        // each fixture's `reference.loader` says which).
        qwen3_gqa_f32,
        qwen3_mha_tied_f32,
        qwen3_gqa_f16,
        qwen3_gqa_q8_0,
        qwen3_gqa_q4_k,
        qwen3_gqa_q6_k,
        // Gemma 3 (issue #17), numpy reference likewise: 6 layers (layer 5
        // global, RoPE base 1e6; the others a 4-token window, base 1e4).
        gemma3_mqa_tied_window4_f32,
        gemma3_gqa_untied_f32,
        gemma3_mqa_tied_window4_q8_0,
        gemma3_mqa_tied_window4_q4_k,
        // Phi-3 (issue #17), numpy reference likewise: fused QKV and gate/up.
        phi3_gqa_f32,
        phi3_mha_tied_f16,
        phi3_gqa_q8_0,
        phi3_gqa_q4_k,
        // The IQ, TQ and MXFP4 weight types (issue #18), numpy reference
        // likewise (weights dequantized by the gguf package): lattice types
        // as random valid blocks, the others quantized by rfc synth.
        qwen3_gqa_iq4_nl,
        qwen3_gqa_iq4_xs,
        qwen3_gqa_tq1_0,
        qwen3_gqa_tq2_0,
        qwen3_gqa_mxfp4,
        qwen3_gqa_iq2_xxs,
        qwen3_gqa_iq2_xs,
        qwen3_gqa_iq2_s,
        qwen3_gqa_iq3_xxs,
        qwen3_gqa_iq3_s,
        qwen3_gqa_iq1_s,
        qwen3_gqa_iq1_m,
        // A mixed file: IQ4_XS matrices, Q8_0 token_embd, Q6_K output.
        qwen3_gqa_iq4_xs_mixed,
        // Mixture of experts (issue #17), numpy reference likewise: the
        // router's top-k renormalized, tokens through their experts one by
        // one (nothing grouped). k = 1 leaves experts without a token.
        qwen3moe_e4k2_f32,
        qwen3moe_e8k2_tied_f32,
        qwen3moe_e4k1_f16,
        qwen3moe_e4k2_q8_0,
        qwen3moe_e4k2_q4_k,
        mixtral_e8k2_f32,
        mixtral_e4k3_f32,
        mixtral_e8k2_q8_0,
        mixtral_e8k2_q6_k,
        // YaRN RoPE scaling as llama.cpp applies it (numpy reference after
        // HF's YaRN parameters): 64 original positions, factor 4 and 8.
        qwen3_gqa_yarn4_f32,
        qwen3_gqa_yarn4_q8_0,
        mixtral_e4k2_yarn8_f32,
        // Gemma 2 (numpy reference after HF's Gemma 2): soft-capped
        // attention and logits (caps 2 and 5), layers 1 and 3 global.
        gemma2_gqa_window4_f32,
        gemma2_mqa_window4_q8_0,
        gemma2_gqa_window4_q4_k,
        // LongRoPE (numpy reference after HF's longrope parameters): a 512
        // context takes the long factors, 256 the short ones (orig 256).
        phi3_gqa_longrope_long_f32,
        phi3_gqa_longrope_short_f32,
        phi3_gqa_longrope_long_q8_0,
    );
}

/// Against llama.cpp itself (tests/fixtures/hf/llamacpp, made by
/// scripts/make-llamacpp-goldens.sh: llama-cpp-python 0.3.36 built from
/// source, f32 KV cache, no flash attention), where llama.cpp defines the
/// rule: LongRoPE's factor set by context size; YaRN's ramp and magnitude
/// as ggml's rope applies them. Gemma 2 beside them: its soft-caps and
/// window as llama.cpp applies them.
mod llamacpp {
    use super::check;
    goldens!("llamacpp":
        phi3_gqa_longrope_long_f32,
        phi3_gqa_longrope_short_f32,
        phi3_gqa_longrope_long_q8_0,
        qwen3_gqa_yarn4_f32,
        qwen3_gqa_yarn4_q8_0,
        mixtral_e4k2_yarn8_f32,
        gemma2_gqa_window4_f32,
        gemma2_mqa_window4_q8_0,
    );
}

/// The JSON fixtures of `dir` (under the fixtures folder), by name, sorted.
fn fixture_stems(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(fixture_dir(dir))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_llamacpp_fixture_has_a_test() {
    let files = fixture_stems("llamacpp");
    let mut names: Vec<String> = llamacpp::NAMES.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(files, names, "tests/fixtures/hf/llamacpp");
}

#[test]
fn every_fixture_has_a_test() {
    let files = fixture_stems("");
    let mut names: Vec<String> = exact::NAMES.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(files, names, "tests/fixtures/hf");
}

#[test]
fn relative_error_fails_on_nan_and_measures_the_whole_vector() {
    assert_eq!(relative_error(&[3.0, 4.0], &[3.0, 4.0]), 0.0);
    assert!((relative_error(&[3.0, 4.5], &[3.0, 4.0]) - 0.1).abs() < 1e-12);
    assert!(relative_error(&[f32::NAN, 4.0], &[3.0, 4.0]) > 1.0);
}
