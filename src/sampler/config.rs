//! Sampling parameters, with llama.cpp's defaults and meanings.

/// Sampling parameters. Defaults are llama.cpp's (`common_params_sampling`),
/// except `seed`, which is fixed so that runs repeat unless a seed is given.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Divides the logits last; `<= 0` means greedy (argmax).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches
    /// `top_p`; 1.0 disables.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely; 0 disables.
    pub min_p: f32,
    /// How many recent tokens the penalties look at; 0 disables them.
    pub penalty_last_n: usize,
    /// Divides positive (multiplies negative) logits of recent tokens; 1.0 is off.
    pub repeat_penalty: f32,
    /// Subtracted once per occurrence of a token in the window.
    pub frequency_penalty: f32,
    /// Subtracted once from every token present in the window.
    pub presence_penalty: f32,
    /// Added to these tokens' logits first (token id, bias), sorted by id,
    /// one entry per id.
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            penalty_last_n: 64,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: 0x5EED,
        }
    }
}

impl SamplerConfig {
    /// Always the most likely token (penalties still apply).
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Whether sampling reduces to argmax: no temperature, or one candidate.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    /// Whether anything changes logits before truncation (penalties or
    /// biases): the row's normalizer and order are then not the model's.
    pub fn adjusts_logits(&self) -> bool {
        self.penalties_enabled() || !self.logit_bias.is_empty()
    }

    pub fn penalties_enabled(&self) -> bool {
        self.penalty_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }
}
