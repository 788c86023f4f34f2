//! Random tensor data of any supported ggml type whose values have a chosen
//! spread, made without a quantizer: random levels (uniform bytes) with the
//! block's f16 scale fields set to chosen values.
//!
//! Going around the quantizers keeps a seed's bytes fixed even when a
//! quantizer changes, and works for types that have none yet.
//!
//! Per type: the byte offset of the scale `d` and of the offset/min field (if
//! any) inside a block (ggml-common.h), the min as a multiple of `d` chosen
//! so the levels are centred (x = d*q + m: m = -d * mean level; x = d*sc*q -
//! dmin*m: dmin = d * mean level), and the standard deviation of a block's
//! values when `d` is 1 and every other byte is uniform, which turns a target
//! spread into `d`. Those deviations are derived from the level
//! distributions and checked against the dequantizers in the tests below.

use half::f16;

use super::error::SynthError;
use super::SynthRng;
use crate::quant::GgmlType;

/// How a block type stores its scales.
#[derive(Debug, Clone, Copy)]
struct ScaleFields {
    /// Offset of the f16 scale `d`.
    d: usize,
    /// Offset of the f16 min/offset field and its value as a multiple of `d`.
    min: Option<(usize, f32)>,
    /// Standard deviation of the values for `d = 1` with uniform bytes.
    unit_std: f64,
}

fn scale_fields(ty: GgmlType) -> Option<ScaleFields> {
    use GgmlType as T;
    let f = |d, min, unit_std| Some(ScaleFields { d, min, unit_std });
    match ty {
        // x = d * (q - 8), q uniform in 0..16: E[(q-8)^2] = 21.5.
        T::Q4_0 => f(0, None, 21.5f64.sqrt()),
        // x = d * q + m with m = -7.5 d: var of uniform 0..16 = 255/12.
        T::Q4_1 => f(0, Some((2, -7.5)), (255.0f64 / 12.0).sqrt()),
        // x = d * (q - 16), q uniform in 0..32: E[(q-16)^2] = 85.5.
        T::Q5_0 => f(0, None, 85.5f64.sqrt()),
        T::Q5_1 => f(0, Some((2, -15.5)), (1023.0f64 / 12.0).sqrt()),
        // x = d * q, q uniform i8: E[q^2] = 5461.5.
        T::Q8_0 => f(0, None, 5461.5f64.sqrt()),
        // x = d*sc*q - dmin*m, 4-bit sc and m, q in 0..4, dmin = 1.5 d.
        T::Q2_K => f(80, Some((82, 1.5)), 192.5f64.sqrt()),
        // x = d * (sc - 32) * q, 6-bit sc, q in -4..4: 341.5 * 5.5.
        T::Q3_K => f(108, None, (341.5f64 * 5.5).sqrt()),
        // 6-bit sc and m, q in 0..16, dmin = 7.5 d.
        T::Q4_K => f(0, Some((2, 7.5)), k_quant_unit_var(16.0).sqrt()),
        T::Q5_K => f(0, Some((2, 15.5)), k_quant_unit_var(32.0).sqrt()),
        // x = d * sc * (q - 32), sc an i8, q in 0..64: 5461.5 * 341.5.
        T::Q6_K => f(208, None, (5461.5f64 * 341.5).sqrt()),
        _ => None,
    }
}

/// Variance of `sc*q - c*m` for independent uniform 6-bit `sc`, `m` and
/// uniform levels `q` in `0..levels`, with `c` the mean level.
fn k_quant_unit_var(levels: f64) -> f64 {
    let (sc_mean, sc_sq) = (31.5, 63.0 * 127.0 / 6.0);
    let (q_mean, q_sq) = (
        (levels - 1.0) / 2.0,
        (levels - 1.0) * (2.0 * levels - 1.0) / 6.0,
    );
    let c = q_mean;
    let prod_sq = sc_sq * q_sq;
    prod_sq - 2.0 * (sc_mean * q_mean) * (c * sc_mean) + c * c * sc_sq
}

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values {
    /// `mean + std * N(0, 1)` for float types; for block types, random
    /// levels with scales set so the values have about this spread around 0
    /// (`mean` is ignored there).
    Normal { mean: f32, std: f32 },
    /// Uniform random bytes with every f16 scale field set to a fixed value
    /// (`d`, and `min` where the type has one): the scheme of
    /// mk_synthetic_gguf.py, used for speed tests, where values do not matter.
    FixedScales { d: f32, min: f32 },
}

impl Values {
    /// mk_synthetic_gguf.py's scales: d = 0.01, dmin = 0.001.
    pub const BENCHMARK: Values = Values::FixedScales {
        d: 0.01,
        min: 0.001,
    };

    pub fn normal(mean: f32, std: f32) -> Self {
        Values::Normal { mean, std }
    }
}

/// `n` values of type `ty` drawn as `values` says, as the tensor's bytes.
pub fn random_data(
    rng: &mut SynthRng,
    ty: GgmlType,
    n: usize,
    values: Values,
) -> Result<Vec<u8>, SynthError> {
    use GgmlType as T;
    let unsupported = |why| SynthError::Type { ty, why };
    if !n.is_multiple_of(ty.block_len()) {
        return Err(SynthError::Type {
            ty,
            why: "the element count is not a whole number of blocks",
        });
    }
    let (mean, std) = match values {
        Values::Normal { mean, std } => (mean, std),
        // Float types have no scales: draw them like a weight of spread d.
        Values::FixedScales { d, .. } => (0.0, d),
    };
    let float = |rng: &mut SynthRng| rng.normal_vec(n, mean, std);
    Ok(match ty {
        T::F32 => float(rng).iter().flat_map(|v| v.to_le_bytes()).collect(),
        T::F64 => (0..n)
            .flat_map(|_| (mean as f64 + std as f64 * rng.normal()).to_le_bytes())
            .collect(),
        T::F16 => float(rng)
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        T::BF16 => float(rng)
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ if super::iq_blocks::handles(ty) => super::iq_blocks::random_data(rng, ty, n, values),
        _ => {
            let fields = scale_fields(ty).ok_or(unsupported(
                "no random-block scheme for this type (only float, legacy, K-quant, IQ, TQ and MXFP4 types)",
            ))?;
            let (d, min) = match values {
                Values::Normal { std, .. } => {
                    let d = (std as f64 / fields.unit_std) as f32;
                    (d, fields.min.map_or(0.0, |(_, k)| k * d))
                }
                Values::FixedScales { d, min } => (d, min),
            };
            random_blocks(rng, ty, n / ty.block_len(), fields, d, min)
        }
    })
}

fn random_blocks(
    rng: &mut SynthRng,
    ty: GgmlType,
    n_blocks: usize,
    fields: ScaleFields,
    d: f32,
    min: f32,
) -> Vec<u8> {
    let size = ty.block_bytes();
    let mut out = vec![0u8; n_blocks * size];
    rng.fill_bytes(&mut out);
    let d = f16::from_f32(d).to_le_bytes();
    let min = f16::from_f32(min).to_le_bytes();
    for block in out.chunks_exact_mut(size) {
        block[fields.d..fields.d + 2].copy_from_slice(&d);
        if let Some((at, _)) = fields.min {
            block[at..at + 2].copy_from_slice(&min);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize;

    fn moments(ty: GgmlType, values: Values, n: usize) -> (f64, f64) {
        let bytes = random_data(&mut SynthRng::new(5), ty, n, values).unwrap();
        let mut x = vec![0f32; n];
        dequantize(ty, &bytes, &mut x).unwrap();
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn block_values_have_the_requested_spread_around_zero() {
        for ty in GgmlType::WEIGHT_QUANTS {
            let (mean, std) = moments(ty, Values::normal(0.0, 0.05), 256 * 512);
            assert!((std / 0.05 - 1.0).abs() < 0.05, "{ty}: std {std}");
            // Q4_0 has no offset field: its levels average -0.5 d.
            assert!(mean.abs() < 0.12 * 0.05, "{ty}: mean {mean}");
        }
    }

    #[test]
    fn iq_tq_and_mxfp4_values_have_the_requested_spread_around_zero() {
        for ty in GgmlType::NEWER_WEIGHT_QUANTS {
            let (mean, std) = moments(ty, Values::normal(0.0, 0.05), 256 * 512);
            // Ternary weights of normal draws: the RMS is the draws' within 10 %.
            assert!((std / 0.05 - 1.0).abs() < 0.1, "{ty}: std {std}");
            assert!(mean.abs() < 0.12 * 0.05, "{ty}: mean {mean}");
        }
    }

    #[test]
    fn float_values_follow_mean_and_std() {
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            let (mean, std) = moments(ty, Values::normal(1.0, 0.1), 100_000);
            assert!((mean - 1.0).abs() < 0.002, "{ty}: mean {mean}");
            assert!((std - 0.1).abs() < 0.002, "{ty}: std {std}");
        }
    }

    #[test]
    fn fixed_scales_are_written_into_every_block() {
        let bytes = random_data(
            &mut SynthRng::new(1),
            GgmlType::Q4_K,
            512,
            Values::BENCHMARK,
        )
        .unwrap();
        for block in bytes.chunks_exact(144) {
            assert_eq!(&block[0..2], &f16::from_f32(0.01).to_le_bytes());
            assert_eq!(&block[2..4], &f16::from_f32(0.001).to_le_bytes());
        }
        let q6 = random_data(
            &mut SynthRng::new(1),
            GgmlType::Q6_K,
            256,
            Values::BENCHMARK,
        )
        .unwrap();
        assert_eq!(&q6[208..210], &f16::from_f32(0.01).to_le_bytes());
    }

    #[test]
    fn partial_blocks_and_unsupported_types_are_errors() {
        let mut rng = SynthRng::new(0);
        assert!(random_data(&mut rng, GgmlType::Q4_K, 100, Values::BENCHMARK).is_err());
        assert!(random_data(&mut rng, GgmlType::I8, 256, Values::BENCHMARK).is_err());
    }
}
