//! AVX2 kernels for F32, F16 and BF16 weights against f32 activations:
//! eight weights converted to f32 per step, one FMA per token.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::util::hsum_ps;
use crate::exec::cpu::acts::QuantizedActs;
use crate::exec::cpu::blocks::dequantize_row;
use crate::exec::cpu::weights::WeightMatrix;
use crate::quant::GgmlType;

trait Float8 {
    const BYTES: usize;
    const TY: GgmlType;
    /// Eight weights from `p` as f32.
    unsafe fn load8(p: *const u8) -> __m256;
}

struct F32;
struct F16;
struct Bf16;

impl Float8 for F32 {
    const BYTES: usize = 4;
    const TY: GgmlType = GgmlType::F32;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        unsafe { _mm256_loadu_ps(p as *const f32) }
    }
}

impl Float8 for F16 {
    const BYTES: usize = 2;
    const TY: GgmlType = GgmlType::F16;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

impl Float8 for Bf16 {
    const BYTES: usize = 2;
    const TY: GgmlType = GgmlType::BF16;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        unsafe {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
        }
    }
}

#[inline(always)]
unsafe fn rows_x_tokens<B: Float8, const T: usize>(w: &[u8], x: [&[f32]; T]) -> [f32; T] {
    unsafe {
        let k = x[0].len();
        let k8 = k / 8 * 8;
        let mut acc = [_mm256_setzero_ps(); T];
        for i in (0..k8).step_by(8) {
            let wv = B::load8(w.as_ptr().add(i * B::BYTES));
            for t in 0..T {
                acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[t].as_ptr().add(i)), acc[t]);
            }
        }
        let mut tail = [0f32; 8];
        dequantize_row(B::TY, &w[k8 * B::BYTES..], &mut tail[..k - k8]);
        std::array::from_fn(|t| {
            let rest: f32 = tail[..k - k8]
                .iter()
                .zip(&x[t][k8..])
                .map(|(a, b)| a * b)
                .sum();
            hsum_ps(acc[t]) + rest
        })
    }
}

const TB: usize = 4;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<B: Float8>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe {
        let mut t = toks.start;
        while t + TB <= toks.end {
            let xs: [&[f32]; TB] = std::array::from_fn(|u| x.f32_row(t + u));
            for j in rows.clone() {
                for (u, v) in rows_x_tokens::<B, TB>(w.row(j), xs).iter().enumerate() {
                    out.set(t + u, j, *v);
                }
            }
            t += TB;
        }
        for t in t..toks.end {
            for j in rows.clone() {
                out.set(t, j, rows_x_tokens::<B, 1>(w.row(j), [x.f32_row(t)])[0]);
            }
        }
    }
}

pub(in super::super) fn tile_f32(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    // SAFETY: returned only for paths with AVX2, FMA and F16C (checked by matmul).
    unsafe { tile::<F32>(w, rows, x, toks, out) }
}

pub(in super::super) fn tile_f16(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    // SAFETY: as for `tile_f32`.
    unsafe { tile::<F16>(w, rows, x, toks, out) }
}

pub(in super::super) fn tile_bf16(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    // SAFETY: as for `tile_f32`.
    unsafe { tile::<Bf16>(w, rows, x, toks, out) }
}
