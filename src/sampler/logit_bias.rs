//! OpenAI's `logit_bias`: a constant added to chosen tokens' logits before
//! anything else in the chain (llama.cpp's `llama_sampler_logit_bias`
//! comes first too); -100 bans a token in practice, +100 forces it.

use super::config::SamplerConfig;

/// Adds each bias to its token's logit in `logits` (indexed by token id);
/// ids outside the row are ignored.
pub fn apply(cfg: &SamplerConfig, logits: &mut [f32]) {
    for &(id, b) in &cfg.logit_bias {
        if let Some(l) = logits.get_mut(id as usize) {
            *l += b;
        }
    }
}

/// [`apply`] to a list of (token id, logit) instead of a whole row.
pub fn apply_to_list(cfg: &SamplerConfig, items: &mut [(u32, f32)]) {
    if cfg.logit_bias.is_empty() {
        return;
    }
    for (id, l) in items {
        if let Ok(i) = cfg.logit_bias.binary_search_by_key(id, |b| b.0) {
            *l += cfg.logit_bias[i].1;
        }
    }
}

/// Whether a bias can raise some logit: a token outside a list of the
/// row's best could then overtake them.
pub fn can_raise(cfg: &SamplerConfig) -> bool {
    cfg.logit_bias.iter().any(|b| b.1 > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bias: &[(u32, f32)]) -> SamplerConfig {
        SamplerConfig {
            logit_bias: bias.to_vec(),
            ..SamplerConfig::default()
        }
    }

    #[test]
    fn a_bias_is_added_to_its_token_in_a_row_and_in_a_list() {
        let c = cfg(&[(1, -100.0), (3, 2.5), (99, 1.0)]);
        let mut row = [1.0, 1.0, 1.0, 1.0];
        apply(&c, &mut row);
        assert_eq!(row, [1.0, -99.0, 1.0, 3.5]);
        let mut list = [(3, 1.0), (0, 1.0), (1, 1.0)];
        apply_to_list(&c, &mut list);
        assert_eq!(list, [(3, 3.5), (0, 1.0), (1, -99.0)]);
        assert!(can_raise(&c) && !can_raise(&cfg(&[(1, -5.0)])));
    }
}
