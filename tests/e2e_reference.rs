//! The whole pipeline (GGUF → IR → passes → plan → CPU executor) on the real
//! model against llama.cpp's outputs (../shared/testdata/reference), compared
//! as ../shared/COMPARING.md says.

mod common;

use std::path::Path;

use common::{real_model_or_skip, shared_or_skip};
use rocmforge::load::{load_cpu, LoadOptions, LoadedModel};
use serde_json::Value;

/// Absolute tolerance per top-10 logit against llama.cpp (COMPARING.md).
const LOGIT_TOL: f64 = 0.2;

fn reference(shared: &Path) -> Value {
    let path = shared.join("testdata/reference/qwen25coder05b_llamacpp.json");
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

/// Against the nearer of llama.cpp's two attention paths, as COMPARING.md
/// takes the nearer of its two perplexities: llama.cpp itself moves these
/// logits by up to 0.17 between them, and ours (an online softmax, like
/// its flash path) move by as much with the summation order of a kernel:
/// on P2, our portable path lies 0.23 from the off path and 0.20 from the
/// on path; on P3 the AVX2 path 0.24 and 0.10.
#[test]
fn last_position_top10_logits_match_llama_cpp() {
    let model_path = real_model_or_skip!();
    let shared = shared_or_skip!();
    let reference = reference(&shared);
    let mut model = load(&model_path);
    for (name, p) in reference["prompts"].as_object().unwrap() {
        model.session.reset();
        let logits = model.session.eval_last(&ids(&p["token_ids"])).unwrap();
        let worst = |variant: &str| {
            p[variant]["last_pos_top10"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let id = e["id"].as_u64().unwrap() as usize;
                    (logits[id] as f64 - e["logit"].as_f64().unwrap()).abs()
                })
                .fold(0f64, f64::max)
        };
        let (off, on) = (worst("flash_attn_off"), worst("flash_attn_on"));
        eprintln!(
            "{name}: worst top-10 logit difference {off:.4} (flash attention off), {on:.4} (on)"
        );
        assert!(
            off.min(on) <= LOGIT_TOL,
            "{name}: top-10 logits differ by {off} and {on} > {LOGIT_TOL}"
        );
    }
}

#[test]
fn greedy_continuations_match_llama_cpp_up_to_the_first_near_tie() {
    let model_path = real_model_or_skip!();
    let shared = shared_or_skip!();
    let reference = reference(&shared);
    let mut model = load(&model_path);
    for (name, p) in reference["prompts"].as_object().unwrap() {
        let r = &p["flash_attn_off"];
        let want = ids(&r["greedy_ids"]);
        let gaps: Vec<f64> = r["greedy_step_top2"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[1].as_f64().unwrap() - s[3].as_f64().unwrap())
            .collect();
        let comparable = gaps
            .iter()
            .position(|&g| g < LOGIT_TOL)
            .unwrap_or(want.len());
        model.session.reset();
        let mut logits = model.session.eval_last(&ids(&p["token_ids"])).unwrap();
        let mut got = Vec::new();
        for _ in 0..comparable {
            let next = argmax(&logits);
            got.push(next);
            logits = model.session.eval_last(&[next]).unwrap();
        }
        eprintln!(
            "{name}: compared {comparable} of {} greedy tokens",
            want.len()
        );
        assert_eq!(got, want[..comparable], "{name}: greedy tokens differ");
    }
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
