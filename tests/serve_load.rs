//! The load test (scripts/serve-load.py) and the benchmark client
//! (scripts/serve-bench.py) against `rfc serve` on a tiny synthetic model.
//! Both scripts are standard-library Python; they run with the serve
//! tests' venv python (scripts/serve-venv.sh), whose absence fails.

#[path = "serve/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{synth_tiny, Server};

const TINY_VOCAB: usize = 320;

/// Seconds of the load test's measured round: `$RFC_SERVE_LOAD_SECS`, or
/// 60 (after a 10 s warm-up). On the 2-core machine the server (one step
/// thread) and 64 Python client threads share the cores; 60 s carried
/// ~12,000 requests (~2,300 of them cancelled) at ~5,000 tokens/s, and the
/// whole test takes ~75 s. Run scripts/serve-load.py by hand for 300 s.
fn load_secs() -> u64 {
    std::env::var("RFC_SERVE_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn script(name: &str) -> std::path::PathBuf {
    harness::repo_root().join("scripts").join(name)
}

/// 64 streaming clients, random prompt and output lengths, random
/// cancellations and bad requests, prefix cache on and preemption likely (a
/// KV pool of 256 pages for 32 running sequences of up to 17 pages); then
/// no unexpected error, nothing left running, no KV page used, and RSS
/// within 10 % or 50 MB of its value after the warm-up.
#[test]
fn load_64_clients_with_cancellations() {
    let python = harness::python();
    let dir = tempfile::tempdir().unwrap();
    let model = synth_tiny(dir.path(), &[]);
    let s = Server::start(
        "load",
        &model,
        &[
            "--parallel",
            "32",
            "--kv-pages",
            "256",
            "--max-queue",
            "512",
            "--threads",
            "1",
        ],
        dir.path(),
        Duration::from_secs(60),
    );
    let secs = load_secs();
    let t0 = Instant::now();
    let out = Command::new(&python)
        .arg(script("serve-load.py"))
        .args([
            "--url",
            &s.url(),
            "--pid",
            &s.pid().to_string(),
            "--vocab",
            &TINY_VOCAB.to_string(),
        ])
        .args([
            "--clients",
            "64",
            "--duration",
            &secs.to_string(),
            "--warmup",
            "10",
        ])
        .args(["--max-prompt", "200", "--max-tokens", "64", "--json"])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "serve-load.py ({:.1} s):\n{stdout}\n{stderr}",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "serve-load.py failed ({}):\n{stdout}\n{stderr}\n--- server stderr ---\n{}",
        out.status,
        s.stderr_tail(40)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("--json output");
    assert_eq!(report["passed"], true);
    let main = &report["main"];
    assert!(main["completed"].as_u64().unwrap() >= 64, "{main}");
    assert!(main["cancelled"].as_u64().unwrap() >= 1, "{main}");
    assert_eq!(main["unexpected"], 0, "{main}");
    assert_eq!(s.metric("rfc_kv_pages_used"), 0.0);
    assert!(s.metric("rfc_requests_finished_total{reason=\"cancelled\"}") >= 1.0);
}

/// The benchmark client at small sizes: two levels, token-id prompts with a
/// shared prefix, fixed output lengths; its JSON has every figure and no
/// error.
#[test]
fn bench_client_reports_every_level() {
    let python = harness::python();
    let dir = tempfile::tempdir().unwrap();
    let model = synth_tiny(dir.path(), &[]);
    let s = Server::start(
        "bench",
        &model,
        &["--parallel", "8", "--threads", "1"],
        dir.path(),
        Duration::from_secs(60),
    );
    let hits_before = s.metric("rfc_prefix_cache_hit_tokens_total");
    let out = Command::new(&python)
        .arg(script("serve-bench.py"))
        .args([
            "--url",
            &format!("{}/v1", s.url()),
            "--vocab",
            &TINY_VOCAB.to_string(),
        ])
        .args([
            "--concurrency",
            "1,4",
            "--requests",
            "8",
            "--prompt-tokens",
            "64",
        ])
        .args(["--output-tokens", "16", "--shared-prefix", "48", "--json"])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "serve-bench.py failed ({}):\n{stdout}\n{}\n--- server ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        s.stderr_tail(30)
    );
    eprintln!("{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("--json output");
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (lv, conc) in levels.iter().zip([1, 4]) {
        assert_eq!(lv["concurrency"], conc);
        assert_eq!(lv["requests"], 8);
        assert_eq!(lv["errors"], 0, "{lv}");
        assert_eq!(lv["output_tokens"], 8 * 16, "{lv}");
        for k in [
            "output_tok_s",
            "ttft_ms_p50",
            "ttft_ms_p99",
            "itl_ms_p50",
            "itl_ms_p99",
        ] {
            let v = lv[k]
                .as_f64()
                .unwrap_or_else(|| panic!("{k} missing: {lv}"));
            assert!(v > 0.0 && v.is_finite(), "{k} = {v}");
        }
        assert!(lv["ttft_ms_p99"].as_f64() >= lv["ttft_ms_p50"].as_f64());
    }
    // The shared prefix was served from the prefix cache.
    assert!(s.metric("rfc_prefix_cache_hit_tokens_total") - hits_before >= 16.0 * 8.0);
    // And the human-readable table.
    let out = Command::new(&python)
        .arg(script("serve-bench.py"))
        .args([
            "--url",
            &s.url(),
            "--vocab",
            "320",
            "--concurrency",
            "2",
            "--requests",
            "2",
        ])
        .args([
            "--prompt-tokens",
            "8",
            "--output-tokens",
            "4",
            "--warmup",
            "0",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("TTFT p50") && table.lines().count() >= 3,
        "{table}"
    );
}
