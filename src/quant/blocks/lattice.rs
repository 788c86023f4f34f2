//! What the IQ1/IQ2/IQ3 "lattice" formats share: groups of 4 or 8 values
//! are one index into a fixed grid of magnitudes ([`super::iq_grids`]),
//! with the signs stored apart.
//!
//! IQ2_XXS, IQ2_XS and IQ3_XXS store the signs of 8 values in 7 bits: the
//! eighth sign is whatever makes the number of negatives even (the grids
//! are built so that flipping one value is never needed).

/// The eight signs (bit `k` set = element `k` negative) of a 7-bit sign
/// index: bit 7 is the parity of the other seven (ggml's `ksigns_iq2xs`).
#[inline]
pub const fn ksign(index: u8) -> u8 {
    let low = index & 0x7f;
    low | (((low.count_ones() & 1) as u8) << 7)
}

/// Byte `k` of a grid word: the magnitude of element `k` of the group.
#[inline]
pub const fn grid_byte(word: u64, k: usize) -> u8 {
    (word >> (8 * k)) as u8
}

/// `v` negated where bit `k` of `signs` is set.
#[inline]
pub fn signed(v: f32, signs: u8, k: usize) -> f32 {
    if signs >> k & 1 == 1 {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_bytes_always_have_an_even_number_of_negatives() {
        for i in 0..128u8 {
            assert_eq!(ksign(i) & 0x7f, i);
            assert_eq!(ksign(i).count_ones() % 2, 0);
        }
        // Spot values of ggml's table.
        assert_eq!(ksign(1), 0x81);
        assert_eq!(ksign(3), 0x03);
        assert_eq!(ksign(127), 0xff);
    }
}
