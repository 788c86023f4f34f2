//! The CPU kernels against plain f64 references written here: quantized
//! matmuls against `quant::dequantize` + an f64 dot, every SIMD path
//! against the portable one, RoPE against its formula, attention against a
//! naive softmax over a paged cache.

mod common;

use common::Rng;
use rocmforge::exec::cpu::*;
use rocmforge::quant::{self, GgmlType};

const QUANT_TYPES: [GgmlType; 10] = GgmlType::WEIGHT_QUANTS;
/// The IQ, TQ and MXFP4 types.
const NEWER_TYPES: [GgmlType; 12] = GgmlType::NEWER_WEIGHT_QUANTS;
const FLOAT_TYPES: [GgmlType; 3] = [GgmlType::F32, GgmlType::F16, GgmlType::BF16];

/// ‖a − b‖₂ / ‖b‖₂ in f64 (COMPARING.md); NaN or Inf anywhere fails.
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    assert!(a.iter().all(|v| v.is_finite()), "non-finite output");
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Weights of `ty`, `rows × cols`, quantized from random values.
fn weights(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    quant::quantize(ty, &rng.vec(rows * cols), &mut bytes).unwrap();
    bytes
}

/// `x · Wᵀ` in f64 from the independent dequantizer and unquantized `x`.
fn reference(ty: GgmlType, w: &[u8], rows: usize, cols: usize, x: &[f32]) -> Vec<f64> {
    let mut wf = vec![0f32; rows * cols];
    quant::dequantize(ty, w, &mut wf).unwrap();
    let t = x.len() / cols;
    let mut out = vec![0f64; t * rows];
    for i in 0..t {
        for j in 0..rows {
            out[i * rows + j] = (0..cols)
                .map(|c| wf[j * cols + c] as f64 * x[i * cols + c] as f64)
                .sum();
        }
    }
    out
}

fn run_matmul(
    path: SimdPath,
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Vec<f32> {
    let t = x.len() / cols;
    let mut acts = QuantizedActs::new();
    acts.prepare_with(path, x, t, cols, &[ty]).unwrap();
    let mut out = vec![f32::NAN; t * rows];
    let m = WeightMatrix::new(ty, w, rows, cols);
    // As the CPU model does: AVX2 reads the interleaved copy where the type has one.
    let copy = (path == SimdPath::Avx2)
        .then(|| InterleavedRows::build(&m))
        .flatten();
    matmul_with(
        path,
        &m.with_interleaved(copy.as_ref()),
        &acts,
        &mut out,
        rows,
        0,
    )
    .unwrap();
    out
}

#[test]
fn quantized_matmul_matches_f64_reference_for_every_type_and_token_count() {
    let mut rng = Rng(7);
    for ty in QUANT_TYPES {
        let (rows, cols) = (37, 512);
        let w = weights(ty, rows, cols, &mut rng);
        for t in [1, 3, 17, 64] {
            let x = rng.vec(t * cols);
            let expected = reference(ty, &w, rows, cols, &x);
            for path in SimdPath::available() {
                let err = rel_err(&run_matmul(path, ty, &w, rows, cols, &x), &expected);
                assert!(err < 2e-2, "{ty} T={t} {path:?}: relative error {err}");
            }
        }
    }
}

/// Random bytes with every block's scale set to a modest value: for the
/// lattice types (no quantizer) every byte pattern is a valid block, so
/// this draws random grid indices, signs and sub-block scales.
fn random_valid_blocks(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let bb = ty.block_bytes();
    let mut w: Vec<u8> = (0..rows * cols / ty.block_len() * bb)
        .map(|_| rng.next_u64() as u8)
        .collect();
    for block in w.chunks_exact_mut(bb) {
        let d = half::f16::from_f32(rng.normal() * 0.01).to_bits();
        match ty {
            // E8M0: 2^(e-128) around 2^-7.
            GgmlType::MXFP4 => block[0] = 118 + (rng.next_u64() % 6) as u8,
            // d's f16 bits in the top nibbles of the four u16 words at 48..56.
            GgmlType::IQ1_M => {
                for w in 0..4 {
                    let nib = ((d >> (4 * w)) & 0xf) as u8;
                    block[49 + 2 * w] = (block[49 + 2 * w] & 0x0f) | nib << 4;
                }
            }
            _ => {
                let at = match ty {
                    GgmlType::TQ1_0 => 52,
                    GgmlType::TQ2_0 => 64,
                    _ => 0,
                };
                block[at..at + 2].copy_from_slice(&d.to_le_bytes());
            }
        }
    }
    w
}

#[test]
fn iq_tq_and_mxfp4_matmul_matches_f64_reference_on_random_valid_blocks() {
    let mut rng = Rng(11);
    for ty in NEWER_TYPES {
        let (rows, cols) = (37, 512);
        let w = random_valid_blocks(ty, rows, cols, &mut rng);
        for t in [1, 3, 17, 64] {
            let x = rng.vec(t * cols);
            let expected = reference(ty, &w, rows, cols, &x);
            for path in SimdPath::available() {
                let err = rel_err(&run_matmul(path, ty, &w, rows, cols, &x), &expected);
                assert!(err < 2e-2, "{ty} T={t} {path:?}: relative error {err}");
            }
        }
        let n = cols / ty.block_len() * ty.block_bytes();
        let (mut ours, mut theirs) = (vec![0f32; cols], vec![0f32; cols]);
        dequantize_row(ty, &w[..n], &mut ours).unwrap();
        quant::dequantize(ty, &w[..n], &mut theirs).unwrap();
        assert_eq!(ours, theirs, "{ty}: dequantized row differs");
    }
}

/// Row widths to test `ty` at: `super_block` for 256-element types; for
/// the 32-element ones 896 (Qwen2.5-0.5B's width, 28 blocks, not a
/// multiple of 256) and 96 (3 blocks: no whole 512-bit pair).
fn widths(ty: GgmlType, super_block: &'static [usize]) -> &'static [usize] {
    if ty.block_len() == 256 {
        super_block
    } else {
        &[896, 96]
    }
}

#[test]
fn iq_tq_and_mxfp4_simd_paths_agree_with_the_portable_path() {
    let mut rng = Rng(13);
    for ty in NEWER_TYPES {
        // 768: an odd number of super-blocks.
        let widths = widths(ty, &[1024, 768]);
        // 2..: the lattice kernels unpack a row once for the tile's tokens;
        // 131: two whole token tiles and a remainder of 3, below any group.
        for (&cols, t) in widths
            .iter()
            .flat_map(|c| [1, 2, 5, 17, 64, 131].map(|t| (c, t)))
        {
            let rows = 45;
            let w = random_valid_blocks(ty, rows, cols, &mut rng);
            let x = rng.vec(t * cols);
            let portable = run_matmul(SimdPath::Portable, ty, &w, rows, cols, &x);
            for path in SimdPath::available() {
                let err = rel_err(
                    &run_matmul(path, ty, &w, rows, cols, &x),
                    &to_f64(&portable),
                );
                assert!(err < 1e-5, "{ty} T={t} {path:?} vs portable: {err}");
            }
        }
    }
}

#[test]
fn quantized_activations_keep_a_scale_per_32_elements() {
    // One 32-element block of the activations is 1000× louder than the
    // rest and the weights are zero there: with one scale per 256 (ggml's
    // Q8_K) the quiet blocks would round to a few levels, with one per 32
    // they keep 8 bits each.
    let mut rng = Rng(13);
    let (rows, cols, t) = (8, 512, 3);
    let loud = 288..320;
    for ty in QUANT_TYPES {
        let mut wf = rng.vec(rows * cols);
        for r in 0..rows {
            wf[r * cols + loud.start..r * cols + loud.end].fill(0.0);
        }
        let mut w = Vec::new();
        quant::quantize(ty, &wf, &mut w).unwrap();
        let mut x = rng.vec(t * cols);
        for i in 0..t {
            for v in &mut x[i * cols + loud.start..i * cols + loud.end] {
                *v *= 1000.0;
            }
        }
        let expected = reference(ty, &w, rows, cols, &x);
        for path in SimdPath::available() {
            let err = rel_err(&run_matmul(path, ty, &w, rows, cols, &x), &expected);
            assert!(err < 2e-2, "{ty} {path:?}: relative error {err}");
        }
    }
}

#[test]
fn k_quant_activation_order_places_every_element_of_a_super_block_once() {
    let mut seen = [false; 256];
    for i in 0..256 {
        let slot = k_slot(i);
        assert!(!seen[slot], "element {i}: slot {slot} taken twice");
        seen[slot] = true;
    }
}

#[test]
fn float_matmul_matches_f64_reference_within_1e5() {
    let mut rng = Rng(11);
    for ty in FLOAT_TYPES {
        let (rows, cols) = (19, 200);
        let w = weights(ty, rows, cols, &mut rng);
        for t in [1, 3, 17] {
            let x = rng.vec(t * cols);
            let expected = reference(ty, &w, rows, cols, &x);
            for path in SimdPath::available() {
                let err = rel_err(&run_matmul(path, ty, &w, rows, cols, &x), &expected);
                assert!(err < 1e-5, "{ty} T={t} {path:?}: relative error {err}");
            }
        }
    }
}

#[test]
fn simd_paths_agree_with_the_portable_path_on_the_same_int8_activations() {
    let mut rng = Rng(3);
    for ty in QUANT_TYPES.iter().chain(&FLOAT_TYPES).copied() {
        let widths = widths(ty, &[1024]);
        for (&cols, t) in widths
            .iter()
            .flat_map(|c| [1, 2, 5, 17, 64].map(|t| (c, t)))
        {
            let rows = 45;
            let w = weights(ty, rows, cols, &mut rng);
            let x = rng.vec(t * cols);
            let portable = run_matmul(SimdPath::Portable, ty, &w, rows, cols, &x);
            for path in SimdPath::available() {
                let err = rel_err(
                    &run_matmul(path, ty, &w, rows, cols, &x),
                    &to_f64(&portable),
                );
                assert!(err < 1e-5, "{ty} T={t} {path:?} vs portable: {err}");
            }
        }
    }
}

/// The SIMD kernels hold weight rows in the lanes of a register (sixteen
/// on AVX-512) and tokens in groups (eight, four, one), so every row count
/// around a group's size and every token count that mixes the groups is
/// compared with the portable path, and a token alone with the same token
/// batched (same bits). MXFP4 also with the E8M0 exponents 0..4 (the
/// subnormal scales), on activations large enough that the products stay
/// normal floats.
#[test]
fn simd_paths_agree_with_the_portable_path_on_row_and_token_tails() {
    use GgmlType::*;
    let mut rng = Rng(17);
    let types = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4, Q4_K, Q6_K];
    for ty in types {
        // One and three blocks (no whole pair of 32-element blocks).
        let widths: &[usize] = if ty.block_len() == 256 {
            &[256, 512]
        } else {
            &[32, 96]
        };
        for (&cols, rows) in widths
            .iter()
            .flat_map(|c| [1, 15, 16, 17, 33].map(|r| (c, r)))
        {
            let mut w = if QUANT_TYPES.contains(&ty) {
                weights(ty, rows, cols, &mut rng)
            } else {
                random_valid_blocks(ty, rows, cols, &mut rng)
            };
            let mut scale = 1.0;
            if ty == MXFP4 {
                for block in w.chunks_exact_mut(ty.block_bytes()) {
                    block[0] = (rng.next_u64() % 4) as u8;
                }
                scale = 1e6;
            }
            for t in [1, 3, 4, 7, 8, 9, 12, 13] {
                let x: Vec<f32> = rng.vec(t * cols).iter().map(|v| v * scale).collect();
                let portable = run_matmul(SimdPath::Portable, ty, &w, rows, cols, &x);
                for path in SimdPath::available() {
                    let ours = run_matmul(path, ty, &w, rows, cols, &x);
                    let err = rel_err(&ours, &to_f64(&portable));
                    assert!(
                        err < 1e-5,
                        "{ty} {cols} cols, {rows} rows, T={t} {path:?} vs portable: {err}"
                    );
                    let last = t - 1;
                    let alone = run_matmul(path, ty, &w, rows, cols, &x[last * cols..]);
                    let same = ours[last * rows..]
                        .iter()
                        .zip(&alone)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{ty} {rows} rows, T={t} {path:?}: last token alone differs"
                    );
                }
            }
        }
    }
}

/// `run_matmul` on a pool of `threads` threads (the row tiles, and so
/// which kernel call computes a row, follow the thread count).
fn run_matmul_on(
    threads: usize,
    path: SimdPath,
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Vec<f32> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| run_matmul(path, ty, w, rows, cols, x))
}

/// The scheduler's promise (a token's logits are the same bits whether it
/// ran alone or batched with others) rests on every kernel computing a
/// token's row with the same arithmetic in a token group, in a group's
/// remainder and alone, on any number of threads. Checked per path, so
/// that the test binary run on an AVX-512 machine checks those kernels.
#[test]
fn a_tokens_result_is_the_same_bits_alone_batched_and_on_any_thread_count() {
    let mut rng = Rng(11);
    for ty in QUANT_TYPES.iter().chain(&NEWER_TYPES).copied() {
        // The real model's widths: 896 (q, k, v, o, gate, up) and 4864
        // (down; 19 super-blocks of 256). 67 rows: no whole number of
        // 16-row tiles or of 4-row decode blocks.
        let widths = widths(ty, &[4864]);
        for (&cols, path) in widths
            .iter()
            .flat_map(|c| SimdPath::available().into_iter().map(move |p| (c, p)))
        {
            let (rows, t) = (67, 37);
            let w = if QUANT_TYPES.contains(&ty) {
                weights(ty, rows, cols, &mut rng)
            } else {
                random_valid_blocks(ty, rows, cols, &mut rng)
            };
            let x = rng.vec(t * cols);
            let batched = run_matmul_on(2, path, ty, &w, rows, cols, &x);
            for threads in [1, 3] {
                let other = run_matmul_on(threads, path, ty, &w, rows, cols, &x);
                let same = batched
                    .iter()
                    .zip(&other)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty} {path:?}: {threads} threads differ from 2");
            }
            // The first of a 16-token group, one inside it, the last of a
            // group's remainder.
            for i in [0, 9, 36] {
                let alone =
                    run_matmul_on(2, path, ty, &w, rows, cols, &x[i * cols..(i + 1) * cols]);
                let row = &batched[i * rows..(i + 1) * rows];
                let same = row
                    .iter()
                    .zip(&alone)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty} {path:?}: token {i} alone differs from batched");
            }
        }
    }
}

/// `run_matmul` reads AVX2's interleaved copy where it can; matrices the
/// model makes no copy of (the experts' slices) take the GGUF-order
/// kernels, compared here with the portable path, and with the copy's
/// result (other rounding, same products).
#[test]
fn avx2_without_an_interleaved_copy_agrees_with_the_portable_path_and_the_copy() {
    if !SimdPath::Avx2.is_available() {
        return;
    }
    let mut rng = Rng(23);
    for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
        let (rows, cols) = (43, 896);
        let w = weights(ty, rows, cols, &mut rng);
        for t in [1, 4, 9] {
            let x = rng.vec(t * cols);
            let portable = to_f64(&run_matmul(SimdPath::Portable, ty, &w, rows, cols, &x));
            let mut acts = QuantizedActs::new();
            acts.prepare_with(SimdPath::Avx2, &x, t, cols, &[ty])
                .unwrap();
            let mut plain = vec![f32::NAN; t * rows];
            let m = WeightMatrix::new(ty, &w, rows, cols);
            assert!(m.interleaved.is_none());
            matmul_with(SimdPath::Avx2, &m, &acts, &mut plain, rows, 0).unwrap();
            let err = rel_err(&plain, &portable);
            assert!(err < 1e-5, "{ty} T={t} GGUF order vs portable: {err}");
            let copied = run_matmul(SimdPath::Avx2, ty, &w, rows, cols, &x);
            let err = rel_err(&copied, &to_f64(&plain));
            assert!(err < 1e-5, "{ty} T={t} interleaved vs GGUF order: {err}");
        }
    }
}

/// A copy is attached only to the matrix it was made of.
#[test]
fn an_interleaved_copy_of_another_shape_is_not_taken() {
    let mut rng = Rng(29);
    let w = weights(GgmlType::Q8_0, 16, 64, &mut rng);
    let m = WeightMatrix::new(GgmlType::Q8_0, &w, 16, 64);
    let copy = InterleavedRows::build(&m).unwrap();
    assert!(m.with_interleaved(Some(&copy)).interleaved.is_some());
    let other = WeightMatrix::new(GgmlType::Q8_0, &w, 32, 32);
    assert!(other.with_interleaved(Some(&copy)).interleaved.is_none());
}

#[test]
fn matmul_reads_every_bit_pattern_of_random_blocks() {
    let mut rng = Rng(5);
    for ty in QUANT_TYPES {
        let (rows, cols) = (9, 512);
        let bb = ty.block_bytes();
        let mut w: Vec<u8> = (0..rows * cols / ty.block_len() * bb)
            .map(|_| rng.next_u64() as u8)
            .collect();
        // Keep the f16 scales finite and modest: overwrite them per block.
        let scale_at: &[usize] = match ty {
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
            GgmlType::Q6_K => &[208],
            GgmlType::Q4_1 | GgmlType::Q5_1 => &[0, 2],
            _ => &[0],
        };
        for block in w.chunks_exact_mut(bb) {
            for &at in scale_at {
                let s = half::f16::from_f32(rng.normal() * 0.01);
                block[at..at + 2].copy_from_slice(&s.to_le_bytes());
            }
        }
        let x = rng.vec(5 * cols);
        let expected = reference(ty, &w, rows, cols, &x);
        for path in SimdPath::available() {
            let err = rel_err(&run_matmul(path, ty, &w, rows, cols, &x), &expected);
            assert!(err < 2e-2, "{ty} {path:?}: relative error {err}");
        }
        let mut ours = vec![0f32; cols];
        let mut theirs = vec![0f32; cols];
        dequantize_row(ty, &w[..cols / ty.block_len() * bb], &mut ours).unwrap();
        quant::dequantize(ty, &w[..cols / ty.block_len() * bb], &mut theirs).unwrap();
        assert_eq!(ours, theirs, "{ty}: dequantized row differs");
    }
}

#[test]
fn one_activation_preparation_serves_weights_of_several_types() {
    let mut rng = Rng(13);
    let (cols, t) = (512, 3);
    let x = rng.vec(t * cols);
    let types = [
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q6_K,
        GgmlType::F32,
    ];
    let mut acts = QuantizedActs::new();
    acts.prepare(&x, t, cols, &types).unwrap();
    // All outputs side by side in one [T, 4*8] buffer, like a fused QKV.
    let rows = 8;
    let mut out = vec![0f32; t * 4 * rows];
    let mut expected = vec![0f64; t * 4 * rows];
    for (i, ty) in types.into_iter().enumerate() {
        let w = weights(ty, rows, cols, &mut rng);
        matmul(
            &WeightMatrix::new(ty, &w, rows, cols),
            &acts,
            &mut out,
            4 * rows,
            i * rows,
        )
        .unwrap();
        for (tt, r) in reference(ty, &w, rows, cols, &x).chunks(rows).enumerate() {
            expected[tt * 4 * rows + i * rows..tt * 4 * rows + (i + 1) * rows].copy_from_slice(r);
        }
    }
    assert!(rel_err(&out, &expected) < 2e-2);
}

#[test]
fn matmul_writes_only_its_columns_of_the_output() {
    let mut rng = Rng(17);
    let (rows, cols, t) = (5, 64, 3);
    let w = weights(GgmlType::Q8_0, rows, cols, &mut rng);
    let mut acts = QuantizedActs::new();
    acts.prepare(&rng.vec(t * cols), t, cols, &[GgmlType::Q8_0])
        .unwrap();
    let (ld, col0) = (9, 2);
    let mut out = vec![f32::NAN; t * ld];
    matmul(
        &WeightMatrix::new(GgmlType::Q8_0, &w, rows, cols),
        &acts,
        &mut out,
        ld,
        col0,
    )
    .unwrap();
    for (i, v) in out.iter().enumerate() {
        let inside = (col0..col0 + rows).contains(&(i % ld));
        assert_eq!(v.is_nan(), !inside, "cell {i}");
    }
}

#[test]
fn matmul_refuses_activations_prepared_for_another_format() {
    let mut rng = Rng(19);
    let w = weights(GgmlType::Q4_K, 2, 256, &mut rng);
    let mut acts = QuantizedActs::new();
    acts.prepare(&rng.vec(256), 1, 256, &[GgmlType::Q8_0])
        .unwrap();
    let mut out = vec![0f32; 2];
    let err = matmul(
        &WeightMatrix::new(GgmlType::Q4_K, &w, 2, 256),
        &acts,
        &mut out,
        2,
        0,
    );
    assert_eq!(
        err,
        Err(KernelError::MissingActFormat { ty: GgmlType::Q4_K })
    );
}

#[test]
fn matmul_refuses_a_short_output_and_truncated_weights() {
    let mut rng = Rng(23);
    let w = weights(GgmlType::Q8_0, 4, 64, &mut rng);
    let mut acts = QuantizedActs::new();
    acts.prepare(&rng.vec(128), 2, 64, &[GgmlType::Q8_0])
        .unwrap();
    let mut out = vec![0f32; 7];
    let m = WeightMatrix::new(GgmlType::Q8_0, &w, 4, 64);
    assert!(matches!(
        matmul(&m, &acts, &mut out, 4, 0),
        Err(KernelError::SizeMismatch { .. })
    ));
    let short = WeightMatrix::new(GgmlType::Q8_0, &w[..w.len() - 1], 4, 64);
    let mut out = vec![0f32; 8];
    assert!(matches!(
        matmul(&short, &acts, &mut out, 4, 0),
        Err(KernelError::SizeMismatch { .. })
    ));
}

#[test]
fn activation_preparation_refuses_rows_that_are_not_whole_blocks() {
    let mut acts = QuantizedActs::new();
    let err = acts.prepare(&[0.0; 96], 1, 96, &[GgmlType::Q4_K]);
    assert!(matches!(
        err,
        Err(KernelError::RaggedRow { block: 256, .. })
    ));
}

#[test]
fn rms_norm_scales_rows_to_unit_rms_times_weight() {
    let mut rng = Rng(29);
    let (d, t) = (100, 3);
    let (x, w) = (rng.vec(t * d), rng.vec(d));
    for path in SimdPath::available() {
        let mut out = vec![0f32; t * d];
        rms_norm_with(path, &x, &w, 1e-6, &mut out);
        let mut expected = vec![0f64; t * d];
        for r in 0..t {
            let row = &x[r * d..(r + 1) * d];
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
            for i in 0..d {
                expected[r * d + i] = row[i] as f64 / (ms + 1e-6).sqrt() * w[i] as f64;
            }
        }
        assert!(rel_err(&out, &expected) < 1e-6, "{path:?}");
    }
}

#[test]
fn silu_mul_is_silu_of_the_gate_half_times_the_up_half() {
    let mut rng = Rng(31);
    let (ffn, t) = (70, 40);
    let gu: Vec<f32> = rng.vec(t * 2 * ffn).iter().map(|v| v * 4.0).collect();
    let mut expected = vec![0f64; t * ffn];
    for r in 0..t {
        for i in 0..ffn {
            let (g, u) = (gu[r * 2 * ffn + i] as f64, gu[r * 2 * ffn + ffn + i] as f64);
            expected[r * ffn + i] = g / (1.0 + (-g).exp()) * u;
        }
    }
    for path in SimdPath::available() {
        let mut out = vec![0f32; t * ffn];
        silu_mul_with(path, &gu, ffn, &mut out);
        assert!(rel_err(&out, &expected) < 1e-6, "{path:?}");
    }
}

#[test]
fn add_in_place_adds_elementwise() {
    let mut a = vec![1.0, 2.0, 3.0];
    add_in_place(&mut a, &[0.5, -2.0, 1e-3]);
    assert_eq!(a, vec![1.5, 0.0, 3.001]);
}

#[test]
fn argmax_takes_the_first_of_equal_maxima_and_skips_nan() {
    assert_eq!(argmax(&[1.0, 3.0, f32::NAN, 3.0, -1.0]), Some(1));
    assert_eq!(argmax(&[f32::NAN]), None);
    assert_eq!(argmax(&[]), None);
}

/// Direct RoPE: pair i of each head turns by pos * base^(-2i/d) * scale / factor.
fn rope_reference(
    x: &[f32],
    pos: &[i32],
    hd: usize,
    style: RopeStyle,
    base: f64,
    scale: f64,
    ff: Option<&[f32]>,
) -> Vec<f64> {
    let mut out = to_f64(x);
    for (t, &p) in pos.iter().enumerate() {
        let row = &mut out[t * x.len() / pos.len()..(t + 1) * x.len() / pos.len()];
        for head in row.chunks_mut(hd) {
            for i in 0..hd / 2 {
                let f = ff.map_or(1.0, |f| f[i] as f64);
                let theta = p as f64 * base.powf(-2.0 * i as f64 / hd as f64) * scale / f;
                let (a, b) = match style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + hd / 2),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * theta.cos() - x1 * theta.sin();
                head[b] = x0 * theta.sin() + x1 * theta.cos();
            }
        }
    }
    out
}

#[test]
fn rope_matches_the_direct_formula_in_both_styles() {
    let mut rng = Rng(37);
    let (hd, nh) = (64, 3);
    let pos = [0, 1, 7, 100, 2047];
    let x = rng.vec(pos.len() * nh * hd);
    let factors: Vec<f32> = (0..hd / 2).map(|i| 1.0 + i as f32 / 8.0).collect();
    for style in [RopeStyle::Normal, RopeStyle::Neox] {
        for (scale, ff) in [(1.0, None), (0.25, Some(&factors[..]))] {
            let mut ours = x.clone();
            rope(&mut ours, &pos, hd, nh, 10000.0, style, scale, ff).unwrap();
            let expected = rope_reference(&x, &pos, hd, style, 10000.0, scale as f64, ff);
            // f32 angles at position 2047: llama.cpp's own rounding is ~1e-4.
            assert!(rel_err(&ours, &expected) < 2e-4, "{style:?} scale {scale}");
        }
    }
}

#[test]
fn rope_styles_rotate_different_pairs() {
    let mut a = vec![1.0, 0.0, 0.0, 0.0];
    let mut b = a.clone();
    rope(&mut a, &[1], 4, 1, 10000.0, RopeStyle::Normal, 1.0, None).unwrap();
    rope(&mut b, &[1], 4, 1, 10000.0, RopeStyle::Neox, 1.0, None).unwrap();
    // Normal pairs (x0, x1); Neox pairs (x0, x2).
    assert!(a[1] != 0.0 && a[2] == 0.0);
    assert!(b[1] == 0.0 && b[2] != 0.0);
}

#[test]
fn embed_rows_dequantizes_the_tokens_rows_and_refuses_bad_ids() {
    let mut rng = Rng(41);
    let (rows, cols) = (10, 64);
    let w = weights(GgmlType::Q5_0, rows, cols, &mut rng);
    let table = WeightMatrix::new(GgmlType::Q5_0, &w, rows, cols);
    let mut out = vec![0f32; 2 * cols];
    embed_rows(&table, &[3, 9], &mut out).unwrap();
    let mut all = vec![0f32; rows * cols];
    quant::dequantize(GgmlType::Q5_0, &w, &mut all).unwrap();
    assert_eq!(&out[..cols], &all[3 * cols..4 * cols]);
    assert_eq!(&out[cols..], &all[9 * cols..10 * cols]);
    let err = embed_rows(&table, &[10, 0], &mut out);
    assert!(matches!(
        err,
        Err(KernelError::OutOfRange { index: 10, .. })
    ));
    assert!(embed_rows(&table, &[-1, 0], &mut out).is_err());
}

/// A small paged cache holding two sequences whose pages interleave.
struct Scene {
    kv: KvCache,
    page_table: Vec<i32>,
    pps: usize,
    /// Per sequence, per position: the f16-rounded keys and values.
    k: Vec<Vec<Vec<f32>>>,
    v: Vec<Vec<Vec<f32>>>,
}

const N_KV: usize = 2;
const HD: usize = 16;

fn scene(lens: [usize; 2], page: usize, rng: &mut Rng) -> Scene {
    let pps = 8;
    let mut kv = KvCache::new(2, N_KV, HD, page, 16);
    // Sequence 0 takes even pages from the top, sequence 1 odd pages.
    let page_table: Vec<i32> = (0..2 * pps)
        .map(|i| {
            if i < pps {
                14 - 2 * i as i32
            } else {
                1 + 2 * (i - pps) as i32
            }
        })
        .collect();
    let round = |v: Vec<f32>| {
        v.iter()
            .map(|&x| half::f16::from_f32(x).to_f32())
            .collect::<Vec<f32>>()
    };
    let (mut ks, mut vs) = (vec![vec![]; 2], vec![vec![]; 2]);
    // Write positions of both sequences interleaved, as a batched step would.
    for p in 0..lens[0].max(lens[1]) {
        for s in 0..2 {
            if p < lens[s] {
                let (k, v) = (rng.vec(N_KV * HD), rng.vec(N_KV * HD));
                kv.write_tokens(1, &k, &v, &[p as i32], &[s as i32], &page_table, pps)
                    .unwrap();
                ks[s].push(round(k));
                vs[s].push(round(v));
            }
        }
    }
    Scene {
        kv,
        page_table,
        pps,
        k: ks,
        v: vs,
    }
}

fn naive_attention(
    sc: &Scene,
    q: &[f32],
    pos: &[i32],
    seq: &[i32],
    nh: usize,
    scale: f64,
    window: Option<usize>,
) -> Vec<f64> {
    let mut out = vec![0f64; q.len()];
    for t in 0..pos.len() {
        let (p, s) = (pos[t] as usize, seq[t] as usize);
        let lo = window.map_or(0, |w| (p + 1).saturating_sub(w));
        for h in 0..nh {
            let g = h / (nh / N_KV);
            let qh = &q[(t * nh + h) * HD..(t * nh + h + 1) * HD];
            let scores: Vec<f64> = (lo..=p)
                .map(|j| {
                    scale
                        * (0..HD)
                            .map(|i| qh[i] as f64 * sc.k[s][j][g * HD + i] as f64)
                            .sum::<f64>()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = scores.iter().map(|x| (x - m).exp()).sum();
            for (j, sj) in (lo..=p).zip(&scores) {
                for i in 0..HD {
                    out[(t * nh + h) * HD + i] +=
                        (sj - m).exp() / z * sc.v[s][j][g * HD + i] as f64;
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_naive_softmax_over_two_interleaved_paged_sequences_with_gqa() {
    let mut rng = Rng(43);
    // Pages of 4 (short runs of keys) and of 16 (runs of eight and more).
    for (page, lens, pos, seq) in [
        (4, [23, 9], [22, 8, 0, 5, 13], [0, 1, 0, 1, 0]),
        (16, [100, 9], [99, 8, 0, 5, 57], [0, 1, 0, 1, 0]),
    ] {
        attention_matches_naive_softmax_on(page, lens, &pos, &seq, &mut rng);
    }
}

/// Layer 1's attention of `q` (`nh` heads of HD, scaled by 1/√HD) over the
/// scene's cache, on `path`.
fn attention_in(
    sc: &Scene,
    path: SimdPath,
    nh: usize,
    window: Option<usize>,
    pos: &[i32],
    seq: &[i32],
    q: &[f32],
) -> Vec<f32> {
    let shape = AttentionShape {
        n_heads: nh,
        n_kv_heads: N_KV,
        head_dim: HD,
        scale: 1.0 / (HD as f32).sqrt(),
        sliding_window: window,
        softcap: None,
    };
    let places = TokenPlaces {
        positions: pos,
        seq_ids: seq,
        page_table: &sc.page_table,
        pages_per_seq: sc.pps,
    };
    let mut out = vec![f32::NAN; q.len()];
    attention_with(path, &shape, q, &sc.kv, 1, &places, &mut out).unwrap();
    out
}

fn attention_matches_naive_softmax_on(
    page: usize,
    lens: [usize; 2],
    pos: &[i32],
    seq: &[i32],
    rng: &mut Rng,
) {
    let sc = scene(lens, page, rng);
    let nh = 6;
    let q = rng.vec(pos.len() * nh * HD);
    let scale = 1.0 / (HD as f32).sqrt();
    for window in [None, Some(1), Some(5), Some(20)] {
        let expected = naive_attention(&sc, &q, pos, seq, nh, scale as f64, window);
        for path in SimdPath::available() {
            let out = attention_in(&sc, path, nh, window, pos, seq, &q);
            let err = rel_err(&out, &expected);
            // The f16 cache rounds q and the softmax weights to f16 as ggml
            // does (relative 2^-11 each): the reference keeps them exact.
            assert!(err < 1e-3, "page {page} window {window:?} {path:?}: {err}");
        }
    }
}

/// A prefill step attends in tiles of tokens (heads of a kv head × tokens
/// in the lanes): each token's output must be the same bits as that token
/// alone, on every path.
#[test]
fn attention_of_a_token_is_the_same_bits_alone_and_in_a_prefill_tile() {
    let mut rng = Rng(53);
    let sc = scene([100, 9], 16, &mut rng);
    // 70 tokens of sequence 0 (tiles of 21 with 6 heads on 2 kv heads,
    // cut at pages and chunks anywhere) and sequence 1's 9 after them.
    let (mut pos, mut seq) = (vec![], vec![]);
    for p in 30..100 {
        pos.push(p);
        seq.push(0);
    }
    for p in 0..9 {
        pos.push(p);
        seq.push(1);
    }
    let nh = 6;
    let q = rng.vec(pos.len() * nh * HD);
    let scale = 1.0 / (HD as f32).sqrt();
    for window in [None, Some(40)] {
        let run = |path, pos: &[i32], seq: &[i32], q: &[f32]| {
            attention_in(&sc, path, nh, window, pos, seq, q)
        };
        let expected = naive_attention(&sc, &q, &pos, &seq, nh, scale as f64, window);
        for path in SimdPath::available() {
            let all = run(path, &pos, &seq, &q);
            assert!(rel_err(&all, &expected) < 1e-3, "{path:?} {window:?}");
            let w = nh * HD;
            for t in 0..pos.len() {
                let alone = run(path, &pos[t..=t], &seq[t..=t], &q[t * w..(t + 1) * w]);
                assert!(
                    alone
                        .iter()
                        .zip(&all[t * w..(t + 1) * w])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{path:?} {window:?}: token {t} alone differs from the step"
                );
            }
        }
    }
}

#[test]
fn attention_refuses_a_position_beyond_the_page_table() {
    let mut rng = Rng(47);
    let sc = scene([3, 3], 4, &mut rng);
    let q = rng.vec(2 * HD);
    let mut out = vec![0f32; 2 * HD];
    let err = attention(
        &q,
        &sc.kv,
        1,
        &[40],
        &[0],
        &sc.page_table,
        sc.pps,
        2,
        N_KV,
        HD,
        0.25,
        None,
        &mut out,
    );
    assert!(matches!(err, Err(KernelError::OutOfRange { .. })));
    let err = attention(
        &q,
        &sc.kv,
        1,
        &[1],
        &[2],
        &sc.page_table,
        sc.pps,
        2,
        N_KV,
        HD,
        0.25,
        None,
        &mut out,
    );
    assert!(matches!(
        err,
        Err(KernelError::OutOfRange {
            what: "sequence id",
            ..
        })
    ));
}

#[test]
fn kv_cache_stores_f16_rounded_rows_at_the_page_tables_slot() {
    let mut kv = KvCache::new(1, 1, 4, 2, 3);
    let table = [2, 0];
    kv.write_tokens(0, &[1.0, 2.0, 3.0, 1e-8], &[4.0; 4], &[3], &[0], &table, 2)
        .unwrap();
    // Position 3 → page index 1 → page 0, slot 1.
    let k: Vec<f32> = kv.k_row(0, 0, 1);
    assert_eq!(k, vec![1.0, 2.0, 3.0, half::f16::from_f32(1e-8).to_f32()]);
    assert!(kv.write(0, &[0.0; 4], &[0.0; 4], 3, 0).is_err());
}
