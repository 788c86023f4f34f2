//! `rfc ir` on a tiny synthetic model file: the dumps and the stats report.

use std::path::PathBuf;
use std::process::Command;

use rocmforge::frontend::synthetic::{SyntheticArch, SyntheticModel};

/// A tiny model written to a file of its own in the temp dir.
fn model_file(arch: SyntheticArch, tag: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("rfc-passes-cli-{}-{tag}.gguf", std::process::id()));
    SyntheticModel::tiny(arch).write_file(&path).unwrap();
    path
}

fn rfc_ir(model: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .arg("ir")
        .arg(model)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rfc ir failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_first_line_names_the_spec_and_why() {
    let model = model_file(SyntheticArch::Mistral, "spec");
    let out = rfc_ir(&model, &["--after", "none"]);
    std::fs::remove_file(&model).ok();
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("# spec mistral: "), "{first}");
    assert!(first.contains("general.architecture = llama"), "{first}");
}

#[test]
fn after_all_prints_one_dump_per_pass_in_order() {
    let model = model_file(SyntheticArch::Llama, "all");
    let out = rfc_ir(&model, &["--after", "all"]);
    std::fs::remove_file(&model).ok();
    let heads: Vec<&str> = out.lines().filter(|l| l.starts_with("# after ")).collect();
    assert_eq!(
        heads,
        [
            "# after qkv_concat",
            "# after fuse",
            "# after dce",
            "# after plan_memory"
        ]
    );
    assert!(
        out.contains(" arena["),
        "the plan_memory dump shows arena ranges"
    );
}

#[test]
fn after_fuse_has_no_rope_or_kv_store_left() {
    let model = model_file(SyntheticArch::Qwen2, "fuse");
    let out = rfc_ir(&model, &["--after", "fuse"]);
    std::fs::remove_file(&model).ok();
    assert!(out.contains("= matmul"));
    assert!(
        !out.contains("= rope") && !out.contains("= kv_store"),
        "{out}"
    );
}

#[test]
fn stats_json_reports_launches_bytes_and_the_arena() {
    let model = model_file(SyntheticArch::Qwen2, "json");
    let out = rfc_ir(&model, &["--stats", "--json", "--tokens", "64"]);
    std::fs::remove_file(&model).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let layers = SyntheticModel::tiny(SyntheticArch::Qwen2).n_layer as u64;
    assert_eq!(v["launches_per_token"], 5 * layers + 3);
    assert_eq!(v["ops_per_layer"], 5);
    assert_eq!(v["env"]["tokens"], 64);
    assert_eq!(v["spec"], "qwen2");
    for key in [
        "arena_bytes",
        "arena_lower_bound",
        "naive_bytes",
        "weight_bytes_per_token",
    ] {
        assert!(v[key].as_u64().is_some_and(|n| n > 0), "{key}");
    }
    let bytes: Vec<&serde_json::Value> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["weight_bytes_per_token"])
        .collect();
    assert!(
        bytes.iter().all(|b| *b == &v["weight_bytes_per_token"]),
        "{bytes:?}"
    );
}

#[test]
fn an_unknown_pass_fails_with_its_name() {
    let model = model_file(SyntheticArch::Llama, "unknown");
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(["ir", model.to_str().unwrap(), "--after", "fusion"])
        .output()
        .unwrap();
    std::fs::remove_file(&model).ok();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown pass `fusion`"));
}
