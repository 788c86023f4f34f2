//! llama.cpp's vocabulary-only GGUF files (../shared/testdata/llama.cpp-vocab)
//! parse, and hold what the `gguf` Python package (0.19, GGUFReader) reads
//! from them.

mod common;

use common::shared_or_skip;
use rocmforge::gguf::GgufFile;

/// (file, key/value count, tokenizer.ggml.model, tokenizer.ggml.pre,
/// token count, last token, general.architecture) as read by gguf-py.
const EXPECTED: [(&str, usize, &str, &str, usize, &str, &str); 7] = [
    (
        "ggml-vocab-deepseek-coder.gguf",
        25,
        "gpt2",
        "deepseek-coder",
        32256,
        "[PAD32255]",
        "llama",
    ),
    (
        "ggml-vocab-gpt-2.gguf",
        16,
        "gpt2",
        "gpt-2",
        50257,
        "<|endoftext|>",
        "gpt2",
    ),
    (
        "ggml-vocab-llama-bpe.gguf",
        20,
        "gpt2",
        "llama-bpe",
        128256,
        "<|reserved_special_token_250|>",
        "llama",
    ),
    (
        "ggml-vocab-llama-spm.gguf",
        22,
        "llama",
        "default",
        32000,
        "给",
        "llama",
    ),
    (
        "ggml-vocab-phi-3.gguf",
        26,
        "llama",
        "default",
        32064,
        "[PAD32063]",
        "phi3",
    ),
    (
        "ggml-vocab-qwen2.gguf",
        20,
        "gpt2",
        "qwen2",
        151936,
        "[PAD151935]",
        "qwen2",
    ),
    (
        "ggml-vocab-starcoder.gguf",
        19,
        "gpt2",
        "starcoder",
        49152,
        "sdb",
        "starcoder2",
    ),
];

#[test]
fn every_vocab_file_parses() {
    let shared = shared_or_skip!();
    let dir = shared.join("testdata/llama.cpp-vocab");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gguf") {
            let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert!(f.tensors().is_empty(), "{path:?} has tensors");
            n += 1;
        }
    }
    assert!(n >= EXPECTED.len(), "only {n} vocab files in {dir:?}");
}

#[test]
fn vocab_files_hold_what_gguf_py_reads() {
    let shared = shared_or_skip!();
    let dir = shared.join("testdata/llama.cpp-vocab");
    for (name, n_kv, model, pre, n_tokens, last, arch) in EXPECTED {
        let f = GgufFile::open(dir.join(name)).unwrap();
        let md = f.metadata();
        assert_eq!(f.version(), 3, "{name}");
        assert_eq!(md.len(), n_kv, "{name}");
        assert_eq!(md.get_str("tokenizer.ggml.model").unwrap(), model, "{name}");
        assert_eq!(md.get_str("tokenizer.ggml.pre").unwrap(), pre, "{name}");
        assert_eq!(f.architecture(), Some(arch), "{name}");
        let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
        assert_eq!(tokens.len(), n_tokens, "{name}");
        assert_eq!(tokens.last(), Some(&last), "{name}");
    }
}
