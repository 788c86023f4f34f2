//! The KV cache in each of its element types (issue #18): rows quantize on
//! write as ggml's quantizers do and read back as their dequantization, and
//! attention over the quantized pages matches an f64 reference computed
//! from the same cache read back as f32 (COMPARING.md's tolerances).

use rocmforge::exec::cpu::*;
use rocmforge::quant::{self, GgmlType};
use rocmforge::rng::Rng;

/// Deviates of the scale the cache tests were tuned on (a sum of four
/// uniforms less 2: standard deviation 1/√3), from the project's generator.
fn noise(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.normal_vec(n, 0.0, 0.577_350_3)
}

/// ‖a − b‖₂ / ‖b‖₂ in f64; NaN or Inf anywhere fails.
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    assert!(a.iter().all(|v| v.is_finite()), "non-finite output");
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

const N_KV: usize = 2;
const HD: usize = 64;
const BLOCK_TYPES: [KvType; 4] = [KvType::Q8_0, KvType::Q4_0, KvType::Q5_1, KvType::IQ4NL];

/// What the quantizer of `ty` makes of `x`, decoded: the bytes ggml's
/// reference quantizer writes (ours is bit-exact with the gguf package).
fn through_quantizer(ty: KvType, x: &[f32]) -> Vec<f32> {
    let mut bytes = Vec::new();
    quant::quantize(ty.ggml_type(), x, &mut bytes).unwrap();
    let mut out = vec![0f32; x.len()];
    quant::dequantize(ty.ggml_type(), &bytes, &mut out).unwrap();
    out
}

/// `x ← H x` per run of `n` with ggml's Walsh–Hadamard matrix, in f64.
fn hadamard(x: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for run in x.chunks_exact(n) {
        for i in 0..n {
            let s: f64 = (0..n)
                .map(|j| {
                    let sign = if (i & j).count_ones() % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    };
                    sign * run[j] as f64
                })
                .sum();
            out.push((s / (n as f64).sqrt()) as f32);
        }
    }
    out
}

#[test]
fn rows_read_back_as_the_quantizers_round_trip_in_every_type() {
    // Heads of 32: no rotation (llama.cpp rotates heads of whole 64s).
    let mut rng = Rng::new(7);
    for ty in KvType::ALL {
        let mut kv = KvCache::with_type(2, N_KV, 32, 4, 3, ty).unwrap();
        let (k, v) = (noise(&mut rng, N_KV * 32), noise(&mut rng, N_KV * 32));
        kv.write(1, &k, &v, 2, 3).unwrap();
        assert_eq!(kv.key_rotation(), None);
        assert_eq!(kv.k_row(1, 2, 3), through_quantizer(ty, &k), "{ty} keys");
        assert_eq!(kv.v_row(1, 2, 3), through_quantizer(ty, &v), "{ty} values");
        // Neighbouring cells stay zero.
        assert!(kv.k_row(1, 2, 2).iter().all(|&x| x == 0.0), "{ty}");
        assert!(kv.v_row(0, 2, 3).iter().all(|&x| x == 0.0), "{ty}");
    }
}

/// Block rows in heads of 64 and 128 are stored as llama.cpp stores them:
/// the quantizer's bytes of the Walsh–Hadamard-rotated row (keys over the
/// largest power of two dividing head_dim, values over 64), read back
/// rotated back.
#[test]
fn block_rows_of_whole_64s_are_stored_rotated_as_llama_cpp_does() {
    let mut rng = Rng::new(9);
    for hd in [64, 128] {
        for ty in [KvType::Q8_0, KvType::Q4_0] {
            let mut kv = KvCache::with_type(1, N_KV, hd, 2, 1, ty).unwrap();
            assert_eq!(kv.key_rotation(), Some(hd));
            assert_eq!(kv.value_rotation(), Some(64));
            let (k, v) = (noise(&mut rng, N_KV * hd), noise(&mut rng, N_KV * hd));
            kv.write(0, &k, &v, 0, 1).unwrap();
            let k_stored = through_quantizer(ty, &hadamard(&k, hd));
            let v_stored = through_quantizer(ty, &hadamard(&v, 64));
            let want_k: Vec<f64> = hadamard(&k_stored, hd).iter().map(|&x| x as f64).collect();
            let want_v: Vec<f64> = hadamard(&v_stored, 64).iter().map(|&x| x as f64).collect();
            assert!(
                rel_err(&kv.k_row(0, 0, 1), &want_k) < 1e-5,
                "{ty} {hd} keys"
            );
            assert!(
                rel_err(&kv.v_row(0, 0, 1), &want_v) < 1e-5,
                "{ty} {hd} values"
            );
        }
        // Float types are stored as they are.
        let kv = KvCache::with_type(1, N_KV, hd, 2, 1, KvType::Bf16).unwrap();
        assert_eq!((kv.key_rotation(), kv.value_rotation()), (None, None));
    }
}

/// An outlier channel (Qwen2's key biases) costs an unrotated block its
/// resolution; rotated, the row keeps most of it.
#[test]
fn rotation_keeps_the_resolution_of_rows_with_an_outlier() {
    let mut rng = Rng::new(10);
    let mut x = noise(&mut rng, N_KV * HD);
    x[3] = 90.0;
    x[HD + 40] = -70.0;
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let small = |row: &[f32]| {
        let keep: Vec<usize> = (0..row.len()).filter(|&i| i != 3 && i != HD + 40).collect();
        let a: Vec<f32> = keep.iter().map(|&i| row[i]).collect();
        let b: Vec<f64> = keep.iter().map(|&i| x64[i]).collect();
        rel_err(&a, &b)
    };
    let mut rotated = KvCache::with_type(1, N_KV, HD, 1, 1, KvType::Q8_0).unwrap();
    rotated.write(0, &x, &x, 0, 0).unwrap();
    let plain = through_quantizer(KvType::Q8_0, &x);
    let (err_rotated, err_plain) = (small(&rotated.k_row(0, 0, 0)), small(&plain));
    assert!(
        err_rotated * 2.0 < err_plain,
        "{err_rotated} vs {err_plain}"
    );
}

#[test]
fn quantized_rows_stay_within_their_formats_error() {
    let mut rng = Rng::new(8);
    let x = noise(&mut rng, N_KV * HD);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    // RMS error relative to the row: 8 bits ≈ 0.5 %, 4 bits ≈ 10 %.
    for (ty, limit) in [
        (KvType::F32, 0.0),
        (KvType::F16, 1e-3),
        (KvType::Bf16, 5e-3),
        (KvType::Q8_0, 1e-2),
        (KvType::Q5_1, 5e-2),
        (KvType::Q4_0, 0.12),
        (KvType::IQ4NL, 0.12),
    ] {
        let mut kv = KvCache::with_type(1, N_KV, HD, 2, 1, ty).unwrap();
        kv.write(0, &x, &x, 0, 1).unwrap();
        let err = rel_err(&kv.k_row(0, 0, 1), &x64);
        assert!(err <= limit, "{ty}: {err}");
    }
}

#[test]
fn q8_0_rows_are_ggml_blocks_with_d_amax_over_127() {
    // Heads of 32 (stored unrotated): amax 2.54 → d = 0.02, levels ±127
    // at the extremes.
    let mut x = vec![0f32; N_KV * 32];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i as f32 - 31.5) * 0.08;
    }
    x[5] = -2.54;
    let mut bytes = Vec::new();
    quant::quantize(GgmlType::Q8_0, &x[..32], &mut bytes).unwrap();
    let d = half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
    assert_eq!(d, half::f16::from_f32(2.54 / 127.0).to_f32());
    assert_eq!(bytes[2 + 5] as i8, -127);
    let mut kv = KvCache::with_type(1, N_KV, 32, 1, 1, KvType::Q8_0).unwrap();
    kv.write(0, &x, &x, 0, 0).unwrap();
    assert_eq!(kv.k_row(0, 0, 0)[5], -127.0 * d);
}

#[test]
fn a_block_type_refuses_a_head_dim_that_is_not_whole_blocks() {
    for ty in BLOCK_TYPES {
        let e = KvCache::with_type(1, 2, 48, 16, 4, ty).unwrap_err();
        assert!(e.to_string().contains("head_dim"), "{ty}: {e}");
    }
    // The float types take any head_dim.
    for ty in [KvType::F32, KvType::F16, KvType::Bf16] {
        KvCache::with_type(1, 2, 48, 16, 4, ty).unwrap();
    }
}

#[test]
fn bytes_per_token_counts_blocks_of_each_type() {
    // Qwen2.5-0.5B: 24 layers, 2 kv heads of 64.
    let per = |k, v| KvTypes { k, v }.bytes_per_token(24, 2, 64);
    assert_eq!(per(KvType::F16, KvType::F16), 24 * 2 * 128 * 2);
    assert_eq!(per(KvType::F32, KvType::F32), 24 * 2 * 128 * 4);
    assert_eq!(per(KvType::Q8_0, KvType::Q8_0), 24 * 2 * 4 * 34);
    assert_eq!(per(KvType::Q4_0, KvType::Q4_0), 24 * 2 * 4 * 18);
    assert_eq!(per(KvType::Q8_0, KvType::Q4_0), 24 * 4 * (34 + 18));
    let kv = KvCache::with_types(
        24,
        2,
        64,
        16,
        10,
        KvTypes {
            k: KvType::Q8_0,
            v: KvType::Q4_0,
        },
    )
    .unwrap();
    assert_eq!(kv.bytes(), 10 * 16 * per(KvType::Q8_0, KvType::Q4_0));
}

/// Two sequences whose pages interleave, written token by token.
struct Scene {
    kv: KvCache,
    page_table: Vec<i32>,
    pps: usize,
}

fn scene(types: KvTypes, lens: [usize; 2], page: usize, rng: &mut Rng) -> Scene {
    let pps = 8;
    let mut kv = KvCache::with_types(2, N_KV, HD, page, 16, types).unwrap();
    let page_table: Vec<i32> = (0..2 * pps)
        .map(|i| {
            if i < pps {
                14 - 2 * i as i32
            } else {
                1 + 2 * (i - pps) as i32
            }
        })
        .collect();
    for p in 0..lens[0].max(lens[1]) {
        for (s, &len) in lens.iter().enumerate() {
            if p < len {
                // Keys with an offset per channel, as real keys (biases) have.
                let k: Vec<f32> = noise(rng, N_KV * HD)
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x + (i % 7) as f32 * 0.3)
                    .collect();
                let v = noise(rng, N_KV * HD);
                kv.write_tokens(1, &k, &v, &[p as i32], &[s as i32], &page_table, pps)
                    .unwrap();
            }
        }
    }
    Scene {
        kv,
        page_table,
        pps,
    }
}

/// Softmax attention in f64 over the cache's own rows read back as f32.
fn reference(sc: &Scene, q: &[f32], pos: &[i32], seq: &[i32], nh: usize, scale: f64) -> Vec<f64> {
    let mut out = vec![0f64; q.len()];
    for t in 0..pos.len() {
        let p = pos[t] as usize;
        let rows: Vec<(Vec<f32>, Vec<f32>)> = (0..=p)
            .map(|j| {
                let at = sc
                    .kv
                    .locate(&sc.page_table, sc.pps, seq[t], j as i32)
                    .unwrap();
                (
                    sc.kv.k_row(1, at.page, at.slot),
                    sc.kv.v_row(1, at.page, at.slot),
                )
            })
            .collect();
        for h in 0..nh {
            let g = h / (nh / N_KV);
            let qh = &q[(t * nh + h) * HD..(t * nh + h + 1) * HD];
            let scores: Vec<f64> = rows
                .iter()
                .map(|(k, _)| {
                    scale
                        * (0..HD)
                            .map(|i| qh[i] as f64 * k[g * HD + i] as f64)
                            .sum::<f64>()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = scores.iter().map(|x| (x - m).exp()).sum();
            for ((_, v), s) in rows.iter().zip(&scores) {
                for i in 0..HD {
                    out[(t * nh + h) * HD + i] += (s - m).exp() / z * v[g * HD + i] as f64;
                }
            }
        }
    }
    out
}

/// Where the kernel rounds beyond the cache itself: q to Q8_0 for Q8_0/Q4_0
/// keys (8-bit activations: 2e-2), the softmax weights to f16 for f16
/// values (1e-3); otherwise only f32 summation order.
fn tolerance(types: KvTypes) -> f64 {
    if matches!(types.k, KvType::Q8_0 | KvType::Q4_0) {
        2e-2
    } else if types.v == KvType::F16 {
        1e-3
    } else {
        1e-4
    }
}

#[test]
fn attention_over_quantized_pages_matches_the_dequantized_cache() {
    let mut rng = Rng::new(44);
    let pairs = [
        (KvType::Q8_0, KvType::Q8_0),
        (KvType::Q4_0, KvType::Q4_0),
        (KvType::Q8_0, KvType::Q4_0),
        (KvType::F16, KvType::Q8_0),
        (KvType::Q4_0, KvType::F16),
        (KvType::Bf16, KvType::Bf16),
        (KvType::Q5_1, KvType::IQ4NL),
        (KvType::F32, KvType::Q5_1),
    ];
    let nh = 6;
    let scale = 1.0 / (HD as f32).sqrt();
    for (k, v) in pairs {
        let types = KvTypes { k, v };
        for (page, lens, pos, seq) in [
            (4, [23, 9], [22, 8, 0, 5, 13], [0, 1, 0, 1, 0]),
            (16, [100, 9], [99, 8, 0, 5, 57], [0, 1, 0, 1, 0]),
        ] {
            let sc = scene(types, lens, page, &mut rng);
            let q = noise(&mut rng, pos.len() * nh * HD);
            let expected = reference(&sc, &q, &pos, &seq, nh, scale as f64);
            for path in SimdPath::available() {
                let shape = AttentionShape {
                    n_heads: nh,
                    n_kv_heads: N_KV,
                    head_dim: HD,
                    scale,
                    sliding_window: None,
                    softcap: None,
                };
                let places = TokenPlaces {
                    positions: &pos,
                    seq_ids: &seq,
                    page_table: &sc.page_table,
                    pages_per_seq: sc.pps,
                };
                let mut out = vec![f32::NAN; q.len()];
                attention_with(path, &shape, &q, &sc.kv, 1, &places, &mut out).unwrap();
                let err = rel_err(&out, &expected);
                assert!(
                    err <= tolerance(types),
                    "{types} page {page} {path:?}: {err}"
                );
            }
        }
    }
}

#[test]
fn every_path_scores_quantized_keys_alike() {
    // The AVX2 integer dots against the portable ones, on the same cache.
    let mut rng = Rng::new(45);
    for k in [KvType::Q8_0, KvType::Q4_0] {
        let types = KvTypes { k, v: KvType::Q8_0 };
        let sc = scene(types, [40, 3], 16, &mut rng);
        let (pos, seq) = ([39, 2], [0, 1]);
        let q = noise(&mut rng, 2 * 4 * HD);
        let run = |path| {
            let shape = AttentionShape {
                n_heads: 4,
                n_kv_heads: N_KV,
                head_dim: HD,
                scale: 0.125,
                sliding_window: None,
                softcap: None,
            };
            let places = TokenPlaces {
                positions: &pos,
                seq_ids: &seq,
                page_table: &sc.page_table,
                pages_per_seq: sc.pps,
            };
            let mut out = vec![0f32; q.len()];
            attention_with(path, &shape, &q, &sc.kv, 1, &places, &mut out).unwrap();
            out
        };
        let portable: Vec<f64> = run(SimdPath::Portable).iter().map(|&x| x as f64).collect();
        for path in SimdPath::available() {
            let err = rel_err(&run(path), &portable);
            assert!(err < 1e-5, "{k} {path:?}: {err}");
        }
    }
}

/// The stored bytes of a row (what the GPU's cache is compared against and
/// filled from) are the quantizer's bytes of the row as stored; a cell
/// outside the cache is an error.
#[test]
fn a_rows_bytes_are_the_quantizers_bytes() {
    let mut rng = Rng::new(11);
    for ty in KvType::ALL {
        let mut kv = KvCache::with_type(2, N_KV, 32, 4, 3, ty).unwrap();
        let (k, v) = (noise(&mut rng, N_KV * 32), noise(&mut rng, N_KV * 32));
        kv.write(1, &k, &v, 2, 3).unwrap();
        let bytes = |x: &[f32]| {
            let mut out = Vec::new();
            quant::quantize(ty.ggml_type(), x, &mut out).unwrap();
            out
        };
        assert_eq!(kv.key_bytes(1, 2, 3).unwrap(), bytes(&k), "{ty} keys");
        assert_eq!(kv.value_bytes(1, 2, 3).unwrap(), bytes(&v), "{ty} values");
        assert_eq!(kv.key_bytes(1, 2, 3).unwrap().len(), ty.bytes_of(N_KV * 32));
        assert!(kv.key_bytes(2, 0, 0).is_err());
        assert!(kv.value_bytes(0, 3, 0).is_err());
        assert!(kv.value_bytes(0, 0, 4).is_err());
    }
}
