//! `rfc synth qwen05b|llama8b` writes the files of
//! shared/tools/mk_synthetic_gguf.py: its metadata keys, value types and
//! values in its order, its tensor table, and its kind of bytes (uniform
//! random levels, f16 scales 0.01 / 0.001, one array per role shared by all
//! layers). The expected values below are transcribed from that script and
//! from a file it wrote (read with the gguf package).

use half::f16;
use rocmforge::gguf::{GgufFile, Value, ValueType};
use rocmforge::quant::GgmlType;
use rocmforge::synth::{Fill, Preset, Vocab};

/// The script's keys in its order, for qwen05b with one layer, with the
/// types GGUFWriter gives them (the arrays are checked separately).
fn qwen05b_scalars() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("general.name", Value::String("synthetic-qwen05b".into())),
        ("qwen2.context_length", Value::U32(32768)),
        ("qwen2.embedding_length", Value::U32(896)),
        ("qwen2.block_count", Value::U32(1)),
        ("qwen2.feed_forward_length", Value::U32(4864)),
        ("qwen2.attention.head_count", Value::U32(14)),
        ("qwen2.attention.head_count_kv", Value::U32(2)),
        ("qwen2.rope.freq_base", Value::F32(1e6)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("qwen2.rope.dimension_count", Value::U32(64)),
        ("general.file_type", Value::U32(15)),
        ("qwen2.vocab_size", Value::U32(151936)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens", Value::Bool(false)),
        ("tokenizer.ggml.token_type", Value::Bool(false)),
        ("tokenizer.ggml.merges", Value::Bool(false)),
        ("tokenizer.ggml.bos_token_id", Value::U32(151934)),
        ("tokenizer.ggml.eos_token_id", Value::U32(151935)),
    ]
}

#[test]
fn qwen05b_metadata_is_the_scripts() {
    let w = Preset::Qwen05b
        .spec(Some(1))
        .unwrap()
        .gguf_header()
        .unwrap();
    let got: Vec<(&str, &Value)> = w.metadata().iter().collect();
    let want = qwen05b_scalars();
    assert_eq!(got.len(), want.len());
    for ((k, v), (wk, wv)) in got.iter().zip(&want) {
        assert_eq!(k, wk);
        if !matches!(wv, Value::Bool(false)) {
            assert_eq!(*v, wv, "{k}");
        }
    }
    let md = w.metadata();
    let tokens = md.get("tokenizer.ggml.tokens").unwrap();
    let Value::Array(ValueType::String, tokens) = tokens else {
        panic!("tokens are {tokens:?}")
    };
    assert_eq!(tokens.len(), 151936);
    assert_eq!(tokens[0], Value::String("!".into()));
    // Byte 0x0A ("\n") is U+010A, the 11th byte outside the printable runs.
    assert_eq!(tokens[188 + 10], Value::String("\u{010A}".into()));
    assert_eq!(tokens[256], Value::String("tok256".into()));
    assert_eq!(tokens[151934], Value::String("<|bos|>".into()));
    let Some(Value::Array(ValueType::I32, types)) = md.get("tokenizer.ggml.token_type") else {
        panic!("token types")
    };
    assert_eq!(
        (types[0].clone(), types[151935].clone()),
        (Value::I32(1), Value::I32(3))
    );
    let merges = md.get("tokenizer.ggml.merges").unwrap();
    assert_eq!(*merges, Value::from(vec!["Ġ t", "Ġ a"]));
}

#[test]
fn tensor_tables_are_the_scripts() {
    let w = Preset::Qwen05b
        .spec(Some(1))
        .unwrap()
        .gguf_header()
        .unwrap();
    let table: Vec<(&str, GgmlType, Vec<u64>)> = w
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.ty, t.dims.clone()))
        .collect();
    use GgmlType::*;
    let want = [
        ("token_embd.weight", Q8_0, vec![896, 151936]),
        ("blk.0.attn_norm.weight", F32, vec![896]),
        ("blk.0.attn_q.weight", Q5_0, vec![896, 896]),
        ("blk.0.attn_k.weight", Q5_0, vec![896, 128]),
        ("blk.0.attn_v.weight", Q8_0, vec![896, 128]),
        ("blk.0.attn_q.bias", F32, vec![896]),
        ("blk.0.attn_k.bias", F32, vec![128]),
        ("blk.0.attn_v.bias", F32, vec![128]),
        ("blk.0.attn_output.weight", Q5_0, vec![896, 896]),
        ("blk.0.ffn_norm.weight", F32, vec![896]),
        ("blk.0.ffn_gate.weight", Q5_0, vec![896, 4864]),
        ("blk.0.ffn_up.weight", Q5_0, vec![896, 4864]),
        ("blk.0.ffn_down.weight", Q6_K, vec![4864, 896]),
        ("output_norm.weight", F32, vec![896]),
    ];
    let want: Vec<_> = want.into_iter().collect();
    assert_eq!(table, want);
    // The offsets the script's file has (data section at 3,080,224).
    assert_eq!(w.data_offset(), 3_080_224);
    assert_eq!(w.tensors()[4].offset, 148_357_664 - 3_080_224);

    let w = Preset::Llama8b.spec(None).unwrap().gguf_header().unwrap();
    assert_eq!(w.tensors().len(), 1 + 32 * 9 + 2);
    let ty = |name: &str| w.tensors().iter().find(|t| t.name == name).map(|t| t.ty);
    assert_eq!(ty("token_embd.weight"), Some(Q4_K));
    assert_eq!(ty("blk.31.attn_v.weight"), Some(Q6_K));
    assert_eq!(ty("blk.31.ffn_down.weight"), Some(Q6_K));
    assert_eq!(ty("output.weight"), Some(Q6_K));
    assert_eq!(
        w.metadata().get("llama.rope.freq_base"),
        Some(&Value::F32(5e5))
    );
    assert_eq!(
        w.metadata().get("tokenizer.ggml.pre"),
        Some(&Value::String("llama-bpe".into()))
    );
}

/// A preset with a small vocabulary, written in memory.
fn small_qwen05b(layers: usize) -> GgufFile {
    let mut spec = Preset::Qwen05b.spec(Some(layers)).unwrap();
    spec.vocab = Vocab::benchmark(1024, "qwen2").unwrap();
    GgufFile::from_bytes(spec.to_bytes(Fill::Benchmark, 0).unwrap()).unwrap()
}

#[test]
fn blocks_carry_the_scripts_fixed_scales() {
    let f = small_qwen05b(1);
    let d = f16::from_f32(0.01).to_le_bytes();
    for (name, block, at) in [
        ("token_embd.weight", 34, 0),
        ("blk.0.attn_q.weight", 22, 0),
        ("blk.0.ffn_down.weight", 210, 208),
    ] {
        let data = f.tensor(name).unwrap().data;
        assert!(
            data.chunks_exact(block).all(|b| b[at..at + 2] == d),
            "{name}"
        );
    }
    let norm = f.tensor("output_norm.weight").unwrap().data;
    assert!(norm.chunks_exact(4).all(|v| v == 1f32.to_le_bytes()));
}

#[test]
fn layers_share_one_array_per_role_but_not_biases() {
    let f = small_qwen05b(2);
    let data = |n: &str| f.tensor(n).unwrap().data;
    assert_eq!(data("blk.0.ffn_up.weight"), data("blk.1.ffn_up.weight"));
    assert_ne!(data("blk.0.ffn_up.weight"), data("blk.0.ffn_gate.weight"));
    assert_ne!(data("blk.0.attn_q.bias"), data("blk.1.attn_q.bias"));
}
