//! `--device` and the GPU executor, seen from outside: `auto` runs on a GPU
//! when one works and otherwise falls back to the CPU with the reason;
//! `cpu` is exactly the CPU executor; a GPU that is asked for but absent is
//! a clean error. The GPU-vs-CPU test needs a GPU and skips (with the
//! reason) where there is none, as on CI; `rfc gpu-check` is the full
//! check on the H100 (docs/PERFORMANCE.md, GPU section).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::rel_err;
use rocmforge::backend::{DeviceSpec, Gpu, Vendor};
use rocmforge::exec::any_backend::{self, AnyBackend};
use rocmforge::load::{load_cpu, LoadOptions};
use rocmforge::synth::{TinyArch, TinySpec};

/// A tiny Qwen2-like model the GPU kernels accept (head_dim 32).
fn tiny_model(dir: &Path) -> PathBuf {
    let spec = TinySpec {
        arch: TinyArch::Qwen2,
        d_model: 128,
        n_heads: 4,
        n_kv_heads: 2,
        ffn: 256,
        bias: true,
        tied: true,
        ..TinySpec::default()
    };
    let path = dir.join("tiny_qwen2.gguf");
    std::fs::write(&path, spec.to_bytes(7).unwrap()).unwrap();
    path
}

fn opts() -> LoadOptions {
    LoadOptions {
        max_tokens: 16,
        max_rows: 1,
        context: 128,
        ..Default::default()
    }
}

/// Whether the best logit beats the second by more than 1e-2 of the RMS
/// (else two correct backends may pick either: COMPARING.md's near-tie).
fn clear_winner(l: &[f32]) -> bool {
    let mut v = l.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    let rms = (l.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / l.len() as f64).sqrt();
    (v[0] - v[1]) as f64 > 1e-2 * rms
}

const PROMPT: [u32; 5] = [1, 20, 300, 4, 77];

fn gpu_available() -> bool {
    [Vendor::Cuda, Vendor::Hip].into_iter().any(|v| {
        Gpu::open(v, 0)
            .and_then(|g| g.compiler().map(|_| ()))
            .is_ok()
    })
}

#[test]
fn device_cpu_gives_exactly_the_cpu_executors_logits() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let mut any = rocmforge::load::load(&path, &opts(), DeviceSpec::Cpu).unwrap();
    let mut cpu = load_cpu(&path, &opts()).unwrap();
    assert_eq!(any.session.backend().kind(), "cpu");
    let a = any.session.eval_last(&PROMPT).unwrap();
    let c = cpu.session.eval_last(&PROMPT).unwrap();
    assert_eq!(a, c);
}

#[test]
fn device_auto_runs_the_model_on_a_gpu_or_falls_back_to_the_cpu_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let mut any = rocmforge::load::load(&path, &opts(), DeviceSpec::Auto).unwrap();
    let described = any.session.backend().describe();
    let reference = load_cpu(&path, &opts())
        .unwrap()
        .session
        .eval_last(&PROMPT)
        .unwrap();
    let got = any.session.eval_last(&PROMPT).unwrap();
    if gpu_available() {
        assert!(
            matches!(any.session.backend(), AnyBackend::Gpu(_)),
            "{described}"
        );
        assert!(rel_err(&got, &reference) <= 1e-2, "{described}");
    } else {
        assert!(described.starts_with("cpu (auto: no GPU"), "{described}");
        assert_eq!(got, reference);
    }
}

#[test]
fn rfc_run_says_which_device_runs_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args([
            "run",
            path.to_str().unwrap(),
            "-p",
            "ab",
            "-n",
            "3",
            "--temp",
            "0",
        ])
        .args(["--device", "auto"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("device: "))
        .unwrap_or("");
    if gpu_available() {
        assert!(
            line.starts_with("device: cuda:") || line.starts_with("device: hip:"),
            "{err}"
        );
    } else {
        assert!(line.starts_with("device: cpu (auto: no GPU: "), "{err}");
    }
}

#[test]
fn an_absent_gpu_that_is_asked_for_is_a_clean_error() {
    if Gpu::open(Vendor::Cuda, 0).is_ok() {
        eprintln!("SKIPPED: this machine has a CUDA device");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args([
            "bench",
            path.to_str().unwrap(),
            "-p",
            "4",
            "-n",
            "2",
            "-r",
            "1",
        ])
        .args(["--device", "cuda"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error:") && err.to_lowercase().contains("cuda"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_malformed_device_is_refused_with_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let text = dir.path().join("text.txt");
    std::fs::write(&text, "some text to score ".repeat(20)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args([
            "perplexity",
            path.to_str().unwrap(),
            "-f",
            text.to_str().unwrap(),
        ])
        .args(["--device", "gpu0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad --device value") && err.contains("cuda[:N]"),
        "{err}"
    );
}

#[test]
fn gpu_greedy_tokens_and_logits_match_the_cpu() {
    if !gpu_available() {
        eprintln!("SKIPPED: no CUDA or HIP device with its runtime compiler (CI has none; rfc gpu-check runs on the H100)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let spec = if Gpu::open(Vendor::Cuda, 0).is_ok() {
        DeviceSpec::Gpu {
            vendor: Vendor::Cuda,
            ordinal: 0,
        }
    } else {
        DeviceSpec::Gpu {
            vendor: Vendor::Hip,
            ordinal: 0,
        }
    };
    let mut gpu = rocmforge::load::load(&path, &opts(), spec).unwrap();
    let mut cpu = load_cpu(&path, &opts()).unwrap();
    let (mut g, mut c) = (
        gpu.session.eval_last(&PROMPT).unwrap(),
        cpu.session.eval_last(&PROMPT).unwrap(),
    );
    for _ in 0..8 {
        assert!(rel_err(&g, &c) <= 1e-2);
        let t = any_backend::argmax(&c);
        if clear_winner(&c) {
            assert_eq!(any_backend::argmax(&g), t);
        }
        g = gpu.session.eval_last(&[t]).unwrap();
        c = cpu.session.eval_last(&[t]).unwrap();
    }
}
