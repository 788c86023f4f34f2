//! The fuzzer's seed corpus (fuzz/seeds/): small valid files made by the
//! writer. `RFC_WRITE_FUZZ_SEEDS=1 cargo test --test gguf_fuzz_seeds`
//! regenerates them; otherwise the committed seeds must match the writer.

use std::path::PathBuf;

use rocmforge::gguf::{GgufFile, GgufWriter, Value, ValueType};
use rocmforge::quant::GgmlType;

fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

fn every_value_type() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("u8", 1u8).unwrap();
    w.add_metadata("i8", -1i8).unwrap();
    w.add_metadata("u16", 2u16).unwrap();
    w.add_metadata("i16", -2i16).unwrap();
    w.add_metadata("u32", 3u32).unwrap();
    w.add_metadata("i32", -3i32).unwrap();
    w.add_metadata("f32", 0.25f32).unwrap();
    w.add_metadata("bool", true).unwrap();
    w.add_metadata("string", "text").unwrap();
    w.add_metadata("u64", 4u64).unwrap();
    w.add_metadata("i64", -4i64).unwrap();
    w.add_metadata("f64", 0.125f64).unwrap();
    w.add_metadata("strings", vec!["a", "bc"]).unwrap();
    let nested = Value::Array(ValueType::Array, vec![vec![1u32, 2].into()]);
    w.add_metadata("nested", nested).unwrap();
    w
}

fn tensors_of_several_types() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set_alignment(64).unwrap();
    w.add_tensor("f32", &[4, 2], GgmlType::F32, vec![1; 32])
        .unwrap();
    w.add_tensor("f16", &[3], GgmlType::F16, vec![2; 6])
        .unwrap();
    w.add_tensor("q8_0", &[32], GgmlType::Q8_0, vec![3; 34])
        .unwrap();
    w.add_tensor("q4_k", &[256], GgmlType::Q4_K, vec![4; 144])
        .unwrap();
    w.add_tensor("scalar", &[], GgmlType::F32, vec![5; 4])
        .unwrap();
    w
}

fn tiny_llama_v2() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set_version(2).unwrap();
    w.add_metadata("general.architecture", "llama").unwrap();
    w.add_metadata("llama.block_count", 1u32).unwrap();
    w.add_metadata("tokenizer.ggml.tokens", vec!["<s>", "a", "b"])
        .unwrap();
    w.add_metadata("tokenizer.ggml.scores", vec![0f32, -1.0, -2.0])
        .unwrap();
    w.add_tensor("token_embd.weight", &[4, 3], GgmlType::F32, vec![0; 48])
        .unwrap();
    w.add_tensor("output_norm.weight", &[4], GgmlType::F32, vec![0; 16])
        .unwrap();
    w
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty.gguf", GgufWriter::new().to_bytes().unwrap()),
        (
            "every_value_type.gguf",
            every_value_type().to_bytes().unwrap(),
        ),
        (
            "tensors.gguf",
            tensors_of_several_types().to_bytes().unwrap(),
        ),
        ("tiny_llama_v2.gguf", tiny_llama_v2().to_bytes().unwrap()),
    ]
}

#[test]
fn seeds_are_the_writers_current_output_and_parse() {
    let dir = seeds_dir();
    let regenerate = std::env::var_os("RFC_WRITE_FUZZ_SEEDS").is_some();
    if regenerate {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, bytes) in seeds() {
        let path = dir.join(name);
        if regenerate {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(committed, bytes, "{name} is stale: regenerate the seeds");
        GgufFile::from_bytes(committed).unwrap();
    }
}
