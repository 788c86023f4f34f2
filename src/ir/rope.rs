//! The numbers a [`RopeSpec`] stands for: what every backend's rotation
//! derives from the spec, computed here once so that the CPU and the GPU
//! kernels start from the same f32 values (llama.cpp's `ggml_rope_ext`
//! arguments: freq_scale, ext_factor's correction range, attn_factor).

use super::op::{RopeScaling, RopeSpec};

impl RopeSpec {
    /// Multiplies every angle: 1 / the linear or YaRN factor, else 1.
    pub fn freq_scale(&self) -> f32 {
        match self.scaling {
            RopeScaling::Linear { factor } | RopeScaling::Yarn { factor, .. } => 1.0 / factor,
            RopeScaling::None | RopeScaling::LongRope { .. } => 1.0,
        }
    }

    /// YaRN's correction range `[low, high]` of pair indices (ggml's
    /// `rope_yarn_corr_dims`): pairs below `low` keep their trained angle,
    /// pairs above `high` are interpolated, a linear ramp between.
    pub fn yarn_corr_dims(&self) -> Option<[f32; 2]> {
        let RopeScaling::Yarn {
            orig_ctx,
            beta_fast,
            beta_slow,
            ..
        } = self.scaling
        else {
            return None;
        };
        Some(yarn_corr_dims(
            self.n_rot as usize,
            orig_ctx,
            self.base,
            beta_fast,
            beta_slow,
        ))
    }

    /// Scales cos and sin (ggml's mscale): LongRoPE's attn_factor, YaRN's
    /// magnitude correction `1 + 0.1·ln(factor)`, else 1.
    pub fn magnitude(&self) -> f32 {
        match self.scaling {
            RopeScaling::LongRope { attn_factor } => attn_factor,
            RopeScaling::Yarn { .. } => 1.0 + 0.1 * (1.0 / self.freq_scale()).ln(),
            RopeScaling::None | RopeScaling::Linear { .. } => 1.0,
        }
    }
}

/// The correction range for `n_dims` rotated dims trained on `orig_ctx`
/// positions: the pairs that turn `beta_fast` times and `beta_slow` times
/// over the original context, floored and ceiled into `[0, n_dims - 1]`.
pub fn yarn_corr_dims(
    n_dims: usize,
    orig_ctx: u32,
    base: f32,
    beta_fast: f32,
    beta_slow: f32,
) -> [f32; 2] {
    let corr_dim = |n_rot: f32| {
        n_dims as f32 * (orig_ctx as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    [
        corr_dim(beta_fast).floor().max(0.0),
        corr_dim(beta_slow).ceil().min(n_dims as f32 - 1.0),
    ]
}
