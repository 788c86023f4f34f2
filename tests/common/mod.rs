//! Helpers shared by the integration tests: locating the real model and the
//! shared test data, and skipping (or failing, under CI) when absent.
#![allow(dead_code, unused_macros, unused_imports)]

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the checkout (or `$RFC_SHARED_DIR`).
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RFC_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    dir.is_dir().then_some(dir)
}

/// The real model fetched by scripts/fetch-model.sh (or `$RFC_MODEL`).
pub fn real_model() -> Option<PathBuf> {
    let p = std::env::var_os("RFC_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"));
    p.is_file().then_some(p)
}

/// The Gemma 3 270M file fetched by `scripts/fetch-model.sh gemma3-270m`
/// (or `$RFC_GEMMA3_MODEL`).
pub fn gemma3_model() -> Option<PathBuf> {
    let p = std::env::var_os("RFC_GEMMA3_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    p.is_file().then_some(p)
}

/// Returns `Some(x)`, or reports the skip and returns `None`; under CI=true a
/// missing input is a failure, so that a skipped check never passes silently.
pub fn require<T>(what: &str, x: Option<T>) -> Option<T> {
    if x.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{what} is missing, and CI=true requires it");
        }
        eprintln!("SKIPPED: {what} is not available");
    }
    x
}

/// Shorthand: the real model or skip.
macro_rules! real_model_or_skip {
    () => {
        match common::require(
            "the real model (scripts/fetch-model.sh)",
            common::real_model(),
        ) {
            Some(p) => p,
            None => return,
        }
    };
}
pub(crate) use real_model_or_skip;

/// Shorthand: the Gemma 3 270M file or skip.
macro_rules! gemma3_model_or_skip {
    () => {
        match common::require(
            "the Gemma 3 270M model (scripts/fetch-model.sh gemma3-270m)",
            common::gemma3_model(),
        ) {
            Some(p) => p,
            None => return,
        }
    };
}
pub(crate) use gemma3_model_or_skip;

/// Shorthand: ../shared or skip.
macro_rules! shared_or_skip {
    () => {
        match common::require("../shared", common::shared_dir()) {
            Some(p) => p,
            None => return,
        }
    };
}
pub(crate) use shared_or_skip;

/// The built `rfc` binary run with `args`, to completion.
pub fn rfc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(args)
        .output()
        .unwrap()
}

/// `rfc perplexity MODEL -f TEXT --ctx 512` through the built binary: the
/// value of its last line, `PPL = <value>`.
#[allow(dead_code)]
pub fn rfc_perplexity(model: &std::path::Path, text: &std::path::Path) -> f64 {
    rfc_perplexity_with(model, text, &[])
}

/// [`rfc_perplexity`] with more flags (e.g. `--cache-type-k q8_0`).
#[allow(dead_code)]
pub fn rfc_perplexity_with(model: &std::path::Path, text: &std::path::Path, extra: &[&str]) -> f64 {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args([
            "perplexity",
            model.to_str().unwrap(),
            "-f",
            text.to_str().unwrap(),
            "--ctx",
            "512",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rfc perplexity failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_prefix("PPL = ")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("last line is not `PPL = <value>`: {last:?}"))
}

/// `rfc compile` of the tiny model `spec` (written with `seed`) for
/// `target`, in a fresh temporary folder: (exit code, stderr, whether an
/// output file was left behind).
pub fn compile_tiny(
    spec: &rocmforge::synth::TinySpec,
    seed: u64,
    target: &str,
) -> (i32, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    std::fs::write(&model, spec.to_bytes(seed).unwrap()).unwrap();
    let out_file = dir.path().join("m.rfc");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(["compile", model.to_str().unwrap(), "--target", target, "-o"])
        .arg(&out_file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out_file.exists(),
    )
}

/// Deterministic xorshift generator for test data; `normal` is roughly
/// normal (a sum of four uniforms).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() - 2.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

/// ‖a − b‖₂ / ‖b‖₂ of two f32 outputs (COMPARING.md); unequal lengths, NaN
/// or Inf fail.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "outputs of different lengths");
    assert!(a.iter().all(|v| v.is_finite()), "non-finite output");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    (num / den).sqrt()
}
