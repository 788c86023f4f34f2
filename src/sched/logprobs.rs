//! Log-probabilities of a logits row, as OpenAI's `logprobs` reports them:
//! the model's own distribution (softmax of the raw logits, before
//! penalties, truncation and temperature), natural log.

use super::request::{Logprobs, TokenLogprob};
use crate::tokenizer::Tokenizer;

/// The chosen token's log-probability and the `n` most likely tokens.
pub fn logprobs_of(logits: &[f32], chosen: u32, n: usize, tokenizer: &Tokenizer) -> Logprobs {
    let max = logits
        .iter()
        .copied()
        .filter(|l| !l.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .filter(|l| !l.is_nan())
        .map(|&l| ((l - max) as f64).exp())
        .sum();
    let log_z = max as f64 + sum.ln();
    let lp = |id: u32| {
        let l = logits[id as usize];
        if l.is_nan() {
            f32::NEG_INFINITY
        } else {
            (l as f64 - log_z) as f32
        }
    };
    let entry = |id: u32| TokenLogprob {
        id,
        bytes: tokenizer.text_bytes(id).to_vec(),
        logprob: lp(id),
    };
    let mut top: Vec<u32> = Vec::with_capacity(n + 1);
    if n > 0 {
        // One pass keeping the n best, most likely first (ids break ties).
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() {
                continue;
            }
            let id = i as u32;
            if top.len() == n && l <= logits[top[n - 1] as usize] {
                continue;
            }
            let at = top.partition_point(|&t| logits[t as usize] >= l);
            top.insert(at, id);
            top.truncate(n);
        }
    }
    Logprobs {
        chosen: entry(chosen),
        top: top.into_iter().map(entry).collect(),
    }
}

/// [`logprobs_of`] from a row's best candidates (raw logits, best first)
/// and its log-sum-exp, as a backend selects them on the device. The
/// chosen token is among the candidates (it was drawn from them).
pub fn logprobs_from_top(
    cands: &[(u32, f32)],
    lse: f32,
    chosen: u32,
    n: usize,
    tokenizer: &Tokenizer,
) -> Logprobs {
    let entry = |id: u32, logit: f32| TokenLogprob {
        id,
        bytes: tokenizer.text_bytes(id).to_vec(),
        logprob: logit - lse,
    };
    let chosen_logit = cands
        .iter()
        .find(|c| c.0 == chosen)
        .map_or(f32::NEG_INFINITY, |c| c.1);
    Logprobs {
        chosen: entry(chosen, chosen_logit),
        top: cands.iter().take(n).map(|&(id, l)| entry(id, l)).collect(),
    }
}
