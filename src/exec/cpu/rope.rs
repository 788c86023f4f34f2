//! Rotary position embedding, numerically as llama.cpp computes it.
//!
//! Pair `i` (0..head_dim/2) of a head at position `p` turns by
//! `theta_i = p * base^(-2i/head_dim) * freq_scale / factor_i`, where
//! `base^(-2i/d)` is formed like ggml does, by repeated f32 multiplication
//! of `base^(-2/d)`. `Normal` rotates adjacent pairs `(x[2i], x[2i+1])`
//! (LLaMA, Mistral); `Neox` rotates `(x[i], x[i + d/2])` (Qwen2, GPT-NeoX).

use rayon::prelude::*;

use super::error::KernelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RopeStyle {
    /// GPT-J style interleaved pairs (llama.cpp `LLAMA_ROPE_TYPE_NORM`).
    Normal,
    /// Halves of the head (llama.cpp `LLAMA_ROPE_TYPE_NEOX`).
    Neox,
}

/// The parameters shared by every token of a call.
#[derive(Debug, Clone, Copy)]
pub struct RopeParams<'a> {
    pub head_dim: usize,
    pub n_heads: usize,
    pub base: f32,
    pub style: RopeStyle,
    pub freq_scale: f32,
    /// Per-pair divisors (`rope_freqs.weight`), `head_dim/2` of them.
    pub freq_factors: Option<&'a [f32]>,
    /// YaRN's blend of interpolated and extrapolated angles.
    pub yarn: Option<Yarn>,
    /// Scales cos and sin (ggml's `attn_factor`; LongRoPE's
    /// `rope.scaling.attn_factor`, 1 elsewhere).
    pub attn_factor: f32,
}

/// YaRN as llama.cpp applies it (ggml's `rope_yarn`): pair `i`'s angle is
/// `interp·(1 − r_i) + extrap·r_i`, where `interp = freq_scale·extrap` and
/// the ramp `r_i` falls from 1 to 0 as `i` goes from `corr_dims[0]` to
/// `corr_dims[1]` (fast pairs keep their trained angles, slow ones are
/// interpolated); cos and sin are scaled by `1 + 0.1·ln(1/freq_scale)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    pub corr_dims: [f32; 2],
}

impl Yarn {
    /// The correction range for `n_dims` rotated dims trained on
    /// `orig_ctx` positions (ggml_rope_yarn_corr_dims): the pairs that turn
    /// `beta_fast` times and `beta_slow` times over the original context.
    pub fn new(n_dims: usize, orig_ctx: u32, base: f32, beta_fast: f32, beta_slow: f32) -> Yarn {
        Yarn {
            corr_dims: crate::ir::rope::yarn_corr_dims(
                n_dims, orig_ctx, base, beta_fast, beta_slow,
            ),
        }
    }

    /// How much of pair `i`'s angle is extrapolated (1: all of it).
    fn ramp(&self, i: usize) -> f32 {
        let [low, high] = self.corr_dims;
        let y = (i as f32 - low) / (high - low).max(0.001);
        1.0 - y.clamp(0.0, 1.0)
    }
}

/// Rotates `x` (`[T, n_heads*head_dim]`, row-major) in place, token `t` at
/// `positions[t]`.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &mut [f32],
    positions: &[i32],
    head_dim: usize,
    n_heads: usize,
    base: f32,
    style: RopeStyle,
    freq_scale: f32,
    freq_factors: Option<&[f32]>,
) -> Result<(), KernelError> {
    let p = RopeParams {
        head_dim,
        n_heads,
        base,
        style,
        freq_scale,
        freq_factors,
        yarn: None,
        attn_factor: 1.0,
    };
    rope_with(&p, x, positions)
}

/// [`rope`] with the parameters gathered.
pub fn rope_with(p: &RopeParams, x: &mut [f32], positions: &[i32]) -> Result<(), KernelError> {
    let width = p.n_heads * p.head_dim;
    if p.head_dim == 0 || !p.head_dim.is_multiple_of(2) {
        return Err(KernelError::SizeMismatch {
            what: "rope head_dim",
            unit: "an even number of elements",
            expected: p.head_dim + 1,
            found: p.head_dim,
        });
    }
    super::acts::check_len("rope input", x.len(), positions.len() * width)?;
    if let Some(f) = p.freq_factors {
        super::acts::check_len("rope freq_factors", f.len(), p.head_dim / 2)?;
    }
    let row = |(xr, &pos): (&mut [f32], &i32)| rope_row(p, xr, pos);
    if positions.len() <= 4 {
        x.chunks_exact_mut(width).zip(positions).for_each(row);
    } else {
        x.par_chunks_exact_mut(width).zip(positions).for_each(row);
    }
    Ok(())
}

/// Largest number of pairs whose angle table lives on the stack.
const MAX_PAIRS: usize = 256;

fn rope_row(p: &RopeParams, x: &mut [f32], pos: i32) {
    let half = p.head_dim / 2;
    if half > MAX_PAIRS {
        // Unusually wide heads: the table goes on the heap.
        let (mut cos, mut sin) = (vec![0f32; half], vec![0f32; half]);
        angles(p, pos, &mut cos, &mut sin);
        return rotate_heads(p, x, &cos, &sin);
    }
    let (mut cos, mut sin) = ([0f32; MAX_PAIRS], [0f32; MAX_PAIRS]);
    angles(p, pos, &mut cos[..half], &mut sin[..half]);
    rotate_heads(p, x, &cos[..half], &sin[..half]);
}

fn angles(p: &RopeParams, pos: i32, cos: &mut [f32], sin: &mut [f32]) {
    let theta_scale = p.base.powf(-2.0 / p.head_dim as f32);
    let mut theta = pos as f32;
    // ggml's mscale: attn_factor, times YaRN's magnitude correction.
    let mscale = p.attn_factor
        * p.yarn
            .map_or(1.0, |_| 1.0 + 0.1 * (1.0 / p.freq_scale).ln());
    for i in 0..cos.len() {
        let factor = p.freq_factors.map_or(1.0, |f| f[i]);
        let extrap = theta / factor;
        let mut t = p.freq_scale * extrap;
        if let Some(y) = p.yarn {
            let mix = y.ramp(i);
            t = t * (1.0 - mix) + extrap * mix;
        }
        cos[i] = t.cos() * mscale;
        sin[i] = t.sin() * mscale;
        theta *= theta_scale;
    }
}

fn rotate_heads(p: &RopeParams, x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_exact_mut(p.head_dim) {
        for i in 0..half {
            let (a, b) = match p.style {
                RopeStyle::Normal => (2 * i, 2 * i + 1),
                RopeStyle::Neox => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}
