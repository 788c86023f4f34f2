//! Dequantization against the gguf Python package (numpy), on real-model and
//! random blocks. Fixtures: tests/fixtures/quant/, made by
//! scripts/make-quant-fixtures.sh; this test reads only those files.

use rocmforge::quant::blocks::{
    dequantize_row, get_scale_min_k4, unpack_q3_k_scales, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K,
    BlockQ6K,
};
use rocmforge::quant::{dequantize, GgmlType, QuantError};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Index {
    dequantize: Vec<DequantCase>,
}

#[derive(Deserialize)]
struct DequantCase {
    #[serde(rename = "type")]
    ty: String,
    source: String,
    elements: usize,
    blocks_file: String,
    expected_file: String,
}

impl DequantCase {
    fn ggml_type(&self) -> GgmlType {
        GgmlType::from_name(&self.ty).expect("fixture names a known type")
    }
    fn name(&self) -> String {
        format!("{} ({})", self.ty, self.source)
    }
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read_f32(name: &str) -> Vec<f32> {
    read(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn index() -> Index {
    serde_json::from_slice(&read("index.json")).expect("index.json parses")
}

/// Distance in units in the last place; 0 for equal bits, ±0, or two NaNs.
fn ulps(a: f32, b: f32) -> u32 {
    if a.to_bits() == b.to_bits() || (a == b) || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    if a.is_nan() || b.is_nan() || a.is_sign_negative() != b.is_sign_negative() {
        return u32::MAX;
    }
    a.to_bits().abs_diff(b.to_bits())
}

/// Decodes one fixture and checks every value is within 1 ulp of numpy's.
/// Returns how many values were not bit-identical.
fn check_case(case: &DequantCase) -> usize {
    let bytes = read(&case.blocks_file);
    let expected = read_f32(&case.expected_file);
    assert_eq!(expected.len(), case.elements, "{}", case.name());
    let mut got = vec![0.0f32; case.elements];
    dequantize(case.ggml_type(), &bytes, &mut got)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name()));
    let mut inexact = 0;
    for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
        let d = ulps(g, e);
        assert!(
            d <= 1,
            "{}: element {i}: ours {g:e}, numpy {e:e}",
            case.name()
        );
        inexact += (d != 0) as usize;
    }
    inexact
}

fn types_checked(source: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for case in index().dequantize.iter().filter(|c| c.source == source) {
        let inexact = check_case(case);
        assert_eq!(
            inexact,
            0,
            "{}: {inexact} values 1 ulp off numpy",
            case.name()
        );
        seen.insert(case.ty.clone());
    }
    seen
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn random_blocks_of_every_numpy_type_decode_like_the_gguf_package() {
    let expected = names(&[
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0", "MXFP4", "IQ2_XXS", "IQ2_XS",
        "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M",
    ]);
    assert_eq!(types_checked("random"), expected);
}

/// The IQ, TQ and MXFP4 types on blocks of edge values: bytes all 0x00,
/// 0xff, 0x55, 0xaa, 0x0f or 0xf0 with scales of 1, the f16 subnormal and
/// normal extremes, ±max and -0 (MXFP4: E8M0 0, 1, 2, 127, 128, 254, 255,
/// where 255 with the largest codes overflows to ±Inf in numpy and here).
#[test]
fn edge_value_blocks_of_the_iq_tq_and_mxfp4_types_decode_like_the_gguf_package() {
    let expected = names(&[
        "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0", "MXFP4", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS",
        "IQ3_S", "IQ1_S", "IQ1_M",
    ]);
    assert_eq!(types_checked("edge"), expected);
}

#[test]
fn real_model_blocks_decode_like_the_gguf_package() {
    let expected = names(&["F32", "Q5_0", "Q8_0", "Q4_K", "Q6_K"]);
    assert_eq!(types_checked("model"), expected);
}

#[test]
fn unaligned_bytes_decode_like_aligned_ones() {
    let index = index();
    let case = index
        .dequantize
        .iter()
        .find(|c| c.ty == "Q4_K" && c.source == "model")
        .unwrap();
    let bytes = read(&case.blocks_file);
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let (mut a, mut b) = (vec![0.0; case.elements], vec![0.0; case.elements]);
    dequantize(GgmlType::Q4_K, &bytes, &mut a).unwrap();
    dequantize(GgmlType::Q4_K, &shifted[1..], &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn typed_block_rows_decode_like_the_byte_api() {
    let index = index();
    let case = index
        .dequantize
        .iter()
        .find(|c| c.ty == "Q6_K" && c.source == "model")
        .unwrap();
    let blocks: Vec<BlockQ6K> = read(&case.blocks_file)
        .chunks_exact(std::mem::size_of::<BlockQ6K>())
        .map(bytemuck::pod_read_unaligned)
        .collect();
    let mut got = vec![0.0; case.elements];
    dequantize_row(&blocks, &mut got);
    assert_eq!(got, read_f32(&case.expected_file));
}

#[test]
fn blocks_without_a_dequantizer_are_rejected_by_type() {
    let unsupported = [GgmlType::I8, GgmlType::I32, GgmlType::F64];
    for ty in unsupported {
        let bytes = vec![0u8; ty.block_bytes()];
        let mut out = vec![0.0; ty.block_len()];
        assert_eq!(
            dequantize(ty, &bytes, &mut out),
            Err(QuantError::Unsupported(ty))
        );
    }
}

#[test]
fn a_partial_block_is_a_length_error() {
    let bytes = vec![0u8; 143];
    let mut out = vec![0.0; 256];
    let err = dequantize(GgmlType::Q4_K, &bytes, &mut out).unwrap_err();
    assert!(matches!(
        err,
        QuantError::Length {
            ty: GgmlType::Q4_K,
            bytes: 143,
            elements: 256
        }
    ));
}

#[test]
fn an_output_of_the_wrong_size_is_a_length_error() {
    let bytes = vec![0u8; 2 * std::mem::size_of::<BlockQ4K>()];
    let mut out = vec![0.0; 256];
    let err = dequantize(GgmlType::Q4_K, &bytes, &mut out).unwrap_err();
    assert!(matches!(err, QuantError::Length { .. }), "{err}");
}

fn random_case_blocks<B: bytemuck::Pod>(ty: &str) -> (Vec<B>, Vec<f32>) {
    let index = index();
    let case = index
        .dequantize
        .iter()
        .find(|c| c.ty == ty && c.source == "random")
        .unwrap();
    let blocks = read(&case.blocks_file)
        .chunks_exact(std::mem::size_of::<B>())
        .map(bytemuck::pod_read_unaligned)
        .collect();
    (blocks, read_f32(&case.expected_file))
}

/// Rebuilds every value from the struct fields and the per-element `level`
/// accessor, and compares with numpy: the accessors are what kernels and
/// their tests index by, so they must agree with the reference bit for bit.
fn assert_levels_rebuild<B: bytemuck::Pod>(ty: &str, value: impl Fn(&B, usize) -> f32) {
    let (blocks, expected) = random_case_blocks::<B>(ty);
    for (b, block) in blocks.iter().enumerate() {
        for i in 0..256 {
            let want = expected[256 * b + i];
            let got = value(block, i);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{ty} block {b} element {i}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn k_quant_level_accessors_rebuild_the_reference_values() {
    assert_levels_rebuild::<BlockQ2K>("Q2_K", |b, i| {
        let sc = b.scales[i / 16];
        b.d.to_f32() * (sc & 0xf) as f32 * b.level(i) as f32 - b.dmin.to_f32() * (sc >> 4) as f32
    });
    assert_levels_rebuild::<BlockQ3K>("Q3_K", |b, i| {
        let sc = unpack_q3_k_scales(&b.scales)[i / 16];
        b.d.to_f32() * sc as f32 * b.level(i) as f32
    });
    assert_levels_rebuild::<BlockQ4K>("Q4_K", |b, i| {
        let (sc, m) = get_scale_min_k4(i / 32, &b.scales);
        b.d.to_f32() * sc as f32 * b.level(i) as f32 - b.dmin.to_f32() * m as f32
    });
    assert_levels_rebuild::<BlockQ5K>("Q5_K", |b, i| {
        let (sc, m) = get_scale_min_k4(i / 32, &b.scales);
        b.d.to_f32() * sc as f32 * b.level(i) as f32 - b.dmin.to_f32() * m as f32
    });
    assert_levels_rebuild::<BlockQ6K>("Q6_K", |b, i| {
        b.d.to_f32() * b.scales[i / 16] as f32 * b.level(i) as f32
    });
}

#[test]
fn bulk_level_decoding_matches_the_per_element_accessor() {
    let (q3, _) = random_case_blocks::<BlockQ3K>("Q3_K");
    let (q6, _) = random_case_blocks::<BlockQ6K>("Q6_K");
    for b in &q3 {
        assert_eq!(
            b.levels().to_vec(),
            (0..256).map(|i| b.level(i)).collect::<Vec<_>>()
        );
    }
    for b in &q6 {
        assert_eq!(
            b.levels().to_vec(),
            (0..256).map(|i| b.level(i)).collect::<Vec<_>>()
        );
    }
}
