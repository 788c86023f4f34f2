//! The loader against the real Qwen2.5-Coder 0.5B Q4_K_M file.

mod common;

use std::collections::BTreeMap;

use common::real_model_or_skip;
use rocmforge::gguf::GgufFile;

#[test]
fn real_model_has_the_documented_tensor_table() {
    let path = real_model_or_skip!();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.tensors().len(), 291);
    assert_eq!(f.data_offset(), 5_947_776);
    let mut by_type = BTreeMap::new();
    for t in f.tensors() {
        *by_type.entry(t.ty.name()).or_insert(0) += 1;
    }
    let want: BTreeMap<&str, i32> = [
        ("F32", 121),
        ("Q5_0", 133),
        ("Q8_0", 13),
        ("Q4_K", 12),
        ("Q6_K", 12),
    ]
    .into();
    assert_eq!(by_type, want);
    assert_eq!(f.architecture(), Some("qwen2"));
    assert_eq!(f.metadata().get_u32("qwen2.block_count").unwrap(), 24);
    assert_eq!(
        f.tensor_info("token_embd.weight").unwrap().dims,
        vec![896, 151936]
    );
}

#[test]
fn real_model_metadata_has_the_documented_hyperparameters() {
    let path = real_model_or_skip!();
    let f = GgufFile::open(&path).unwrap();
    let md = f.metadata();
    assert_eq!(md.get_u32("qwen2.context_length").unwrap(), 32768);
    assert_eq!(md.get_u32("qwen2.embedding_length").unwrap(), 896);
    assert_eq!(md.get_u32("qwen2.feed_forward_length").unwrap(), 4864);
    assert_eq!(md.get_u32("qwen2.attention.head_count").unwrap(), 14);
    assert_eq!(md.get_u32("qwen2.attention.head_count_kv").unwrap(), 2);
    assert_eq!(md.get_f32("qwen2.rope.freq_base").unwrap(), 1e6);
    assert_eq!(
        md.get_f32("qwen2.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-6
    );
    assert_eq!(md.get_str("tokenizer.ggml.pre").unwrap(), "qwen2");
    assert_eq!(md.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 151645);
    assert_eq!(md.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 151643);
    assert!(!md.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(
        md.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        151936
    );
    assert_eq!(
        md.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        151387
    );
}

/// Runs `rfc inspect --json` on the real model.
fn inspect_json(path: &std::path::Path, full: bool) -> serde_json::Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rfc"));
    cmd.arg("inspect").arg(path).arg("--json");
    if full {
        cmd.arg("--full");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_json_gives_the_offsets_and_shapes_gguf_py_reads() {
    let path = real_model_or_skip!();
    let j = inspect_json(&path, false);
    assert_eq!(j["version"], 3);
    assert_eq!(j["data_offset"], 5_947_776);
    assert_eq!(j["file_size"], 491_400_064);
    assert_eq!(j["metadata"]["qwen2.embedding_length"], 896);
    assert_eq!(j["metadata"]["tokenizer.ggml.pre"], "qwen2");
    let tensors = j["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 291);
    // (name, type, shape, offset from the data section, bytes) per gguf-py 0.19.
    let want = [
        (
            "output.weight",
            "Q8_0",
            [896, 151936].as_slice(),
            0,
            144_643_072,
        ),
        (
            "token_embd.weight",
            "Q5_0",
            &[896, 151936],
            144_643_072,
            93_592_576,
        ),
        ("blk.0.attn_norm.weight", "F32", &[896], 238_235_648, 3584),
        (
            "blk.0.ffn_down.weight",
            "Q6_K",
            &[4864, 896],
            238_239_232,
            3_575_040,
        ),
        (
            "blk.9.attn_v.weight",
            "Q8_0",
            &[896, 128],
            485_326_848,
            121_856,
        ),
        ("output_norm.weight", "F32", &[896], 485_448_704, 3584),
    ];
    for (name, ty, shape, offset, size) in want {
        let t = tensors.iter().find(|t| t["name"] == name).unwrap();
        assert_eq!(t["type"], ty, "{name}");
        assert_eq!(t["shape"], serde_json::json!(shape), "{name}");
        assert_eq!(t["offset"], offset, "{name}");
        assert_eq!(t["size"], size, "{name}");
    }
}

#[test]
fn inspect_json_summarizes_the_vocab_unless_full() {
    let path = real_model_or_skip!();
    let tokens = &inspect_json(&path, false)["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(tokens["type"], "array");
    assert_eq!(tokens["element_type"], "string");
    assert_eq!(tokens["len"], 151936);
    assert_eq!(tokens["head"][0], "!");
    let full = &inspect_json(&path, true)["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(full.as_array().unwrap().len(), 151936);
}
