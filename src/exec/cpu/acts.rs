//! Activations prepared once per op input, shared by every weight matrix
//! that reads them (e.g. Q5_0 q/k and Q8_0 v of one QKV matmul).
//!
//! Quantized weights are multiplied with 8-bit activations, in the form
//! their dot kernel wants:
//! - 32-element weight blocks read [`Q8x32Row`] (scale per 32, plus the
//!   block's integer sum for the offset/min corrections);
//! - K-quant super-blocks read [`Q8x256Row`]: a scale per 32 (like Q8_0's,
//!   so a sub-block of small values keeps its precision; ggml's Q8_K has one
//!   per 256, which alone moved the logits of tiny test models by 3e-2
//!   against HF, docs/COMPATIBILITY.md) and sums per 16 for the mins, so
//!   the weights' sub-block scales still apply in integers;
//! - F32/F16/BF16 weights read the activations as f32, unquantized.
//!
//! Q8x32 scales are rounded to f16 like ggml's Q8_0 (the values use the
//! exact scale), Q8x256's stay f32; values are rounded to nearest (ties to
//! even) in -127..=127, symmetric, so `-q` never overflows.

use super::error::KernelError;
use super::simd::SimdPath;
use crate::quant::GgmlType;

/// One token row in 32-element blocks: `x[i] ≈ d[i/32] * qs[i]`,
/// `sum[b] = Σ qs[32b..32b+32]` and `dsum[b] = d[b] * sum[b]` (what a
/// block minimum multiplies). `qs` starts 64-byte aligned.
#[derive(Debug, Clone, Copy)]
pub struct Q8x32Row<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub sum: &'a [i32],
    pub dsum: &'a [f32],
}

/// One token row in 256-element super-blocks of eight 32-element blocks:
/// `x[256b + 32s + i] ≈ d[b][s] * q` with `q` at
/// `qs[256b + k_slot(32s + i)]` ([`k_slot`]: the blocks' values are
/// interleaved four bytes at a time), `bsums[b][g]` the sum of the `q` of
/// elements `16g..16g+16` (what 16-element sub-block mins and offsets
/// multiply) and `dsum[b][s] = d[b][s] · Σ` of block `s`'s `q` (what a
/// 32-element sub-block's min multiplies). `qs` starts 64-byte aligned.
#[derive(Debug, Clone, Copy)]
pub struct Q8x256Row<'a> {
    pub qs: &'a [i8],
    pub d: &'a [[f32; 8]],
    pub bsums: &'a [[i16; 16]],
    pub dsum: &'a [[f32; 8]],
}

/// Where element `i` (0..256) of a super-block sits in [`Q8x256Row::qs`].
/// Each 128-element half holds blocks `s` = 0..4 (32 elements each) as
/// four 32-byte chunks: chunk `k` is bytes `4k..4k+4` of blocks 0, 1, 2, 3,
/// then bytes `16+4k..16+4k+4` of blocks 0, 1, 2, 3. That is what a 4×4
/// transpose of four weight blocks' registers (by 32-bit lanes, within
/// 128-bit halves) gives, so one register holds four blocks and a kernel
/// keeps each block's integer sum apart in its own lanes until one
/// conversion per half, instead of one per block.
#[inline(always)]
pub const fn k_slot(i: usize) -> usize {
    let (half, block, byte) = (i / 128, (i % 128) / 32, i % 32);
    let word = byte / 4;
    128 * half + 32 * (word % 4) + 16 * (word / 4) + 4 * block + byte % 4
}

/// 64 bytes of quantized activations, so every row starts cache-line aligned.
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([i8; 64]);

/// The activation form a weight type's dot kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActFormat {
    F32,
    Q8x32,
    Q8x256,
}

impl ActFormat {
    /// The form that weights of type `ty` multiply with, or `None` for a
    /// type the kernels do not compute with.
    pub fn for_weights(ty: GgmlType) -> Option<ActFormat> {
        use GgmlType::*;
        match ty {
            F32 | F16 | BF16 => Some(ActFormat::F32),
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | IQ4_NL | MXFP4 => Some(ActFormat::Q8x32),
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Some(ActFormat::Q8x256),
            IQ4_XS | TQ1_0 | TQ2_0 | IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ1_S | IQ1_M => {
                Some(ActFormat::Q8x256)
            }
            _ => None,
        }
    }

    /// Elements per block of this form.
    pub fn block_len(self) -> usize {
        match self {
            ActFormat::F32 => 1,
            ActFormat::Q8x32 => 32,
            ActFormat::Q8x256 => 256,
        }
    }
}

/// `T` rows of `k` activations in the forms requested. Buffers grow to the
/// largest shape seen and are reused: after warm-up, preparing allocates
/// nothing.
#[derive(Debug, Default)]
pub struct QuantizedActs {
    t: usize,
    k: usize,
    f32s: Vec<f32>,
    /// Quantized values of either form, rows padded to whole lines.
    qs32: Vec<Line>,
    qs256: Vec<Line>,
    d32: Vec<f32>,
    sum32: Vec<i32>,
    dsum32: Vec<f32>,
    d256: Vec<[f32; 8]>,
    bsums256: Vec<[i16; 16]>,
    dsum256: Vec<[f32; 8]>,
    has: [bool; 3],
}

fn slot(f: ActFormat) -> usize {
    match f {
        ActFormat::F32 => 0,
        ActFormat::Q8x32 => 1,
        ActFormat::Q8x256 => 2,
    }
}

impl QuantizedActs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Token rows held.
    pub fn rows(&self) -> usize {
        self.t
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Whether the form is present.
    pub fn has(&self, f: ActFormat) -> bool {
        self.has[slot(f)]
    }

    /// Prepares `x` (`t` rows of `k`) for weights of the given types, on the
    /// fastest path.
    pub fn prepare(
        &mut self,
        x: &[f32],
        t: usize,
        k: usize,
        weight_types: &[GgmlType],
    ) -> Result<(), KernelError> {
        self.prepare_with(SimdPath::detect(), x, t, k, weight_types)
    }

    /// [`prepare`](Self::prepare) on an explicit path (tests compare paths).
    pub fn prepare_with(
        &mut self,
        path: SimdPath,
        x: &[f32],
        t: usize,
        k: usize,
        weight_types: &[GgmlType],
    ) -> Result<(), KernelError> {
        check_len("activations", x.len(), t * k)?;
        let mut want = [false; 3];
        for &ty in weight_types {
            let f = ActFormat::for_weights(ty).ok_or(KernelError::UnsupportedType {
                what: "activation quantization",
                ty,
            })?;
            if !k.is_multiple_of(f.block_len()) {
                return Err(KernelError::RaggedRow {
                    what: "activation quantization",
                    ty,
                    cols: k,
                    block: f.block_len(),
                });
            }
            want[slot(f)] = true;
        }
        self.t = t;
        self.k = k;
        self.has = want;
        if want[0] {
            self.f32s.clear();
            self.f32s.extend_from_slice(x);
        }
        let lines = t * self.lines_per_row();
        if want[1] {
            self.qs32.resize(lines, Line([0; 64]));
            self.d32.resize(t * k / 32, 0.0);
            self.sum32.resize(t * k / 32, 0);
            self.dsum32.resize(t * k / 32, 0.0);
            for r in 0..t {
                let x = &x[r * k..(r + 1) * k];
                let (qs, nb) = (self.row_lines(r), k / 32);
                let qs = &mut bytemuck::cast_slice_mut(&mut self.qs32[qs])[..k];
                let (d, sum) = (
                    &mut self.d32[r * nb..(r + 1) * nb],
                    &mut self.sum32[r * nb..(r + 1) * nb],
                );
                quantize_x32(path, x, qs, d, sum);
                for (ds, (&d, &s)) in self.dsum32[r * nb..(r + 1) * nb]
                    .iter_mut()
                    .zip(d.iter().zip(sum.iter()))
                {
                    *ds = d * s as f32;
                }
            }
        }
        if want[2] {
            self.qs256.resize(lines, Line([0; 64]));
            self.d256.resize(t * k / 256, [0.0; 8]);
            self.bsums256.resize(t * k / 256, [0; 16]);
            self.dsum256.resize(t * k / 256, [0.0; 8]);
            for r in 0..t {
                let x = &x[r * k..(r + 1) * k];
                let (qs, nb) = (self.row_lines(r), k / 256);
                let qs = &mut bytemuck::cast_slice_mut(&mut self.qs256[qs])[..k];
                let rb = r * nb..(r + 1) * nb;
                let (d, bsums) = (&mut self.d256[rb.clone()], &mut self.bsums256[rb.clone()]);
                quantize_x256(path, x, qs, d, bsums);
                for ((ds, d), bs) in self.dsum256[rb.clone()]
                    .iter_mut()
                    .zip(&self.d256[rb.clone()])
                    .zip(&self.bsums256[rb])
                {
                    for s in 0..8 {
                        ds[s] = d[s] * (bs[2 * s] as i32 + bs[2 * s + 1] as i32) as f32;
                    }
                }
            }
        }
        Ok(())
    }

    fn lines_per_row(&self) -> usize {
        self.k.div_ceil(64)
    }

    fn row_lines(&self, t: usize) -> std::ops::Range<usize> {
        let n = self.lines_per_row();
        t * n..(t + 1) * n
    }

    /// Row `t` as f32 (present when prepared for a float weight type).
    pub fn f32_row(&self, t: usize) -> &[f32] {
        &self.f32s[t * self.k..(t + 1) * self.k]
    }

    /// Row `t` in 32-element blocks (present when prepared for such weights).
    pub fn q32_row(&self, t: usize) -> Q8x32Row<'_> {
        let nb = self.k / 32;
        Q8x32Row {
            qs: &bytemuck::cast_slice(&self.qs32[self.row_lines(t)])[..self.k],
            d: &self.d32[t * nb..(t + 1) * nb],
            sum: &self.sum32[t * nb..(t + 1) * nb],
            dsum: &self.dsum32[t * nb..(t + 1) * nb],
        }
    }

    /// Row `t` in 256-element blocks (present when prepared for K-quants).
    pub fn q256_row(&self, t: usize) -> Q8x256Row<'_> {
        let nb = self.k / 256;
        Q8x256Row {
            qs: &bytemuck::cast_slice(&self.qs256[self.row_lines(t)])[..self.k],
            d: &self.d256[t * nb..(t + 1) * nb],
            bsums: &self.bsums256[t * nb..(t + 1) * nb],
            dsum: &self.dsum256[t * nb..(t + 1) * nb],
        }
    }
}

pub(crate) fn check_len(
    what: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if found == expected {
        Ok(())
    } else {
        Err(KernelError::SizeMismatch {
            what,
            unit: "elements",
            expected,
            found,
        })
    }
}

/// Rounds `x / d` to the nearest integer (ties to even, which vectorises)
/// in -127..=127 (`id = 1/d`, or 0 for an all-zero block).
#[inline(always)]
fn q8(x: f32, id: f32) -> i8 {
    (x * id).round_ties_even().clamp(-127.0, 127.0) as i8
}

#[inline(always)]
fn scale_of(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    (d, if d > 0.0 { 127.0 / amax } else { 0.0 })
}

/// Runs one of the quantizers below on AVX2 where the path allows: the
/// same body, compiled with 256-bit vectors (identical results).
macro_rules! dispatch {
    ($path:expr, $body:ident, $avx2:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        if $path != SimdPath::Portable && $path.is_available() {
            // SAFETY: every non-portable path implies AVX2 and FMA.
            return unsafe { $avx2($($arg),*) };
        }
        let _ = $path;
        $body($($arg),*)
    }};
}

fn quantize_x32(path: SimdPath, x: &[f32], qs: &mut [i8], d: &mut [f32], sum: &mut [i32]) {
    dispatch!(path, quantize_x32_body, quantize_x32_avx2, (x, qs, d, sum))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_x32_avx2(x: &[f32], qs: &mut [i8], d: &mut [f32], sum: &mut [i32]) {
    quantize_x32_body(x, qs, d, sum)
}

#[inline(always)]
fn quantize_x32_body(x: &[f32], qs: &mut [i8], d: &mut [f32], sum: &mut [i32]) {
    for (b, (xs, q)) in x.chunks_exact(32).zip(qs.chunks_exact_mut(32)).enumerate() {
        let (scale, id) = scale_of(xs);
        // Stored in f16 like ggml's block_q8_0 (the values use the exact id).
        d[b] = half::f16::from_f32(scale).to_f32();
        for (q, &v) in q.iter_mut().zip(xs) {
            *q = q8(v, id);
        }
        sum[b] = q.iter().map(|&v| v as i32).sum();
    }
}

fn quantize_x256(
    path: SimdPath,
    x: &[f32],
    qs: &mut [i8],
    d: &mut [[f32; 8]],
    bsums: &mut [[i16; 16]],
) {
    dispatch!(
        path,
        quantize_x256_body,
        quantize_x256_avx2,
        (x, qs, d, bsums)
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_x256_avx2(
    x: &[f32],
    qs: &mut [i8],
    d: &mut [[f32; 8]],
    bsums: &mut [[i16; 16]],
) {
    quantize_x256_body(x, qs, d, bsums)
}

#[inline(always)]
fn quantize_x256_body(x: &[f32], qs: &mut [i8], d: &mut [[f32; 8]], bsums: &mut [[i16; 16]]) {
    for (b, (xs, q)) in x
        .chunks_exact(256)
        .zip(qs.chunks_exact_mut(256))
        .enumerate()
    {
        let mut natural = [0i8; 256];
        for (s, (xs, n)) in xs
            .chunks_exact(32)
            .zip(natural.chunks_exact_mut(32))
            .enumerate()
        {
            let (scale, id) = scale_of(xs);
            d[b][s] = scale;
            for (n, &v) in n.iter_mut().zip(xs) {
                *n = q8(v, id);
            }
        }
        for (g, s) in bsums[b].iter_mut().enumerate() {
            *s = natural[16 * g..16 * g + 16].iter().map(|&v| v as i16).sum();
        }
        for (i, &n) in natural.iter().enumerate() {
            q[k_slot(i)] = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_quants_are_the_block_types_the_dot_kernels_multiply_with() {
        for ty in GgmlType::ALL {
            let quantized = matches!(
                ActFormat::for_weights(ty),
                Some(ActFormat::Q8x32 | ActFormat::Q8x256)
            );
            let weight = GgmlType::WEIGHT_QUANTS.contains(&ty)
                || GgmlType::NEWER_WEIGHT_QUANTS.contains(&ty);
            assert_eq!(quantized, weight, "{ty:?}");
        }
    }
}
