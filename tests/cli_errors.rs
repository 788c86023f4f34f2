//! Bad input to `rfc run` gets a clear error and a non-zero exit, never a
//! panic: prompts too long or empty, prompt files that are not UTF-8,
//! architectures and quant types the engine does not know.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rocmforge::gguf::{GgufFile, GgufWriter};
use rocmforge::quant::GgmlType;

fn rfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tiny qwen2 model in `dir` (`ty` weights).
fn tiny_model(dir: &Path, ty: &str) -> PathBuf {
    let path = dir.join(format!("tiny-{ty}.gguf"));
    let o = rfc(&[
        "synth",
        "tiny",
        "--arch",
        "qwen2",
        "--type",
        ty,
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    path
}

/// Copies `src` with metadata `key` replaced, or the type of tensor `tensor`
/// changed to `ty` (same block size, so the bytes still fit).
fn rewrite(src: &Path, dst: &Path, key: Option<(&str, &str)>, tensor: Option<(&str, GgmlType)>) {
    let f = GgufFile::open(src).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata().iter() {
        match key {
            Some((kk, vv)) if kk == k => w.add_metadata(k, vv.to_string()).unwrap(),
            _ => w.add_metadata(k, v.clone()).unwrap(),
        };
    }
    for t in f.tensors() {
        let ty = match tensor {
            Some((name, ty)) if name == t.name => ty,
            _ => t.ty,
        };
        w.add_tensor(&t.name, &t.dims, ty, f.view(t).data.to_vec())
            .unwrap();
    }
    w.write_file(dst).unwrap();
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success");
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit code (a panic exits 101): {err}"
    );
    assert!(err.contains("error:"), "no error line: {err}");
    assert!(
        err.to_lowercase().contains(needle),
        "{needle:?} not in: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let d = tmp();
    let m = tiny_model(d.path(), "F32");
    let long = "a b c d e f g h ".repeat(40);
    let o = rfc(&[
        "run",
        m.to_str().unwrap(),
        "-p",
        &long,
        "--ctx",
        "32",
        "-n",
        "4",
    ]);
    assert_clean_failure(&o, "context");
}

#[test]
fn an_empty_prompt_is_refused() {
    let d = tmp();
    let m = tiny_model(d.path(), "F32");
    let o = rfc(&["run", m.to_str().unwrap(), "-p", "", "-n", "4"]);
    assert_clean_failure(&o, "empty");
}

#[test]
fn a_prompt_file_that_is_not_utf8_is_refused() {
    let d = tmp();
    let m = tiny_model(d.path(), "F32");
    let p = d.path().join("prompt.txt");
    std::fs::write(&p, b"caf\xe9 au lait").unwrap();
    let o = rfc(&[
        "run",
        m.to_str().unwrap(),
        "-f",
        p.to_str().unwrap(),
        "-n",
        "4",
    ]);
    assert_clean_failure(&o, "utf-8");
}

#[test]
fn an_unknown_architecture_is_refused() {
    let d = tmp();
    let m = tiny_model(d.path(), "F32");
    let bad = d.path().join("bad-arch.gguf");
    rewrite(&m, &bad, Some(("general.architecture", "gpt-neox")), None);
    let o = rfc(&["run", bad.to_str().unwrap(), "-p", "hi", "-n", "4"]);
    assert_clean_failure(&o, "architecture");
}

#[test]
fn an_unsupported_quant_type_is_refused_by_name() {
    let d = tmp();
    let m = tiny_model(d.path(), "F32");
    let bad = d.path().join("bad-type.gguf");
    // I32 elements have F32's size: the file stays valid, the type is not computable.
    rewrite(&m, &bad, None, Some(("blk.0.attn_q.weight", GgmlType::I32)));
    let o = rfc(&["run", bad.to_str().unwrap(), "-p", "hi", "-n", "4"]);
    assert_clean_failure(&o, "i32");
}

#[test]
fn a_missing_model_file_is_refused() {
    let o = rfc(&["run", "/nonexistent/model.gguf", "-p", "hi"]);
    assert_clean_failure(&o, "/nonexistent/model.gguf");
}

#[test]
fn a_preset_takes_a_layer_type_and_refuses_one_its_rows_cannot_hold() {
    let d = tmp();
    let out = d.path().join("l8.gguf");
    let o = rfc(&[
        "synth",
        "llama8b",
        out.to_str().unwrap(),
        "--layers",
        "1",
        "--type",
        "IQ2_XS",
    ]);
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    let f = GgufFile::open(&out).unwrap();
    let ty = |name: &str| f.tensor_info(name).unwrap().ty;
    assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::IQ2_XS);
    assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::IQ2_XS);
    assert_eq!(ty("output.weight"), GgmlType::Q6_K);
    // qwen05b's 896-wide rows hold no 256-element block.
    let o = rfc(&[
        "synth",
        "qwen05b",
        d.path().join("q.gguf").to_str().unwrap(),
        "--layers",
        "1",
        "--type",
        "IQ4_XS",
    ]);
    assert_clean_failure(&o, "not a multiple");
    let o = rfc(&["synth", "llama8b", out.to_str().unwrap(), "--ffn", "64"]);
    assert_clean_failure(&o, "fixed layout");
}
