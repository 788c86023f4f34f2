//! `rfc inspect` on small files made by the writer: the JSON report's
//! fields, the text report's sections, and failures as exit code 1 with
//! `error: ...` on stderr.

use std::path::PathBuf;
use std::process::{Command, Output};

use rocmforge::gguf::GgufWriter;
use rocmforge::quant::GgmlType;

/// Writes `bytes` to a fresh temporary file named after the test.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("rfc-inspect-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn inspect(path: &PathBuf, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rfc"))
        .arg("inspect")
        .arg(path)
        .args(flags)
        .output()
        .unwrap()
}

fn tiny_model() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama").unwrap();
    w.add_metadata("llama.rope.freq_base", 1e4f32).unwrap();
    let vocab: Vec<String> = (0..100).map(|i| format!("tok{i}")).collect();
    w.add_metadata("tokenizer.ggml.tokens", vocab).unwrap();
    w.add_tensor(
        "token_embd.weight",
        &[32, 100],
        GgmlType::Q8_0,
        vec![0; 3400],
    )
    .unwrap();
    w.add_tensor("output_norm.weight", &[32], GgmlType::F32, vec![0; 128])
        .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn json_report_lists_tensors_in_gguf_order_with_relative_offsets() {
    let bytes = tiny_model();
    let path = temp_file("json", &bytes);
    let out = inspect(&path, &["--json"]);
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["version"], 3);
    assert_eq!(j["file_size"], bytes.len());
    assert_eq!(j["parameter_count"], 3232);
    assert_eq!(j["metadata"]["llama.rope.freq_base"], 10000.0);
    let want = serde_json::json!([
        {"name": "token_embd.weight", "type": "Q8_0", "shape": [32, 100], "offset": 0, "size": 3400},
        {"name": "output_norm.weight", "type": "F32", "shape": [32], "offset": 3424, "size": 128},
    ]);
    assert_eq!(j["tensors"], want);
    assert_eq!(j["type_totals"]["Q8_0"]["bytes"], 3400);
}

#[test]
fn json_summarizes_long_arrays_unless_full() {
    let path = temp_file("full", &tiny_model());
    let short = inspect(&path, &["--json"]);
    let full = inspect(&path, &["--json", "--full"]);
    std::fs::remove_file(&path).unwrap();
    let short: serde_json::Value = serde_json::from_slice(&short.stdout).unwrap();
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    let tokens = &short["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(tokens["type"], "array");
    assert_eq!(tokens["element_type"], "string");
    assert_eq!(tokens["len"], 100);
    assert_eq!(tokens["head"][0], "tok0");
    let all = full["metadata"]["tokenizer.ggml.tokens"]
        .as_array()
        .unwrap();
    assert_eq!(all.len(), 100);
    assert_eq!(all[99], "tok99");
}

#[test]
fn text_report_has_every_section() {
    let path = temp_file("text", &tiny_model());
    let out = inspect(&path, &[]);
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "GGUF version:  3",
        "architecture:  llama",
        "metadata (3 keys):",
        "[string; 100] [\"tok0\",",
        "tensors (2):",
        "output_norm.weight",
        "totals by type:",
        "parameters:    3232",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn a_broken_file_exits_1_with_the_error_on_stderr() {
    let mut bytes = tiny_model();
    bytes.truncate(100);
    let path = temp_file("broken", &bytes);
    let out = inspect(&path, &["--json"]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("llama.rope.freq_base"), "{err}");
    assert!(err.contains("ends at byte 100"), "{err}");
}

#[test]
fn a_missing_file_names_the_path() {
    let path = PathBuf::from("/nonexistent/model.gguf");
    let out = inspect(&path, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
}

/// A file of an architecture no spec supports (state-space layers; mixture
/// of experts, once the example, is supported now: qwen3moe, mixtral).
fn ssm_like() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "tinyssm").unwrap();
    w.add_metadata("tinyssm.block_count", 1u32).unwrap();
    w.add_metadata("tinyssm.embedding_length", 32u32).unwrap();
    w.add_metadata("tinyssm.ssm.state_size", 4u32).unwrap();
    w.add_tensor("token_embd.weight", &[32, 4], GgmlType::F32, vec![0; 512])
        .unwrap();
    w.add_tensor(
        "blk.0.ssm_in.weight",
        &[32, 8, 4],
        GgmlType::F32,
        vec![0; 4096],
    )
    .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn an_unsupported_architecture_names_what_is_missing() {
    let path = temp_file("ssm", &ssm_like());
    let text = inspect(&path, &[]);
    let json = inspect(&path, &["--json"]);
    std::fs::remove_file(&path).unwrap();
    assert!(text.status.success() && json.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("spec:          none (unknown architecture"),
        "{text}"
    );
    assert!(
        text.contains("unknown tensors: blk.{l}.ssm_in.weight"),
        "{text}"
    );
    assert!(
        text.contains("unread keys:     tinyssm.ssm.state_size"),
        "{text}"
    );
    assert!(text.contains("tinyssm.attention.head_count"), "{text}");
    assert!(text.contains("state-space"), "{text}");
    let j: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let gaps = &j["spec_gaps"];
    assert_eq!(gaps["unknown_tensors"][0], "blk.{l}.ssm_in.weight");
    assert!(gaps["missing_keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "tinyssm.feed_forward_length"));
}

#[test]
fn a_supported_file_reports_no_gaps() {
    let bytes = rocmforge::synth::TinySpec::default().to_bytes(1).unwrap();
    let path = temp_file("gaps-none", &bytes);
    let out = inspect(&path, &["--json"]);
    std::fs::remove_file(&path).unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["spec"], "llama");
    assert!(j["spec_gaps"].is_null(), "{}", j["spec_gaps"]);
}

#[test]
fn mixture_of_experts_files_report_their_spec_and_no_gaps() {
    use rocmforge::synth::{TinyArch, TinySpec};
    for (arch, spec) in [
        (TinyArch::Qwen3Moe, "qwen3moe"),
        (TinyArch::Mixtral, "mixtral"),
    ] {
        let bytes = TinySpec {
            arch,
            ..TinySpec::default()
        }
        .to_bytes(1)
        .unwrap();
        let path = temp_file(&format!("gaps-{spec}"), &bytes);
        let out = inspect(&path, &["--json"]);
        std::fs::remove_file(&path).unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["spec"], spec);
        assert!(j["spec_gaps"].is_null(), "{spec}: {}", j["spec_gaps"]);
    }
}
