//! The real Gemma 3 270M Q4_K_M file through the whole CPU pipeline against
//! llama.cpp's outputs (../shared/testdata/reference/gemma3_270m_llamacpp.json),
//! with issue #17's tolerances: prompt ids equal, last-position top-10
//! logits within 0.5 of llama.cpp's flash-attention-off run (see
//! LOGIT_TOL), greedy tokens equal up to the first near-tie (top-2 gap
//! < 0.25), perplexity within 0.5 % of the nearer of llama.cpp's figures.

mod common;

use std::path::Path;

use common::{gemma3_model_or_skip, shared_or_skip};
use rocmforge::load::{load_cpu, LoadOptions, LoadedModel};
use serde_json::Value;

/// Absolute tolerance per top-10 logit, set by how far correct
/// computations of this model land from the reference run on these
/// prompts (docs/COMPATIBILITY.md, "How far correct runs land from the
/// reference"): llama.cpp b11312 itself, flash attention off, built for
/// AVX2 differs from it by up to 0.465 and built without SIMD by 0.222;
/// the exact float64 forward pass (scripts/numpy-goldens.py's) by 0.334;
/// our AVX2, AVX-512 VNNI and portable paths by 0.28, 0.34 and 0.48. Issue
/// #17's 0.3 was below the exact computation's own distance. Errors this
/// still catches, measured on the exact pass: the global RoPE base in the
/// local layers (0.83-1.69), an RMSNorm epsilon of 1e-5 instead of 1e-6
/// (0.55); subtler ones are left to the perplexity check.
const LOGIT_TOL: f64 = 0.5;
/// Top-2 gaps below this are near-ties: greedy comparison stops there.
const NEAR_TIE: f64 = 0.25;

fn reference(shared: &Path) -> Value {
    let path = shared.join("testdata/reference/gemma3_270m_llamacpp.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn load(path: &Path) -> LoadedModel {
    load_cpu(path, &LoadOptions::default()).unwrap()
}

fn prompts(reference: &Value) -> Vec<(String, Value)> {
    let p = reference["fa_off"].as_object().unwrap();
    assert_eq!(p.len(), 3, "the reference holds three prompts");
    p.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn the_architecture_is_detected_with_its_layer_pattern() {
    let model_path = gemma3_model_or_skip!();
    let model = load(&model_path);
    let c = &model.config;
    assert_eq!(c.arch, "gemma3");
    assert_eq!((c.n_layer, c.d_model, c.head_dim), (18, 640, 256));
    assert_eq!((c.n_heads, c.n_kv_heads, c.ffn), (4, 1, 2048));
    assert!(c.tied_output);
    // Every 6th layer is global, with the file's RoPE base; the rest slide.
    let global: Vec<u32> = (0..18).filter(|&l| !c.is_local(l)).collect();
    assert_eq!(global, [5, 11, 17]);
    assert_eq!(c.attention(0).window, Some(512));
    assert_eq!(c.attention(5).window, None);
    assert_eq!(c.rope_for(0).base, 10_000.0);
    assert_eq!(c.rope_for(5).base, 1_000_000.0);
    assert_eq!(c.attention(0).scale, 1.0 / 16.0);
}

#[test]
fn prompt_token_ids_match_llama_cpp() {
    let model_path = gemma3_model_or_skip!();
    let shared = shared_or_skip!();
    let model = load(&model_path);
    for (name, p) in prompts(&reference(&shared)) {
        let text = p["prompt"].as_str().unwrap();
        let got = model.tokenizer.encode(text, true, false).unwrap();
        assert_eq!(got, ids(&p["token_ids"]), "{name}: {text:?}");
    }
}

#[test]
fn end_of_turn_and_eos_end_generation_and_chat_uses_gemma_turns() {
    let model_path = gemma3_model_or_skip!();
    let model = load(&model_path);
    let tok = &model.tokenizer;
    assert_eq!((tok.bos(), tok.eos()), (Some(2), Some(1)));
    assert!(tok.add_bos());
    let end_of_turn = tok.token_id("<end_of_turn>").unwrap();
    assert!(tok.is_eog(end_of_turn) && tok.is_eog(1));
    assert!(!tok.is_eog(tok.token_id("<start_of_turn>").unwrap()));
    let template = rocmforge::tokenizer::chat::ChatTemplate::from_gguf(&model.file).unwrap();
    let msgs = [rocmforge::tokenizer::chat::ChatMessage::new("user", "Hi")];
    let text = template.render(&msgs, true).unwrap();
    assert_eq!(
        text,
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
    // Rendered turns tokenize to their control tokens (specials parsed).
    let ids = tok.encode(&text, true, true).unwrap();
    assert_eq!(&ids[..2], &[2, tok.token_id("<start_of_turn>").unwrap()]);
    assert!(ids.contains(&end_of_turn));
}

#[test]
fn last_position_top10_logits_match_llama_cpp() {
    let model_path = gemma3_model_or_skip!();
    let shared = shared_or_skip!();
    let reference = reference(&shared);
    let mut model = load(&model_path);
    for (name, p) in prompts(&reference) {
        model.session.reset();
        let logits = model.session.eval_last(&ids(&p["token_ids"])).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()), "{name}: NaN or Inf");
        let worst = |run: &str| {
            let mut worst = 0f64;
            for e in reference[run][&name]["last_pos_top10"].as_array().unwrap() {
                let id = e["id"].as_u64().unwrap() as usize;
                let diff = (logits[id] as f64 - e["logit"].as_f64().unwrap()).abs();
                worst = worst.max(diff);
            }
            worst
        };
        let (off, on) = (worst("fa_off"), worst("fa_on"));
        eprintln!("{name}: worst top-10 logit difference {off:.4} (fa off), {on:.4} (fa on)");
        assert!(
            off <= LOGIT_TOL,
            "{name}: top-10 logits differ by {off} > {LOGIT_TOL}"
        );
    }
}

#[test]
fn greedy_continuations_match_llama_cpp_up_to_the_first_near_tie() {
    let model_path = gemma3_model_or_skip!();
    let shared = shared_or_skip!();
    let reference = reference(&shared);
    let mut model = load(&model_path);
    let mut compared_total = 0;
    for (name, p) in prompts(&reference) {
        let want = ids(&p["greedy_ids"]);
        let gaps: Vec<f64> = p["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_f64().unwrap())
            .collect();
        let comparable = gaps
            .iter()
            .position(|&g| g < NEAR_TIE)
            .unwrap_or(want.len());
        assert_eq!(
            comparable,
            p["safe_prefix_len"].as_u64().unwrap() as usize,
            "{name}: the near-tie rule reads the reference as its note says"
        );
        model.session.reset();
        let mut logits = model.session.eval_last(&ids(&p["token_ids"])).unwrap();
        let mut got = Vec::new();
        // Beyond the safe prefix, report how far ours still agrees.
        let mut agree = 0;
        for (step, &wanted) in want.iter().enumerate() {
            let next = argmax(&logits);
            if step < comparable {
                got.push(next);
            }
            if next != wanted {
                break;
            }
            agree += 1;
            logits = model.session.eval_last(&[next]).unwrap();
        }
        eprintln!(
            "{name}: compared {comparable} of {} greedy tokens (safe prefix); \
             {agree} agree before the first difference",
            want.len()
        );
        compared_total += comparable;
        assert_eq!(got, want[..comparable], "{name}: greedy tokens differ");
    }
    assert!(compared_total > 0, "no greedy token was compared");
}

#[test]
fn perplexity_of_the_reference_text_is_within_half_a_percent_of_llama_cpp() {
    let model = gemma3_model_or_skip!();
    let shared = shared_or_skip!();
    let ppl_ref = &reference(&shared)["perplexity"]["fractions_py_head.txt"];
    let (off, on) = (
        ppl_ref["ppl_fa_off"].as_f64().unwrap(),
        ppl_ref["ppl_fa_on"].as_f64().unwrap(),
    );
    let text = shared.join("testdata/reference/fractions_py_head.txt");
    let ppl = common::rfc_perplexity(&model, &text);
    let rel = [off, on]
        .iter()
        .map(|r| (ppl - r).abs() / r)
        .fold(f64::INFINITY, f64::min);
    eprintln!(
        "PPL = {ppl} (llama.cpp {off} fa off, {on} fa on; {:.3} % from the nearer)",
        100.0 * rel
    );
    assert!(
        rel <= 0.005,
        "PPL {ppl} is {:.3} % from the nearer of llama.cpp's {off} / {on}",
        100.0 * rel
    );
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}
