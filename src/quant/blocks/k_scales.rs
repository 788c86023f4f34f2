//! The packed 6-bit sub-block scales of the K-quants.
//!
//! Q4_K and Q5_K store eight (scale, min) pairs of 6 bits in 12 bytes:
//! bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 mins 0..4;
//! for pairs 4..8, byte `j + 4` holds the low nibbles (scale low, min high)
//! and the top two bits of bytes `j - 4` (scale) and `j` (min) hold the
//! remaining two bits. Q3_K stores sixteen 6-bit scales (biased by 32) in
//! 12 bytes: low nibbles in bytes 0..8 (scale `j` low, `j + 8` high), and the
//! top two bits of scale `j` at bits `2 * (j / 4)` of byte `8 + j % 4`.
//!
//! CPU and GPU kernels must decode these exactly as here.

/// Scale and min (each 0..64) of sub-block `j` (0..8) of a Q4_K/Q5_K block.
#[inline]
pub fn get_scale_min_k4(j: usize, scales: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0xf) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// All eight scales and all eight mins of a Q4_K/Q5_K block at once, as
/// little-endian bytes (byte `j` = pair `j`), from the three 32-bit words
/// of `scales`: pairs 0..4 are the low six bits of words 0 (scales) and 1
/// (mins); pairs 4..8 take their low bits from word 2's nibbles and their
/// top two from the top bits of words 0 and 1. What SIMD kernels decode
/// in a few integer operations; agrees with [`get_scale_min_k4`].
#[inline(always)]
pub fn unpack_scale_min_k4(scales: &[u8; 12]) -> (u64, u64) {
    let word = |i: usize| u32::from_le_bytes(std::array::from_fn(|b| scales[4 * i + b]));
    let (w0, w1, w2) = (word(0), word(1), word(2));
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let sc_high = (w2 & LOW4) | ((w0 >> 6) & TOP2) << 4;
    let mn_high = ((w2 >> 4) & LOW4) | ((w1 >> 6) & TOP2) << 4;
    (
        (w0 & LOW6) as u64 | (sc_high as u64) << 32,
        (w1 & LOW6) as u64 | (mn_high as u64) << 32,
    )
}

/// Inverse of [`get_scale_min_k4`]: packs eight scales and mins (each < 64).
pub fn pack_scale_min_k4(scales: &[u8; 8], mins: &[u8; 8]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for j in 0..8 {
        let (sc, m) = (scales[j] & 63, mins[j] & 63);
        if j < 4 {
            out[j] |= sc;
            out[j + 4] |= m;
        } else {
            out[j + 4] = (sc & 0xf) | (m & 0xf) << 4;
            out[j - 4] |= (sc >> 4) << 6;
            out[j] |= (m >> 4) << 6;
        }
    }
    out
}

/// The sixteen signed scales (-32..32) of a Q3_K block.
pub fn unpack_q3_k_scales(scales: &[u8; 12]) -> [i8; 16] {
    std::array::from_fn(|j| {
        let low = if j < 8 {
            scales[j] & 0xf
        } else {
            scales[j - 8] >> 4
        };
        let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        (low | high << 4) as i8 - 32
    })
}

/// Inverse of [`unpack_q3_k_scales`] for scales in -32..32.
pub fn pack_q3_k_scales(scales: &[i8; 16]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for (j, &s) in scales.iter().enumerate() {
        let biased = (s.clamp(-32, 31) + 32) as u8;
        if j < 8 {
            out[j] |= biased & 0xf;
        } else {
            out[j - 8] |= (biased & 0xf) << 4;
        }
        out[8 + j % 4] |= (biased >> 4) << (2 * (j / 4));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scales_round_trip_through_packing() {
        let scales = [0, 1, 17, 63, 32, 5, 48, 63];
        let mins = [63, 2, 0, 33, 31, 60, 15, 16];
        let packed = pack_scale_min_k4(&scales, &mins);
        for j in 0..8 {
            assert_eq!(
                get_scale_min_k4(j, &packed),
                (scales[j], mins[j]),
                "pair {j}"
            );
        }
    }

    #[test]
    fn k4_scales_unpacked_at_once_agree_with_one_pair_at_a_time() {
        let mut rng = crate::rng::Rng::new(12);
        let mut packed = [0u8; 12];
        for _ in 0..2000 {
            rng.fill_bytes(&mut packed);
            let (scales, mins) = unpack_scale_min_k4(&packed);
            for j in 0..8 {
                let at_once = ((scales >> (8 * j)) as u8, (mins >> (8 * j)) as u8);
                assert_eq!(
                    at_once,
                    get_scale_min_k4(j, &packed),
                    "pair {j} of {packed:?}"
                );
            }
        }
    }

    #[test]
    fn q3_k_scales_round_trip_through_packing() {
        let scales: [i8; 16] = std::array::from_fn(|j| j as i8 * 4 - 32);
        assert_eq!(unpack_q3_k_scales(&pack_q3_k_scales(&scales)), scales);
    }
}
