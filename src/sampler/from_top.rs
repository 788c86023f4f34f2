//! Drawing from a row's best tokens alone (what a GPU selects and copies
//! back instead of the whole row), where they decide the draw: the list
//! built here is then the list [`Sampler::sample`](super::Sampler::sample)
//! would build from the whole row, so the same random number gives the same
//! token. Whether they decide it depends on the values, not only on the
//! settings: a penalty can push a candidate below a token outside the list,
//! and top-p over the whole vocabulary needs the whole row's normalizer.

use super::candidates::Candidates;
use super::config::SamplerConfig;
use super::penalties::{self, History};

/// A row's best tokens and what is known of the rest.
#[derive(Debug, Clone)]
pub struct RowTop {
    /// (token id, raw logit), best first, equal logits by id; tokens the
    /// caller masks (they could never be drawn) already removed.
    pub best: Vec<(u32, f32)>,
    /// An upper bound of every raw logit not in `best` (masked tokens
    /// aside); `None` when `best` is the whole row.
    pub rest_at_most: Option<f32>,
    /// ln Σ exp(logit) over the row without its masked tokens, where known.
    pub log_norm: Option<f32>,
}

impl RowTop {
    /// From a backend's candidates: the `k` best of a row (fewer only where
    /// the row has fewer), best first, and the whole row's log-sum-exp.
    /// `masked` tokens (end of generation under `ignore_eos`) are never
    /// drawn; `masked_ids` lists every one of them.
    pub fn new(
        cands: &[(u32, f32)],
        k: usize,
        lse: f32,
        masked_ids: &[u32],
        masked: impl Fn(u32) -> bool,
    ) -> Self {
        let full = cands.len() >= k;
        let rest_at_most = full.then(|| cands.last().map_or(f32::INFINITY, |c| c.1));
        // Masking takes the masked tokens' mass out of the normalizer; one
        // outside the list has an unknown logit.
        let all_masked_listed =
            !full || masked_ids.iter().all(|id| cands.iter().any(|c| c.0 == *id));
        let log_norm = all_masked_listed.then(|| {
            let gone: f64 = cands
                .iter()
                .filter(|c| masked(c.0))
                .map(|c| f64::from(c.1 - lse).exp())
                .sum();
            (f64::from(lse) + (1.0 - gone).ln()) as f32
        });
        RowTop {
            best: cands.iter().copied().filter(|c| !masked(c.0)).collect(),
            rest_at_most,
            log_norm: log_norm.filter(|l| l.is_finite()),
        }
    }
}

/// Whether a bias or a penalty can raise a logit (a positive bias, a
/// repeat penalty below 1, a negative frequency or presence penalty): a
/// token outside the list could then overtake the candidates.
fn can_raise(cfg: &SamplerConfig) -> bool {
    super::logit_bias::can_raise(cfg)
        || cfg.penalties_enabled()
            && (cfg.repeat_penalty < 1.0
                || cfg.frequency_penalty < 0.0
                || cfg.presence_penalty < 0.0)
}

/// The list `sample` draws from (after biases, penalties, top-k, top-p,
/// min-p and temperature) built from `top` alone, or `None` where the tokens outside
/// it could change that list. Greedy gives the one best token.
pub fn list_from_top(cfg: &SamplerConfig, history: &History, top: &RowTop) -> Option<Candidates> {
    if top.rest_at_most.is_some() && can_raise(cfg) {
        return None;
    }
    let mut items = top.best.clone();
    super::logit_bias::apply_to_list(cfg, &mut items);
    penalties::apply_to_list(cfg, history, &mut items);
    let sorted = Candidates::sort(items);
    // Every token outside the list stays at or below the bound (biases and
    // penalties here only lower logits), so the candidates above it are
    // the row's best, in order. Without either the list is the row's best
    // as it stands, ties at the bound included (they were broken by id).
    let known = match top.rest_at_most {
        Some(bound) if cfg.adjusts_logits() => sorted.iter().take_while(|c| c.1 > bound).count(),
        _ => sorted.len(),
    };
    if cfg.is_greedy() {
        return (known >= 1).then(|| Candidates::from_sorted(sorted, 1));
    }
    let mut list = if top.rest_at_most.is_none() || (1..=known).contains(&cfg.top_k) {
        let mut list = Candidates::from_sorted(sorted, cfg.top_k);
        list.top_p(cfg.top_p);
        list
    } else if cfg.top_k > 0 {
        // The top-k list reaches past what is known.
        return None;
    } else {
        let prefix = sorted[..known].to_vec();
        let keep = nucleus_within(cfg, &prefix, top.log_norm)
            .or_else(|| min_p_within(cfg, &prefix, top.rest_at_most?))?;
        Candidates::from_sorted(prefix, keep)
    };
    list.min_p(cfg.min_p);
    list.temperature(cfg.temperature);
    Some(list)
}

/// Where top-p over the whole row cuts, if it cuts inside `prefix` (the
/// row's best tokens, in order): the cumulative probability is taken
/// against the whole row's normalizer. Penalties change that normalizer by
/// amounts the prefix does not show, so they leave it unknown.
fn nucleus_within(
    cfg: &SamplerConfig,
    prefix: &[(u32, f32)],
    log_norm: Option<f32>,
) -> Option<usize> {
    if cfg.top_p >= 1.0 || cfg.adjusts_logits() {
        return None;
    }
    let log_norm = f64::from(log_norm?);
    let mut cum = 0.0;
    for (i, c) in prefix.iter().enumerate() {
        cum += (f64::from(c.1) - log_norm).exp();
        if cum >= f64::from(cfg.top_p) {
            return Some(i + 1);
        }
    }
    None
}

/// Where min-p cuts, if every token past `prefix` falls below it (its
/// logits are at most `bound`): top-p may keep more than the prefix, but
/// min-p then drops all of that.
fn min_p_within(cfg: &SamplerConfig, prefix: &[(u32, f32)], bound: f32) -> Option<usize> {
    if cfg.min_p <= 0.0 {
        return None;
    }
    let threshold = prefix.first()?.1 + cfg.min_p.ln();
    (bound < threshold).then(|| {
        prefix
            .iter()
            .take_while(|c| c.1 >= threshold)
            .count()
            .max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::step::{top_rows_of, TopRows};
    use crate::rng::Rng;
    use crate::sampler::goodness_of_fit::top_draws_fit_p;
    use crate::sampler::Sampler;

    const K: usize = 48;

    /// A row of `n` logits, spread `std` (large: a few tokens dominate).
    fn row(seed: u64, n: usize, std: f32) -> Vec<f32> {
        Rng::new(seed).normal_vec(n, 0.0, std)
    }

    /// The row's `K` best as a backend returns them.
    fn top_of(row: &[f32], masked_ids: &[u32]) -> RowTop {
        let words = top_rows_of(row, row.len(), K);
        let (cands, lse) = TopRows::new(K, &words).row(0);
        RowTop::new(&cands, K, lse, masked_ids, |id| masked_ids.contains(&id))
    }

    fn cfg(top_k: usize, top_p: f32, min_p: f32) -> SamplerConfig {
        SamplerConfig {
            temperature: 0.9,
            top_k,
            top_p,
            min_p,
            ..SamplerConfig::default()
        }
    }

    /// Draws 300 tokens with `cfg` from the whole row and, in step, from
    /// its best tokens where they decide (else from the whole row, as the
    /// scheduler falls back); asserts every pair equal and returns how
    /// many draws the best tokens decided.
    fn decided(cfg: SamplerConfig, row: &[f32], masked_ids: &[u32]) -> usize {
        let mut whole = Sampler::new(cfg.clone());
        let mut top = Sampler::new(cfg);
        let t = top_of(row, masked_ids);
        let mut masked_row = row.to_vec();
        masked_ids
            .iter()
            .for_each(|&id| masked_row[id as usize] = f32::NEG_INFINITY);
        let mut n = 0;
        for i in 0..300 {
            let a = whole.sample(&mut masked_row.clone());
            let b = match top.sample_top(&t) {
                Some(b) => {
                    n += 1;
                    b
                }
                None => top.sample(&mut masked_row.clone()),
            };
            assert_eq!(a, b, "draw {i}");
        }
        n
    }

    #[test]
    fn settings_within_the_candidates_always_decide() {
        for std in [0.5, 3.0] {
            let r = row(1, 3_000, std);
            assert_eq!(decided(SamplerConfig::greedy(), &r, &[]), 300);
            assert_eq!(decided(SamplerConfig::default(), &r, &[]), 300);
            assert_eq!(decided(cfg(K, 0.5, 0.0), &r, &[]), 300);
            assert_eq!(decided(cfg(1, 1.0, 0.0), &r, &[]), 300);
        }
    }

    #[test]
    fn logit_biases_draw_as_the_whole_row_does() {
        let r = row(5, 3_000, 3.0);
        let best = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as u32;
        let worst = (0..r.len()).min_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as u32;
        let biased = |bias: Vec<(u32, f32)>, greedy: bool| SamplerConfig {
            logit_bias: bias,
            ..if greedy {
                SamplerConfig::greedy()
            } else {
                cfg(K / 2, 1.0, 0.0)
            }
        };
        // Lowering (banning the best token) keeps the candidates deciding.
        for greedy in [true, false] {
            assert_eq!(decided(biased(vec![(best, -100.0)], greedy), &r, &[]), 300);
        }
        // Raising a token from outside them needs the whole row, which
        // then draws it.
        assert_eq!(decided(biased(vec![(worst, 100.0)], true), &r, &[]), 0);
        let mut s = Sampler::new(biased(vec![(worst, 100.0)], true));
        assert_eq!(s.sample(&mut r.clone()), worst);
    }

    #[test]
    fn a_whole_vocabulary_nucleus_decides_where_the_candidates_hold_it() {
        // Peaked: a few tokens carry 90 %; flat: the nucleus reaches past
        // the candidates and the row is needed.
        let peaked = row(2, 3_000, 4.0);
        assert_eq!(decided(cfg(0, 0.9, 0.0), &peaked, &[]), 300);
        assert_eq!(decided(cfg(0, 1.0, 0.05), &peaked, &[]), 300);
        let flat = row(3, 3_000, 0.3);
        assert_eq!(decided(cfg(0, 0.9, 0.0), &flat, &[]), 0);
        // Temperature alone draws from every token.
        assert_eq!(decided(cfg(0, 1.0, 0.0), &peaked, &[]), 0);
        // A top-k past the candidates.
        assert_eq!(decided(cfg(K + 1, 1.0, 0.0), &peaked, &[]), 0);
    }

    #[test]
    fn lowering_penalties_decide_while_enough_candidates_stay_ahead() {
        let r = row(4, 3_000, 3.0);
        let penalized = |repeat, presence, freq| SamplerConfig {
            repeat_penalty: repeat,
            presence_penalty: presence,
            frequency_penalty: freq,
            ..cfg(20, 0.95, 0.0)
        };
        // The drawn tokens are penalized as they repeat; the draws stay
        // equal to the whole row's, decided or not.
        assert!(decided(penalized(1.3, 0.0, 0.0), &r, &[]) > 0);
        assert!(decided(penalized(1.0, 0.5, 0.2), &r, &[]) > 0);
        assert!(
            decided(
                SamplerConfig {
                    repeat_penalty: 1.5,
                    ..SamplerConfig::greedy()
                },
                &r,
                &[]
            ) > 0
        );
        // Raising penalties can lift any token outside the list.
        assert_eq!(decided(penalized(0.8, 0.0, 0.0), &r, &[]), 0);
        assert_eq!(decided(penalized(1.0, -0.5, 0.0), &r, &[]), 0);
    }

    #[test]
    fn masked_tokens_are_never_drawn_and_leave_the_nucleus_exact() {
        let mut r = row(5, 3_000, 4.0);
        // The best token is masked (end of generation under ignore_eos).
        let best = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as u32;
        assert_eq!(decided(SamplerConfig::greedy(), &r, &[best]), 300);
        assert_eq!(decided(cfg(0, 0.8, 0.0), &r, &[best]), 300);
        // A masked token outside the candidates: its mass is unknown, so a
        // whole-vocabulary nucleus needs the row; top-k does not.
        r[7] = -100.0;
        assert_eq!(decided(cfg(0, 0.8, 0.0), &r, &[best, 7]), 0);
        assert_eq!(decided(SamplerConfig::default(), &r, &[best, 7]), 300);
    }

    #[test]
    fn draws_from_the_candidates_follow_the_whole_rows_distribution() {
        let r = row(6, 5_000, 5.0);
        let top = top_of(&r, &[]);
        // The best tokens repeated: the penalties bite.
        let repeated: Vec<u32> = top.best.iter().take(3).map(|c| c.0).collect();
        for (c, history) in [
            (SamplerConfig::default(), &[][..]),
            (cfg(0, 0.8, 0.0), &[]),
            (cfg(0, 1.0, 0.02), &[]),
            (
                SamplerConfig {
                    repeat_penalty: 1.2,
                    presence_penalty: 0.3,
                    ..cfg(30, 0.95, 0.0)
                },
                &repeated[..],
            ),
        ] {
            let p = top_draws_fit_p(&c, history, &r, &top, 100_000)
                .unwrap_or_else(|| panic!("{c:?} undecided"));
            assert!(p >= 1e-3, "{c:?}: p = {p}");
        }
    }

    #[test]
    fn a_wrong_distribution_fails_the_fit() {
        // The fit must be able to fail: candidates of another row.
        let r = row(7, 5_000, 2.5);
        let other = row(8, 5_000, 2.5);
        let p = top_draws_fit_p(
            &SamplerConfig::default(),
            &[],
            &r,
            &top_of(&other, &[]),
            20_000,
        )
        .expect("decided");
        assert!(p < 1e-6, "p = {p}");
    }
}
