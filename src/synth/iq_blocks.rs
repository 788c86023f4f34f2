//! Random data of the IQ, TQ and MXFP4 types.
//!
//! Two schemes, by what the type allows:
//! - types with a quantizer (IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4) quantize
//!   normal draws of the requested spread. Random bytes would not do: a
//!   TQ2_0 byte can hold the level 3 (value 2d) that no ternary model has,
//!   TQ1_0 bytes above 242 are never written, and MXFP4's scale is a power
//!   of two, not an f16 to set to the spread;
//! - the lattice types (no quantizer here) take uniform random bytes, which
//!   are always valid blocks (random grid indices, signs and sub-block
//!   scales), with the f16 `d` set for the requested spread. The spread of
//!   a block at `d = 1` comes from the grids, so it is measured, once per
//!   call, on [`UNIT_SAMPLE_BLOCKS`] blocks of the same scheme.
//!
//! For speed tests ([`Values::FixedScales`]) every type takes random bytes
//! with `d` fixed (MXFP4: the E8M0 exponent nearest `d`).

use half::f16;

use super::blocks::Values;
use super::SynthRng;
use crate::quant::{dequantize, quantize, GgmlType};

/// Blocks dequantized to measure a lattice type's spread at `d = 1`.
pub const UNIT_SAMPLE_BLOCKS: usize = 64;

/// Whether this module draws `ty`.
pub fn handles(ty: GgmlType) -> bool {
    GgmlType::NEWER_WEIGHT_QUANTS.contains(&ty)
}

/// `n` values of `ty` (one of [`handles`]' types) as `values` says.
pub fn random_data(rng: &mut SynthRng, ty: GgmlType, n: usize, values: Values) -> Vec<u8> {
    match values {
        Values::Normal { std, .. } if has_quantizer(ty) => {
            let mut out = Vec::with_capacity(n / ty.block_len() * ty.block_bytes());
            quantize(ty, &rng.normal_vec(n, 0.0, std), &mut out)
                .expect("whole blocks of a type with a quantizer");
            out
        }
        Values::Normal { std, .. } => {
            let d = (std as f64 / unit_rms(ty)) as f32;
            random_blocks(rng, ty, n / ty.block_len(), d)
        }
        Values::FixedScales { d, .. } => random_blocks(rng, ty, n / ty.block_len(), d),
    }
}

fn has_quantizer(ty: GgmlType) -> bool {
    use GgmlType as T;
    matches!(ty, T::IQ4_NL | T::IQ4_XS | T::TQ1_0 | T::TQ2_0 | T::MXFP4)
}

/// Uniform random blocks with every block's scale set to `d`.
fn random_blocks(rng: &mut SynthRng, ty: GgmlType, n_blocks: usize, d: f32) -> Vec<u8> {
    let size = ty.block_bytes();
    let mut out = vec![0u8; n_blocks * size];
    rng.fill_bytes(&mut out);
    for block in out.chunks_exact_mut(size) {
        set_scale(ty, block, d);
    }
    out
}

/// Writes the scale `d` into one block of `ty`.
fn set_scale(ty: GgmlType, block: &mut [u8], d: f32) {
    use GgmlType as T;
    let bits = f16::from_f32(d).to_bits();
    match ty {
        // 2^(e - 128) nearest d (the stored value is half the E8M0 scale).
        T::MXFP4 => {
            block[0] =
                (d.abs().max(f32::MIN_POSITIVE).log2().round() + 128.0).clamp(0.0, 255.0) as u8
        }
        // d's f16 bits are the top nibbles of the u16 words at 48..56.
        T::IQ1_M => {
            for w in 0..4 {
                let nib = ((bits >> (4 * w)) & 0xf) as u8;
                block[49 + 2 * w] = (block[49 + 2 * w] & 0x0f) | nib << 4;
            }
        }
        _ => {
            let at = match ty {
                T::TQ1_0 => 52,
                T::TQ2_0 => 64,
                _ => 0,
            };
            block[at..at + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
}

/// RMS of random blocks of `ty` with `d = 1`, from a fixed sample.
fn unit_rms(ty: GgmlType) -> f64 {
    let mut rng = SynthRng::new(0x1a77_1ce5);
    let bytes = random_blocks(&mut rng, ty, UNIT_SAMPLE_BLOCKS, 1.0);
    let mut x = vec![0f32; UNIT_SAMPLE_BLOCKS * ty.block_len()];
    dequantize(ty, &bytes, &mut x).expect("whole blocks of a decodable type");
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}
