//! Repetition, frequency and presence penalties over the last N tokens, as
//! llama.cpp's `llama_sampler_penalties`: for a token seen `c > 0` times,
//! `logit = logit <= 0 ? logit * repeat : logit / repeat`, then
//! `logit -= c * frequency + presence`.

use std::collections::{HashMap, VecDeque};

use super::config::SamplerConfig;

/// The recent tokens the penalties look at.
#[derive(Debug, Clone, Default)]
pub struct History {
    window: VecDeque<u32>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        Self {
            window: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn push(&mut self, id: u32) {
        if self.capacity == 0 {
            return;
        }
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back(id);
    }

    pub fn clear(&mut self) {
        self.window.clear();
    }

    pub fn len(&self) -> usize {
        self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    fn counts(&self) -> HashMap<u32, u32> {
        let mut counts = HashMap::with_capacity(self.window.len());
        for &id in &self.window {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

/// Applies the penalties to `logits` (indexed by token id) in place; ids
/// outside `logits` are ignored.
pub fn apply(cfg: &SamplerConfig, history: &History, logits: &mut [f32]) {
    if !cfg.penalties_enabled() {
        return;
    }
    for (id, count) in history.counts() {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = penalized(cfg, *l, count);
        }
    }
}

/// [`apply`] to a list of (token id, logit) instead of a whole row.
pub fn apply_to_list(cfg: &SamplerConfig, history: &History, items: &mut [(u32, f32)]) {
    if !cfg.penalties_enabled() {
        return;
    }
    let counts = history.counts();
    for (id, l) in items {
        if let Some(&count) = counts.get(id) {
            *l = penalized(cfg, *l, count);
        }
    }
}

/// A logit of a token seen `count` (> 0) times.
fn penalized(cfg: &SamplerConfig, l: f32, count: u32) -> f32 {
    let l = if l <= 0.0 {
        l * cfg.repeat_penalty
    } else {
        l / cfg.repeat_penalty
    };
    l - (count as f32 * cfg.frequency_penalty + cfg.presence_penalty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(repeat: f32, freq: f32, presence: f32) -> SamplerConfig {
        SamplerConfig {
            repeat_penalty: repeat,
            frequency_penalty: freq,
            presence_penalty: presence,
            ..SamplerConfig::default()
        }
    }

    fn history(ids: &[u32], cap: usize) -> History {
        let mut h = History::new(cap);
        ids.iter().for_each(|&i| h.push(i));
        h
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut logits = [2.0, -2.0, 2.0];
        apply(&cfg(2.0, 0.0, 0.0), &history(&[0, 1], 64), &mut logits);
        assert_eq!(logits, [1.0, -4.0, 2.0]);
    }

    #[test]
    fn frequency_penalty_scales_with_the_count() {
        let mut logits = [1.0, 1.0];
        apply(
            &cfg(1.0, 0.5, 0.0),
            &history(&[0, 0, 0, 1], 64),
            &mut logits,
        );
        assert_eq!(logits, [-0.5, 0.5]);
    }

    #[test]
    fn presence_penalty_is_subtracted_once_per_present_token() {
        let mut logits = [1.0, 1.0, 1.0];
        apply(&cfg(1.0, 0.0, 0.25), &history(&[0, 0, 1], 64), &mut logits);
        assert_eq!(logits, [0.75, 0.75, 1.0]);
    }

    #[test]
    fn only_the_last_n_tokens_count() {
        let mut logits = [2.0, 2.0];
        apply(&cfg(2.0, 0.0, 0.0), &history(&[0, 1], 1), &mut logits);
        assert_eq!(logits, [2.0, 1.0]);
    }

    #[test]
    fn neutral_settings_change_nothing() {
        let mut logits = [2.0, -1.0];
        apply(&cfg(1.0, 0.0, 0.0), &history(&[0, 1], 64), &mut logits);
        assert_eq!(logits, [2.0, -1.0]);
    }
}
