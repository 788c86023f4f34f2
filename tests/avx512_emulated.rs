//! The AVX-512 VNNI rows-in-lanes kernels (src/exec/cpu/dot/x86/
//! avx512_{rows,q32,k}.rs) compiled a second time, against a scalar model
//! of the instructions they name (avx512_emulated/isa512.rs), and run on
//! any machine: their data layout (the 16×4 transposes, nibble and bit
//! unpacking, scale extraction, the K-quant activation order) against the
//! portable path, and the promise that a (row, token) result is the same
//! bits however the rows and tokens of a call are grouped. The real
//! instructions run these kernels only on an AVX-512 VNNI machine (where
//! tests/cpu_kernels.rs covers them too); the model's lane-permuting
//! operations are checked here against AVX2's, which have the same
//! per-128-bit-lane definition.

#![allow(clippy::needless_range_loop)]

mod common;

use std::ops::Range;

use common::{rel_err, Rng};
use rocmforge::exec::cpu::{matmul_with, QuantizedActs, SimdPath, WeightMatrix};
use rocmforge::quant::{self, GgmlType};

#[path = "avx512_emulated/isa512.rs"]
mod isa512;

/// What the kernel files reach through `crate::`.
mod exec {
    pub mod cpu {
        pub mod acts {
            pub use rocmforge::exec::cpu::QuantizedActs;
        }
        pub mod weights {
            pub use rocmforge::exec::cpu::WeightMatrix;
        }
    }
}
/// The kernels' output: element `(t, j)` at `t * ld + j`.
pub struct OutView {
    pub data: std::cell::RefCell<Vec<f32>>,
    pub ld: usize,
}

impl OutView {
    pub fn set_run(&self, t: usize, j: usize, v: &[f32]) {
        let i = t * self.ld + j;
        self.data.borrow_mut()[i..i + v.len()].copy_from_slice(v);
    }
}

#[path = "../src/exec/cpu/dot/x86/avx512_k.rs"]
mod avx512_k;
#[path = "../src/exec/cpu/dot/x86/avx512_q32.rs"]
mod avx512_q32;
#[path = "../src/exec/cpu/dot/x86/avx512_rows.rs"]
mod avx512_rows;

/// The emulated kernel of `ty` on `rows` × `toks`.
fn run(
    ty: GgmlType,
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    use avx512_k::{Q4K, Q6K};
    use avx512_q32::{self as q, Lanes32};
    use avx512_rows::tile;
    use GgmlType::*;
    // SAFETY: the scalar model has no feature requirements; the kernels'
    // bounds are those of the matrix and activations.
    unsafe {
        match ty {
            Q4_0 => tile::<Lanes32<q::Q4_0>>(w, rows, x, toks, out),
            Q4_1 => tile::<Lanes32<q::Q4_1>>(w, rows, x, toks, out),
            Q5_0 => tile::<Lanes32<q::Q5_0>>(w, rows, x, toks, out),
            Q5_1 => tile::<Lanes32<q::Q5_1>>(w, rows, x, toks, out),
            Q8_0 => tile::<Lanes32<q::Q8_0>>(w, rows, x, toks, out),
            IQ4_NL => tile::<Lanes32<q::IQ4NL>>(w, rows, x, toks, out),
            MXFP4 => tile::<Lanes32<q::MXFP4>>(w, rows, x, toks, out),
            Q4_K => tile::<Q4K>(w, rows, x, toks, out),
            Q6_K => tile::<Q6K>(w, rows, x, toks, out),
            _ => panic!("no AVX-512 rows-in-lanes kernel for {ty}"),
        }
    }
}

/// Weights of `ty`: quantized from random values, or (IQ4_NL, MXFP4, and
/// every type with `raw`) random bytes with modest scales, so every bit
/// pattern of the levels, high bits and sub-block scales occurs.
fn weights(ty: GgmlType, rows: usize, cols: usize, raw: bool, rng: &mut Rng) -> Vec<u8> {
    use GgmlType::*;
    let bb = ty.block_bytes();
    if !raw && !matches!(ty, IQ4_NL | MXFP4) {
        let mut bytes = Vec::new();
        quant::quantize(ty, &rng.vec(rows * cols), &mut bytes).unwrap();
        return bytes;
    }
    let mut w: Vec<u8> = (0..rows * cols / ty.block_len() * bb)
        .map(|_| rng.next_u64() as u8)
        .collect();
    for block in w.chunks_exact_mut(bb) {
        let mut half = || half::f16::from_f32(rng.normal() * 0.01).to_le_bytes();
        match ty {
            // E8M0 exponents 0..4 (subnormal scales) and around 2^-7.
            MXFP4 => block[0] = [0, 1, 2, 3, 118, 121][(rng.next_u64() % 6) as usize],
            Q4_1 | Q5_1 | Q4_K => {
                block[0..2].copy_from_slice(&half());
                block[2..4].copy_from_slice(&half());
            }
            Q6_K => block[208..210].copy_from_slice(&half()),
            _ => block[0..2].copy_from_slice(&half()),
        }
    }
    w
}

/// The emulated kernel over `rows` × `toks` in calls of `row_splits` ×
/// `tok_splits` (each a list of cut points), into one output.
fn emulated(
    ty: GgmlType,
    w: &WeightMatrix,
    x: &QuantizedActs,
    row_cuts: &[usize],
    tok_cuts: &[usize],
) -> Vec<f32> {
    let (n, t) = (w.rows, x.rows());
    let out = OutView {
        data: vec![f32::NAN; t * n].into(),
        ld: n,
    };
    let ranges = |cuts: &[usize], end: usize| -> Vec<Range<usize>> {
        let mut at: Vec<usize> = std::iter::once(0)
            .chain(cuts.iter().copied().filter(|&c| c > 0 && c < end))
            .chain(std::iter::once(end))
            .collect();
        at.dedup();
        at.windows(2).map(|p| p[0]..p[1]).collect()
    };
    for rows in ranges(row_cuts, n) {
        for toks in ranges(tok_cuts, t) {
            run(ty, w, rows.clone(), x, toks, &out);
        }
    }
    out.data.into_inner()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn emulated_avx512_kernels_agree_with_the_portable_path_and_with_themselves_regrouped() {
    use GgmlType::*;
    let mut rng = Rng(23);
    let types = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4, Q4_K, Q6_K];
    for ty in types {
        // One block, three (no whole pair) and the real model's widths.
        let widths: &[usize] = if ty.block_len() == 256 {
            &[256, 768, 4864]
        } else {
            &[32, 96, 896]
        };
        for (&cols, rows) in widths.iter().flat_map(|c| [1, 15, 17, 45].map(|r| (c, r))) {
            if cols == 4864 && rows > 17 {
                continue; // time: the model is slow
            }
            for raw in [false, true] {
                let w_bytes = weights(ty, rows, cols, raw, &mut rng);
                let w = WeightMatrix::new(ty, &w_bytes, rows, cols);
                // MXFP4's subnormal scales need large activations for the
                // products to stay normal floats (as in cpu_kernels.rs).
                let scale = if ty == MXFP4 { 1e6 } else { 1.0 };
                let t = 13;
                let xs: Vec<f32> = rng.vec(t * cols).iter().map(|v| v * scale).collect();
                let mut x = QuantizedActs::new();
                x.prepare_with(SimdPath::Portable, &xs, t, cols, &[ty])
                    .unwrap();
                let mut portable = vec![0f32; t * rows];
                matmul_with(SimdPath::Portable, &w, &x, &mut portable, rows, 0).unwrap();

                let whole = emulated(ty, &w, &x, &[], &[]);
                let err = rel_err(&whole, &portable);
                let what = format!("{ty} {cols} cols × {rows} rows, raw {raw}");
                assert!(err < 1e-5, "{what}: emulated vs portable {err}");
                // Tokens alone, in fours and eights from odd places; rows
                // split off the sixteen-row grid.
                for (row_cuts, tok_cuts) in [
                    (vec![], (1..t).collect::<Vec<_>>()),
                    (vec![3, 20], vec![1, 5, 9]),
                    (vec![7], vec![4]),
                ] {
                    let other = emulated(ty, &w, &x, &row_cuts, &tok_cuts);
                    assert!(
                        same_bits(&whole, &other),
                        "{what}: rows cut at {row_cuts:?}, tokens at {tok_cuts:?} differ"
                    );
                }
            }
        }
    }
}

/// The model's per-128-bit-lane operations against AVX2's, on random
/// registers: each 256-bit half of a 512-bit operation must equal the
/// AVX2 instruction on that half.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_models_lane_operations_match_avx2() {
    use std::arch::x86_64 as real;
    if !is_x86_feature_detected!("avx2") || !is_x86_feature_detected!("f16c") {
        return;
    }
    let mut rng = Rng(29);
    let zmm = |rng: &mut Rng| isa512::__m512i(std::array::from_fn(|_| rng.next_u64() as u8));
    type Model = unsafe fn(isa512::__m512i, isa512::__m512i) -> isa512::__m512i;
    type Real = unsafe fn(real::__m256i, real::__m256i) -> real::__m256i;
    #[target_feature(enable = "avx2")]
    unsafe fn both(
        model: Model,
        hw: Real,
        a: isa512::__m512i,
        b: isa512::__m512i,
    ) -> (isa512::__m512i, [u8; 64]) {
        unsafe {
            let m = model(a, b);
            let mut out = [0u8; 64];
            for h in 0..2 {
                let ld = |v: &isa512::__m512i| {
                    real::_mm256_loadu_si256(v.0[32 * h..].as_ptr() as *const real::__m256i)
                };
                let r = hw(ld(&a), ld(&b));
                real::_mm256_storeu_si256(out[32 * h..].as_mut_ptr() as *mut real::__m256i, r);
            }
            (m, out)
        }
    }
    macro_rules! pair {
        ($m:ident, $r:ident) => {
            (
                stringify!($m),
                (|a, b| unsafe { isa512::$m(a, b) }) as Model,
                (|a, b| unsafe { real::$r(a, b) }) as Real,
            )
        };
    }
    let ops: [(&str, Model, Real); 9] = [
        pair!(_mm512_unpacklo_epi32, _mm256_unpacklo_epi32),
        pair!(_mm512_unpackhi_epi32, _mm256_unpackhi_epi32),
        pair!(_mm512_unpacklo_epi64, _mm256_unpacklo_epi64),
        pair!(_mm512_unpackhi_epi64, _mm256_unpackhi_epi64),
        pair!(_mm512_shuffle_epi8, _mm256_shuffle_epi8),
        pair!(_mm512_srlv_epi32, _mm256_srlv_epi32),
        pair!(_mm512_sllv_epi32, _mm256_sllv_epi32),
        pair!(_mm512_sub_epi32, _mm256_sub_epi32),
        (
            "shifts by immediates",
            (|a, _| unsafe {
                isa512::_mm512_or_si512(
                    isa512::_mm512_srli_epi32::<4>(a),
                    isa512::_mm512_xor_si512(
                        isa512::_mm512_slli_epi32::<2>(a),
                        isa512::_mm512_srai_epi32::<24>(a),
                    ),
                )
            }) as Model,
            (|a, _| unsafe {
                real::_mm256_or_si256(
                    real::_mm256_srli_epi32::<4>(a),
                    real::_mm256_xor_si256(
                        real::_mm256_slli_epi32::<2>(a),
                        real::_mm256_srai_epi32::<24>(a),
                    ),
                )
            }) as Real,
        ),
    ];
    for _ in 0..200 {
        let (a, mut b) = (zmm(&mut rng), zmm(&mut rng));
        for (name, model, hw) in ops {
            if name.contains("llv") {
                // Shift counts 0..40: past 31 included.
                b = isa512::__m512i::from_dwords(|i| b.dword(i) % 41);
            }
            // SAFETY: AVX2 detected above.
            let (m, r) = unsafe { both(model, hw, a, b) };
            assert_eq!(m.0, r, "{name}");
        }
    }
    // Halves to floats: F16C's vcvtph2ps on each half, all bit patterns
    // but NaNs' payloads (compared as bits).
    for base in (0..=u16::MAX as u32).step_by(16) {
        let mut v = [0u8; 32];
        for i in 0..16 {
            v[2 * i..2 * i + 2].copy_from_slice(&((base + i as u32) as u16).to_le_bytes());
        }
        // SAFETY: the model has no requirements; F16C detected above.
        let m = unsafe { isa512::_mm512_cvtph_ps(isa512::__m256i(v)) };
        #[target_feature(enable = "f16c")]
        unsafe fn cvt(v: &[u8; 32]) -> [f32; 16] {
            let mut out = [0f32; 16];
            for h in 0..2 {
                unsafe {
                    let x = real::_mm_loadu_si128(v[16 * h..].as_ptr() as *const real::__m128i);
                    real::_mm256_storeu_ps(out[8 * h..].as_mut_ptr(), real::_mm256_cvtph_ps(x));
                }
            }
            out
        }
        // SAFETY: F16C detected above.
        let r = unsafe { cvt(&v) };
        for i in 0..16 {
            assert!(
                m.0[i].to_bits() == r[i].to_bits() || (m.0[i].is_nan() && r[i].is_nan()),
                "cvtph {:#06x}",
                base + i as u32
            );
        }
    }
}
