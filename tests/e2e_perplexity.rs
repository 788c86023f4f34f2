//! `rfc perplexity` on the real model and ../shared's reference text, as
//! llama-perplexity computes it (n_ctx 512, 9 chunks): within 0.5 % of
//! llama.cpp's 5.1707 (flash attention off; 5.1705 on), COMPARING.md.

mod common;

use common::{real_model_or_skip, shared_or_skip};

const LLAMA_CPP_PPL: f64 = 5.1707;

#[test]
fn perplexity_of_the_reference_text_is_within_half_a_percent_of_llama_cpp() {
    let model = real_model_or_skip!();
    let shared = shared_or_skip!();
    let text = shared.join("testdata/reference/fractions_py_head.txt");
    let ppl = common::rfc_perplexity(&model, &text);
    let rel = (ppl - LLAMA_CPP_PPL).abs() / LLAMA_CPP_PPL;
    eprintln!(
        "PPL = {ppl} (llama.cpp {LLAMA_CPP_PPL}, {:+.3} %)",
        100.0 * (ppl / LLAMA_CPP_PPL - 1.0)
    );
    assert!(
        rel <= 0.005,
        "PPL {ppl} is {:.3} % from llama.cpp's {LLAMA_CPP_PPL}",
        100.0 * rel
    );
}
