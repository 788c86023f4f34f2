//! The project's one seeded generator, whose output is fixed forever by
//! this file: a seed names one synthetic model (tests regenerate the exact
//! bytes of a fixture's model instead of committing it) and one sampled text.
//!
//! xoshiro256** (Blackman and Vigna, 2018) seeded through splitmix64, normal
//! deviates from sums of uniforms (no transcendental functions). Changing anything here changes every
//! synthetic model; the golden fixtures record a checksum that would notice.

/// A deterministic pseudo-random source (synthetic weights, sampling).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 spreads any seed (0 included) over the whole state.
        let mut x = seed;
        Rng {
            s: [(); 4].map(|_| splitmix64(&mut x)),
        }
    }

    /// An independent stream for `label` (a tensor name, say), so that the
    /// values of one tensor do not depend on which tensors came before it.
    pub fn fork(&self, label: &str) -> Self {
        // FNV-1a of the label, mixed with this generator's state.
        let h = label.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
        });
        Rng::new(h ^ self.s[0].rotate_left(17) ^ self.s[2])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Fills `out` with uniform random bytes (little-endian words).
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let w = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&w[..rest.len()]);
        }
    }

    /// Uniform in [0, 1), 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An approximately standard normal deviate: the Irwin-Hall sum of 12
    /// uniforms minus 6 (mean 0, variance 1, range ±6). Only additions, so
    /// the result is the same on every platform, which a libm `ln`/`cos`
    /// (Box-Muller) does not promise.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }

    /// `n` values `mean + std * N(0, 1)` as f32.
    pub fn normal_vec(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..n).map(|_| mean + std * self.normal() as f32).collect()
    }
}

/// One step of splitmix64 (Steele, Lea and Flood, 2014).
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_stream() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(7);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
    }

    /// The reference implementations' outputs (splitmix64.c from seed 0,
    /// xoshiro256starstar.c from the state 1, 2, 3, 4): the stream, and so
    /// every synthetic model, is fixed.
    #[test]
    fn generators_match_their_reference_implementations() {
        let mut x = 0;
        let sm: Vec<u64> = (0..3).map(|_| splitmix64(&mut x)).collect();
        assert_eq!(
            sm,
            [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
        );
        let mut r = Rng { s: [1, 2, 3, 4] };
        let xs: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(xs, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn fill_bytes_takes_little_endian_words() {
        let mut a = Rng::new(9);
        let mut b = a.clone();
        let mut bytes = [0u8; 11];
        a.fill_bytes(&mut bytes);
        assert_eq!(bytes[..8], b.next_u64().to_le_bytes());
        assert_eq!(bytes[8..], b.next_u64().to_le_bytes()[..3]);
    }

    #[test]
    fn forks_differ_by_label() {
        let r = Rng::new(1);
        assert_ne!(r.fork("a").next_u64(), r.fork("b").next_u64());
        assert_eq!(r.fork("a").next_u64(), r.fork("a").next_u64());
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(3);
        let x: Vec<f64> = (0..200_000).map(|_| r.normal()).collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn seed_zero_is_not_degenerate() {
        let mut r = Rng::new(0);
        assert_ne!(r.next_u64(), 0);
        assert_ne!(r.next_u64(), r.next_u64());
    }

    #[test]
    fn uniforms_fall_in_the_unit_interval_with_a_mean_near_half() {
        let mut r = Rng::new(7);
        let xs: Vec<f64> = (0..10_000).map(|_| r.uniform()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
