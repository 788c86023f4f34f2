//! llama.cpp's tokenizer test vectors (made by HF AutoTokenizer): for every
//! vocab-only GGUF in ../shared/testdata/llama.cpp-vocab, each test text
//! tokenizes to exactly the expected ids, with no BOS/EOS added and special
//! token text not parsed (as llama.cpp's tests/test-tokenizer-0.cpp checks).

mod common;

use std::path::Path;

use common::shared_or_skip;
use rocmforge::gguf::GgufFile;
use rocmforge::tokenizer::Tokenizer;

const SEPARATOR: &str = "\n__ggml_vocab_test__\n";

fn vocab_path(dir: &Path, vocab: &str, ext: &str) -> std::path::PathBuf {
    dir.join(format!(
        "testdata/llama.cpp-vocab/ggml-vocab-{vocab}.gguf{ext}"
    ))
}

/// (text, expected ids) pairs of one vocab.
fn load_vectors(dir: &Path, vocab: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(vocab_path(dir, vocab, ".inp")).unwrap();
    let out = std::fs::read_to_string(vocab_path(dir, vocab, ".out")).unwrap();
    let mut texts: Vec<&str> = inp.split(SEPARATOR).collect();
    assert_eq!(
        texts.pop(),
        Some(""),
        "the .inp file ends with the separator"
    );
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        texts.len(),
        ids.len(),
        "{vocab}: .inp and .out disagree in count"
    );
    texts.into_iter().map(String::from).zip(ids).collect()
}

fn check_vocab(dir: &Path, vocab: &str) {
    let file = GgufFile::open(vocab_path(dir, vocab, "")).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let vectors = load_vectors(dir, vocab);
    let mut failures = Vec::new();
    for (text, expected) in &vectors {
        let got = tok.encode(text, false, false).unwrap();
        if &got != expected {
            failures.push(format!(
                "{text:?}\n   expected {expected:?}\n   got      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{vocab}: {} of {} vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn qwen2_vocab_matches_llama_cpp_vectors() {
    let dir = shared_or_skip!();
    check_vocab(&dir, "qwen2");
}

#[test]
fn llama_bpe_vocab_matches_llama_cpp_vectors() {
    let dir = shared_or_skip!();
    check_vocab(&dir, "llama-bpe");
}

#[test]
fn gpt2_vocab_matches_llama_cpp_vectors() {
    let dir = shared_or_skip!();
    check_vocab(&dir, "gpt-2");
}

#[test]
fn starcoder_vocab_matches_llama_cpp_vectors() {
    let dir = shared_or_skip!();
    check_vocab(&dir, "starcoder");
}

#[test]
fn deepseek_coder_vocab_matches_llama_cpp_vectors() {
    let dir = shared_or_skip!();
    check_vocab(&dir, "deepseek-coder");
}

#[test]
fn llama_spm_vocab_matches_llama_cpp_vectors() {
    let dir = shared_or_skip!();
    check_vocab(&dir, "llama-spm");
}

#[test]
fn phi3_vocab_matches_llama_cpp_vectors() {
    let dir = shared_or_skip!();
    check_vocab(&dir, "phi-3");
}
