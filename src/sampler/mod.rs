//! Choosing the next token from logits.
//!
//! The chain is llama.cpp's default (`common_params_sampling::samplers`)
//! restricted to what we implement: penalties -> top-k -> top-p -> min-p ->
//! temperature -> draw. (llama.cpp also has DRY, top-n-sigma, typical and
//! XTC between these, all off by default.) Top-p and min-p thus see the
//! logits before temperature, as in llama.cpp. Stop strings are matched on
//! the decoded text by [`StopMatcher`].

pub mod candidates;
pub mod config;
pub mod penalties;
pub mod ranges;
pub mod stop;

pub use config::SamplerConfig;
pub use stop::{StopMatcher, StopOutcome};

use crate::rng::Rng;
use candidates::{argmax, Candidates};
use penalties::History;

/// A sampler with its own history (for penalties) and random state.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    history: History,
    rng: Rng,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        Self {
            history: History::new(cfg.penalty_last_n),
            rng: Rng::new(cfg.seed),
            cfg,
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    pub fn is_greedy(&self) -> bool {
        self.cfg.is_greedy()
    }

    /// Records a token that is part of the text (prompt tokens, or tokens
    /// chosen elsewhere) so that penalties see it. [`Sampler::sample`]
    /// records its own choices.
    pub fn accept(&mut self, id: u32) {
        self.history.push(id);
    }

    /// Forgets the history and restarts the random sequence from the seed.
    pub fn reset(&mut self) {
        self.history.clear();
        self.rng = Rng::new(self.cfg.seed);
    }

    /// Picks the next token from `logits` (one per vocabulary id; penalties
    /// are applied to it in place) and records it. Empty logits give 0.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        penalties::apply(&self.cfg, &self.history, logits);
        let id = if self.is_greedy() {
            argmax(logits).unwrap_or(0)
        } else {
            let mut c = Candidates::top_k(logits, self.cfg.top_k);
            c.top_p(self.cfg.top_p);
            c.min_p(self.cfg.min_p);
            c.temperature(self.cfg.temperature);
            c.draw(self.rng.uniform()).unwrap_or(0)
        };
        self.accept(id);
        id
    }
}

impl Sampler {
    /// Whether [`Sampler::sample_candidates`] with the `k` best tokens of
    /// a row picks what [`Sampler::sample`] picks from the whole row: no
    /// penalties (they move logits of tokens outside the list), and greedy
    /// or a top-k of at most `k`.
    pub fn can_sample_from_top(&self, k: usize) -> bool {
        !self.cfg.penalties_enabled() && (self.is_greedy() || (1..=k).contains(&self.cfg.top_k))
    }

    /// Candidates the draw needs: 1 for greedy, else `top_k`.
    pub fn candidates_needed(&self) -> usize {
        if self.is_greedy() {
            1
        } else {
            self.cfg.top_k
        }
    }

    /// [`Sampler::sample`] on a row's best tokens, sorted as
    /// [`Candidates::top_k`] sorts (see [`Sampler::can_sample_from_top`]).
    /// Records the pick. An empty list gives 0.
    pub fn sample_candidates(&mut self, sorted: Vec<(u32, f32)>) -> u32 {
        debug_assert!(!self.cfg.penalties_enabled());
        let id = if self.is_greedy() {
            sorted.first().map_or(0, |c| c.0)
        } else {
            let mut c = Candidates::from_sorted(sorted, self.cfg.top_k);
            c.top_p(self.cfg.top_p);
            c.min_p(self.cfg.min_p);
            c.temperature(self.cfg.temperature);
            c.draw(self.rng.uniform()).unwrap_or(0)
        };
        self.accept(id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(cfg: SamplerConfig, logits: &[f32], n: usize) -> Vec<u32> {
        let mut s = Sampler::new(cfg);
        (0..n).map(|_| s.sample(&mut logits.to_vec())).collect()
    }

    const FLAT: [f32; 8] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3];

    fn random() -> SamplerConfig {
        SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerConfig::default()
        }
    }

    /// The `k` best of a row, sorted as the device sorts them.
    fn best(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
        let mut c: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        c.truncate(k);
        c
    }

    #[test]
    fn sampling_from_the_best_candidates_draws_what_the_whole_row_draws() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 7919) % 113) as f32 / 17.0).collect();
        for cfg in [
            SamplerConfig::greedy(),
            SamplerConfig::default(),
            SamplerConfig {
                top_k: 32,
                top_p: 0.5,
                min_p: 0.0,
                temperature: 1.3,
                ..SamplerConfig::default()
            },
        ] {
            let mut whole = Sampler::new(cfg.clone());
            let mut top = Sampler::new(cfg);
            assert!(top.can_sample_from_top(48));
            for _ in 0..300 {
                let a = whole.sample(&mut logits.clone());
                let b = top.sample_candidates(best(&logits, 48));
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn penalties_or_a_wide_top_k_need_the_whole_row() {
        let s = Sampler::new(SamplerConfig {
            repeat_penalty: 1.1,
            ..SamplerConfig::greedy()
        });
        assert!(!s.can_sample_from_top(32));
        let s = Sampler::new(SamplerConfig {
            top_k: 0,
            ..SamplerConfig::default()
        });
        assert!(!s.can_sample_from_top(32));
        let s = Sampler::new(SamplerConfig {
            top_k: 33,
            ..SamplerConfig::default()
        });
        assert!(!s.can_sample_from_top(32));
    }

    #[test]
    fn greedy_picks_the_largest_logit() {
        assert_eq!(sampled(SamplerConfig::greedy(), &[0.0, 5.0, 1.0], 1), [1]);
    }

    #[test]
    fn the_same_seed_gives_the_same_tokens() {
        assert_eq!(sampled(random(), &FLAT, 50), sampled(random(), &FLAT, 50));
    }

    #[test]
    fn different_seeds_give_different_tokens() {
        let other = SamplerConfig {
            seed: 99,
            ..random()
        };
        assert_ne!(sampled(random(), &FLAT, 50), sampled(other, &FLAT, 50));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let cfg = SamplerConfig {
            top_k: 1,
            ..random()
        };
        assert!(Sampler::new(cfg.clone()).is_greedy());
        assert_eq!(sampled(cfg, &FLAT, 20), vec![0; 20]);
    }

    #[test]
    fn top_k_limits_the_tokens_drawn() {
        let cfg = SamplerConfig {
            top_k: 3,
            ..random()
        };
        assert!(sampled(cfg, &FLAT, 200).iter().all(|&id| id < 3));
    }

    #[test]
    fn repeat_penalty_steers_greedy_away_from_recent_tokens() {
        let cfg = SamplerConfig {
            repeat_penalty: 2.0,
            ..SamplerConfig::greedy()
        };
        let mut s = Sampler::new(cfg);
        s.accept(0);
        assert_eq!(s.sample(&mut [1.0, 0.9]), 1);
    }

    #[test]
    fn sampled_tokens_enter_the_penalty_history() {
        let cfg = SamplerConfig {
            repeat_penalty: 2.0,
            ..SamplerConfig::greedy()
        };
        let mut s = Sampler::new(cfg);
        assert_eq!(s.sample(&mut [1.0, 0.9]), 0);
        assert_eq!(s.sample(&mut [1.0, 0.9]), 1);
    }

    #[test]
    fn draws_follow_the_softmax_distribution() {
        // p = softmax([ln 3, 0]) = [0.75, 0.25]
        let ids = sampled(random(), &[3f32.ln(), 0.0], 4000);
        let share = ids.iter().filter(|&&i| i == 0).count() as f64 / ids.len() as f64;
        assert!((share - 0.75).abs() < 0.03, "{share}");
    }

    #[test]
    fn top_p_is_decided_before_temperature_flattens_the_distribution() {
        // At T = 1, p = [0.88, 0.12]: top-p 0.8 keeps only token 0, so a
        // high temperature applied afterwards cannot bring token 1 back.
        let cfg = SamplerConfig {
            top_p: 0.8,
            temperature: 100.0,
            ..random()
        };
        assert_eq!(sampled(cfg, &[2.0, 0.0], 100), vec![0; 100]);
    }

    #[test]
    fn min_p_is_decided_before_temperature_flattens_the_distribution() {
        let cfg = SamplerConfig {
            min_p: 0.5,
            temperature: 100.0,
            ..random()
        };
        assert_eq!(sampled(cfg, &[2.0, 0.0], 100), vec![0; 100]);
    }
}
