//! Quantizers: bit-exact with the gguf package where it has one (fixtures in
//! tests/fixtures/quant/), and within llama.cpp's round-trip error limits
//! (tests/test-quantize-fns.cpp) for the K-quants and activation formats.

use rocmforge::quant::blocks::{BlockQ8K, BlockQ8_1};
use rocmforge::quant::{dequantize, quantize, GgmlType, QuantError};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Index {
    quantize: Vec<QuantCase>,
}

#[derive(Deserialize)]
struct QuantCase {
    #[serde(rename = "type")]
    ty: String,
    input_file: String,
    elements: usize,
    expected_file: String,
}

fn read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/quant")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_f32(name: &str) -> Vec<f32> {
    read(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// llama.cpp's `generate_data`: `0.1 + amplitude * cos(i + offset)`.
fn generate_data(offset: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1 + 2.0 * ((i as f32 + offset).cos() as f64)) as f32)
        .collect()
}

/// llama.cpp's `array_rmse`: sqrt(Σ d²) / n (note: not divided under the root).
fn llama_rmse(a: &[f32], b: &[f32]) -> f32 {
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    sum.sqrt() as f32 / a.len() as f32
}

/// Plain RMS error sqrt(Σ d² / n), for comparisons between our own types.
fn rms(a: &[f32], b: &[f32]) -> f64 {
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    (sum / a.len() as f64).sqrt()
}

fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let mut bytes = Vec::new();
    quantize(ty, x, &mut bytes).unwrap();
    assert_eq!(Some(bytes.len() as u64), ty.bytes_for(x.len() as u64));
    let mut y = vec![0.0; x.len()];
    dequantize(ty, &bytes, &mut y).unwrap();
    y
}

/// llama.cpp's test size: 32 * 128 values.
const TEST_SIZE: usize = 4096;

#[test]
fn quantizers_the_gguf_package_also_has_are_bit_exact_with_it() {
    let index: Index = serde_json::from_slice(&read("index.json")).unwrap();
    let mut types: Vec<&str> = index.quantize.iter().map(|c| c.ty.as_str()).collect();
    types.sort();
    assert_eq!(
        types,
        ["BF16", "F16", "MXFP4", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ1_0", "TQ2_0"]
    );
    for case in &index.quantize {
        let ty = GgmlType::from_name(&case.ty).unwrap();
        let x = read_f32(&case.input_file);
        assert_eq!(x.len(), case.elements);
        let expected = read(&case.expected_file);
        let mut got = Vec::new();
        quantize(ty, &x, &mut got).unwrap();
        assert_eq!(got.len(), expected.len(), "{ty} byte count");
        let block = ty.block_bytes();
        if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
            panic!(
                "{ty}: byte {i} (block {}) differs: ours {:02x?}, gguf {:02x?}",
                i / block,
                &got[i / block * block..(i / block + 1) * block],
                &expected[i / block * block..(i / block + 1) * block],
            );
        }
    }
}

fn assert_k_quant_within_limit(ty: GgmlType, limit: f32) {
    let x = generate_data(0.0, TEST_SIZE);
    let err = llama_rmse(&x, &round_trip(ty, &x));
    assert!(
        err < limit,
        "{ty}: round-trip error {err} not below llama.cpp's limit {limit}"
    );
}

#[test]
fn q2_k_round_trip_is_within_llama_cpp_2bit_limit() {
    assert_k_quant_within_limit(GgmlType::Q2_K, 0.0075);
}

#[test]
fn q3_k_round_trip_is_within_llama_cpp_3bit_limit() {
    assert_k_quant_within_limit(GgmlType::Q3_K, 0.0040);
}

#[test]
fn q4_k_round_trip_is_within_llama_cpp_limit() {
    assert_k_quant_within_limit(GgmlType::Q4_K, 0.002);
}

#[test]
fn q5_k_round_trip_is_within_llama_cpp_limit() {
    assert_k_quant_within_limit(GgmlType::Q5_K, 0.002);
}

#[test]
fn q6_k_round_trip_is_within_llama_cpp_limit() {
    assert_k_quant_within_limit(GgmlType::Q6_K, 0.002);
}

#[test]
fn q8_k_round_trip_is_within_llama_cpp_limit() {
    assert_k_quant_within_limit(GgmlType::Q8_K, 0.002);
}

#[test]
fn q8_1_round_trip_is_within_llama_cpp_limit() {
    assert_k_quant_within_limit(GgmlType::Q8_1, 0.002);
}

/// IQ4_NL/IQ4_XS: llama.cpp's general limit (0.002); TQ1_0/TQ2_0: its
/// ternary limit (0.01); MXFP4: its FP4 limit (0.003). (The ternary and
/// MXFP4 quantizers are also bit-exact with gguf's, above.)
#[test]
fn iq4_ternary_and_mxfp4_round_trips_are_within_llama_cpp_limits() {
    let x = generate_data(0.0, TEST_SIZE);
    for (ty, limit) in [
        (GgmlType::IQ4_NL, 0.002),
        (GgmlType::IQ4_XS, 0.002),
        (GgmlType::TQ1_0, 0.01),
        (GgmlType::TQ2_0, 0.01),
        (GgmlType::MXFP4, 0.003),
    ] {
        let y = round_trip(ty, &x);
        let err = llama_rmse(&x, &y);
        eprintln!(
            "{ty}: llama.cpp metric {err:.6} (limit {limit}), plain RMS {:.4}",
            rms(&x, &y)
        );
        assert!(err < limit, "{ty}: {err} >= {limit}");
    }
}

/// The codebook's non-uniform levels are placed for bell-shaped weights:
/// on normal data IQ4_NL beats Q4_0 (same 4.5 bits) and IQ4_XS (4.25
/// bits) beats Q4_0 too.
#[test]
fn iq4_beats_q4_0_on_normal_weights() {
    let mut state = 12345u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f64 + 0.5) / (1u64 << 24) as f64
    };
    let x: Vec<f32> = (0..TEST_SIZE)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        })
        .collect();
    let q4 = rms(&x, &round_trip(GgmlType::Q4_0, &x));
    for ty in [GgmlType::IQ4_NL, GgmlType::IQ4_XS] {
        let e = rms(&x, &round_trip(ty, &x));
        eprintln!("{ty}: plain RMS {e:.4} vs Q4_0 {q4:.4}");
        assert!(e < q4, "{ty}: {e} >= Q4_0's {q4}");
    }
}

#[test]
fn k_quant_error_falls_with_every_added_bit() {
    // llama.cpp's limits are loose (sqrt(Σd²)/n); this pins the quantizers
    // closer: each extra bit per value must cut the plain RMS error.
    let x = generate_data(0.0, TEST_SIZE);
    let order = [
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
    ];
    let errors: Vec<f64> = order
        .iter()
        .map(|&ty| rms(&x, &round_trip(ty, &x)))
        .collect();
    for (pair, err) in order.windows(2).zip(errors.windows(2)) {
        assert!(
            err[1] < 0.7 * err[0],
            "{} ({}) vs {} ({})",
            pair[1],
            err[1],
            pair[0],
            err[0]
        );
    }
}

#[test]
fn k_quants_are_no_worse_than_legacy_quants_of_the_same_bits() {
    // Q4_K and Q5_K spend their extra bits on finer scales; on the same data
    // they must beat the one-scale-per-32 legacy formats.
    let x = generate_data(0.5, TEST_SIZE);
    for (k, legacy) in [
        (GgmlType::Q4_K, GgmlType::Q4_1),
        (GgmlType::Q5_K, GgmlType::Q5_1),
    ] {
        let (ek, el) = (
            rms(&x, &round_trip(k, &x)),
            rms(&x, &round_trip(legacy, &x)),
        );
        assert!(ek <= el, "{k}: {ek} vs {legacy}: {el}");
    }
}

#[test]
fn every_quantizer_keeps_zeros_zero_and_tiny_blocks_finite() {
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
    ];
    let zeros = vec![0.0f32; 256];
    let tiny: Vec<f32> = (0..256).map(|i| 1e-20 * (i as f32 - 128.0)).collect();
    for ty in types {
        assert!(
            round_trip(ty, &zeros).iter().all(|&v| v == 0.0),
            "{ty} zeros"
        );
        assert!(
            round_trip(ty, &tiny)
                .iter()
                .all(|v| v.is_finite() && v.abs() < 1e-15),
            "{ty} tiny"
        );
    }
}

#[test]
fn q8_1_carries_the_scaled_sum_of_its_levels() {
    let x = generate_data(1.0, 64);
    let mut bytes = Vec::new();
    quantize(GgmlType::Q8_1, &x, &mut bytes).unwrap();
    for block in bytes
        .chunks_exact(36)
        .map(bytemuck::pod_read_unaligned::<BlockQ8_1>)
    {
        let d = block.d.to_f32();
        let sum: i32 = block.qs.iter().map(|&q| q as i32).sum();
        // s was rounded to f16 from the f32 scale, d is that scale rounded too.
        let rel = (block.s.to_f32() - sum as f32 * d).abs() / (sum as f32 * d).abs().max(1e-6);
        assert!(rel < 2e-3, "s {} vs {}", block.s, sum as f32 * d);
    }
}

#[test]
fn q8_k_levels_stay_within_half_a_step_and_bsums_add_up() {
    let x = generate_data(2.0, 512);
    let mut bytes = Vec::new();
    quantize(GgmlType::Q8_K, &x, &mut bytes).unwrap();
    for (b, xs) in bytes.chunks_exact(292).zip(x.chunks_exact(256)) {
        let block = bytemuck::pod_read_unaligned::<BlockQ8K>(b);
        for (&q, &v) in block.qs.iter().zip(xs) {
            assert!((block.d * q as f32 - v).abs() <= block.d.abs() * 0.5001);
        }
        for (g, &s) in block.bsums.iter().enumerate() {
            let sum: i16 = block.qs[16 * g..16 * g + 16]
                .iter()
                .map(|&q| q as i16)
                .sum();
            assert_eq!(s, sum);
        }
    }
}

#[test]
fn quantize_appends_to_existing_bytes() {
    let x = generate_data(0.0, 32);
    let mut out = vec![0xAB];
    quantize(GgmlType::Q8_0, &x, &mut out).unwrap();
    assert_eq!(out.len(), 1 + 34);
    assert_eq!(out[0], 0xAB);
}

#[test]
fn a_partial_block_cannot_be_quantized() {
    let x = vec![1.0f32; 100];
    let err = quantize(GgmlType::Q4_K, &x, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err,
        QuantError::PartialBlock {
            ty: GgmlType::Q4_K,
            elements: 100
        }
    );
}

#[test]
fn types_without_a_quantizer_are_rejected_by_type() {
    let x = vec![0.0f32; 256];
    for ty in [GgmlType::IQ2_XXS, GgmlType::IQ3_S, GgmlType::IQ1_M] {
        assert_eq!(
            quantize(ty, &x, &mut Vec::new()),
            Err(QuantError::NoQuantizer(ty))
        );
    }
    assert_eq!(
        quantize(GgmlType::I8, &x, &mut Vec::new()),
        Err(QuantError::Unsupported(GgmlType::I8))
    );
}
