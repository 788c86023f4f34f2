//! Real weights in IQ types (issue #18): the real model requantized by
//! llama.cpp's own quantizer to IQ4_XS, IQ4_NL and IQ3_S
//! (scripts/requant-iq.py: llama-cpp-python's `llama_model_quantize` with
//! `allow_requantize`, no importance matrix; the 896-wide matrices fall back
//! to IQ4_NL by llama.cpp's rules), and our CPU perplexity on each file within
//! 0.5 % of llama.cpp's on the same file (COMPARING.md's method: n_ctx 512,
//! 9 chunks). llama.cpp's figures are in tests/fixtures/iq_requant_perplexity.json
//! (scripts/llama-kv-perplexity.py FILE TEXT f16 f16 off).
//!
//! The requantized files are not in the repository: the test runs only when
//! `$RFC_REQUANT_DIR` names the folder that scripts/requant-iq.py wrote
//! (`<type>.gguf` for each type); otherwise it prints why it skipped and passes.
//! It needs the files made by the same llama.cpp version (ggml 0.25.3), whose
//! SHA-256 the fixture records.

mod common;

use common::shared_or_skip;

#[test]
fn llama_cpp_requantized_iq_files_are_within_half_a_percent_of_llama_cpp() {
    let Some(dir) = std::env::var_os("RFC_REQUANT_DIR").map(std::path::PathBuf::from) else {
        eprintln!(
            "SKIPPED: RFC_REQUANT_DIR is not set (python3 scripts/requant-iq.py MODEL DIR makes the files)"
        );
        return;
    };
    let shared = shared_or_skip!();
    let text = shared.join("testdata/reference/fractions_py_head.txt");
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::repo_root().join("tests/fixtures/iq_requant_perplexity.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for ty in ["iq4_xs", "iq4_nl", "iq3_s"] {
        let file = dir.join(format!("{ty}.gguf"));
        if !file.is_file() {
            eprintln!("SKIPPED {ty}: {} is missing", file.display());
            continue;
        }
        let theirs = fixture["ppl"][ty]
            .as_f64()
            .unwrap_or_else(|| panic!("the fixture has no figure for {ty}"));
        let ours = common::rfc_perplexity_with(&file, &text, &["--device", "cpu"]);
        let rel = (ours - theirs).abs() / theirs;
        eprintln!(
            "{ty}: PPL = {ours:.4} (llama.cpp {theirs:.4}, {:+.3} %)",
            100.0 * (ours / theirs - 1.0)
        );
        if rel > 0.005 {
            failures.push(format!(
                "{ty}: PPL {ours:.4} is {:.3} % from llama.cpp's {theirs:.4}",
                100.0 * rel
            ));
        }
        ran += 1;
    }
    if ran == 0 {
        eprintln!("SKIPPED: no requantized file in {}", dir.display());
    }
    assert!(failures.is_empty(), "{failures:?}");
}
