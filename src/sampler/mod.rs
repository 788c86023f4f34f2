//! Choosing the next token from logits.
//!
//! The chain is llama.cpp's default (`common_params_sampling::samplers`)
//! restricted to what we implement: logit bias -> penalties -> top-k ->
//! top-p -> min-p -> temperature -> draw. (llama.cpp also has DRY, top-n-sigma, typical and
//! XTC between these, all off by default.) Top-p and min-p thus see the
//! logits before temperature, as in llama.cpp. Stop strings are matched on
//! the decoded text by [`StopMatcher`].

pub mod candidates;
pub mod config;
pub mod from_top;
pub mod goodness_of_fit;
pub mod logit_bias;
pub mod penalties;
pub mod ranges;
pub mod stop;

pub use config::SamplerConfig;
pub use from_top::RowTop;
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

    /// Picks the next token from `logits` (one per vocabulary id; biases
    /// and penalties are applied to it in place) and records it. Empty logits give 0.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        self.adjust(logits);
        let id = if self.is_greedy() {
            argmax(logits).unwrap_or(0)
        } else {
            self.truncated(logits).draw(self.rng.uniform()).unwrap_or(0)
        };
        self.accept(id);
        id
    }

    /// The chain's first links, in place: the logit biases, then the
    /// penalties.
    fn adjust(&self, row: &mut [f32]) {
        logit_bias::apply(&self.cfg, row);
        penalties::apply(&self.cfg, &self.history, row);
    }

    /// Top-k, top-p, min-p and temperature on a (penalized) row.
    fn truncated(&self, row: &[f32]) -> Candidates {
        let mut c = Candidates::top_k(row, self.cfg.top_k);
        c.top_p(self.cfg.top_p);
        c.min_p(self.cfg.min_p);
        c.temperature(self.cfg.temperature);
        c
    }
}

impl Sampler {
    /// Whether [`Sampler::sample_top`] can draw from `top`: whether the
    /// row's best tokens alone decide the list the whole row would give.
    pub fn top_decides(&self, top: &RowTop) -> bool {
        from_top::list_from_top(&self.cfg, &self.history, top).is_some()
    }

    /// [`Sampler::sample`] on a row of which only the best tokens are at
    /// hand: the same token for the same random state, and recorded; `None`
    /// (nothing drawn, nothing recorded) where the rest of the row could
    /// change the draw (see [`Sampler::top_decides`]).
    pub fn sample_top(&mut self, top: &RowTop) -> Option<u32> {
        let list = from_top::list_from_top(&self.cfg, &self.history, top)?;
        let id = if self.is_greedy() {
            list.ids().next().unwrap_or(0)
        } else {
            list.draw(self.rng.uniform()).unwrap_or(0)
        };
        self.accept(id);
        Some(id)
    }

    /// The list [`Sampler::sample`] draws from for `logits` (penalties,
    /// top-k, top-p, min-p and temperature applied; for greedy, the best
    /// token alone), without drawing: the distribution the draw follows.
    pub fn list_for_row(&self, logits: &[f32]) -> Candidates {
        let mut row = logits.to_vec();
        self.adjust(&mut row);
        if self.is_greedy() {
            return Candidates::top_k(&row, 1);
        }
        self.truncated(&row)
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
