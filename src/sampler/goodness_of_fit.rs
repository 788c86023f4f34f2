//! Pearson's chi-square goodness-of-fit test: whether counted draws follow
//! given probabilities. It checks that a sampler fed a GPU's candidates
//! draws from the distribution the whole row defines.

use super::{RowTop, Sampler, SamplerConfig};

/// The p-value of `observed` draws per bin against `probs` (the bins'
/// probabilities, summing to 1). Bins expected to hold fewer than 5 draws
/// are pooled, as the test's chi-square approximation needs. A draw in a
/// bin of probability 0 gives 0.
pub fn chi_square_p(observed: &[u64], probs: &[f64]) -> f64 {
    assert_eq!(observed.len(), probs.len(), "one probability per bin");
    let n: u64 = observed.iter().sum();
    if n == 0 {
        return 1.0;
    }
    let n = n as f64;
    if observed.iter().zip(probs).any(|(&o, &p)| o > 0 && p <= 0.0) {
        return 0.0;
    }
    let mut bins: Vec<(f64, f64)> = Vec::new(); // (observed, expected)
    let mut pool = (0.0, 0.0);
    for (&o, &p) in observed.iter().zip(probs) {
        let e = p * n;
        if e >= 5.0 {
            bins.push((o as f64, e));
        } else {
            pool.0 += o as f64;
            pool.1 += e;
        }
    }
    if pool.1 >= 5.0 || bins.is_empty() {
        bins.push(pool);
    } else if let Some(last) = bins.last_mut() {
        last.0 += pool.0;
        last.1 += pool.1;
    }
    let df = bins.len() - 1;
    if df == 0 {
        return 1.0;
    }
    let chi2: f64 = bins.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    upper_regularized_gamma(df as f64 / 2.0, chi2 / 2.0)
}

/// The p-value of `draws` tokens drawn by a sampler with `cfg` and the
/// recent tokens `history` from `top` (a row's best tokens) against the
/// distribution the same sampler defines on the whole `row`; `None` where
/// `top` does not decide the draw. Each draw has its own seed, so the test
/// sees the distribution, not one shared random sequence.
pub fn top_draws_fit_p(
    cfg: &SamplerConfig,
    history: &[u32],
    row: &[f32],
    top: &RowTop,
    draws: usize,
) -> Option<f64> {
    let sampler = |seed: u64| {
        let mut s = Sampler::new(SamplerConfig {
            seed,
            ..cfg.clone()
        });
        history.iter().for_each(|&id| s.accept(id));
        s
    };
    let list = sampler(cfg.seed).list_for_row(row);
    let ids: Vec<u32> = list.ids().collect();
    let mut probs = list.probabilities();
    // A last bin, of probability 0, for tokens outside the list.
    probs.push(0.0);
    let mut counts = vec![0u64; probs.len()];
    for d in 0..draws as u64 {
        let id = sampler(cfg.seed.wrapping_add(d.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .sample_top(top)?;
        let bin = ids.iter().position(|&i| i == id).unwrap_or(ids.len());
        counts[bin] += 1;
    }
    Some(chi_square_p(&counts, &probs))
}

/// ln Γ(a) for a > 0 (Lanczos, g = 7: about 15 digits).
fn ln_gamma(a: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if a < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * a).sin()).ln() - ln_gamma(1.0 - a);
    }
    let x = a - 1.0;
    let t = x + 7.5;
    let sum = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Q(a, x) = Γ(a, x) / Γ(a): the series below x = a + 1, the continued
/// fraction above it (each converges fast on its side).
fn upper_regularized_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut term, mut sum) = (1.0 / a, 1.0 / a);
        for n in 1..10_000 {
            term *= x / (a + n as f64);
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        return (1.0 - sum * front).clamp(0.0, 1.0);
    }
    // Modified Lentz evaluation of the continued fraction.
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (front * h).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_match_the_chi_square_tables() {
        // (degrees of freedom, statistic, p) from standard tables.
        for (df, chi2, p) in [
            (1.0, 3.841, 0.05),
            (1.0, 6.635, 0.01),
            (2.0, 5.991, 0.05),
            (10.0, 18.307, 0.05),
            (10.0, 2.558, 0.99),
            (40.0, 63.691, 0.01),
        ] {
            let got = upper_regularized_gamma(df / 2.0, chi2 / 2.0);
            assert!(
                (got - p).abs() < 0.01 * p,
                "df {df} chi2 {chi2}: {got} vs {p}"
            );
        }
        // Two degrees of freedom: exactly exp(-x / 2).
        assert!((upper_regularized_gamma(1.0, 3.0) - (-3f64).exp()).abs() < 1e-12);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..20 {
            assert!((ln_gamma(n as f64) - f.ln()).abs() < 1e-10, "{n}");
            f *= n as f64;
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn fitting_counts_pass_and_skewed_counts_fail() {
        let probs = [0.5, 0.3, 0.2];
        assert!(chi_square_p(&[5_010, 2_990, 2_000], &probs) > 0.5);
        assert!(chi_square_p(&[5_400, 2_700, 1_900], &probs) < 1e-6);
        // A draw that cannot happen.
        assert_eq!(chi_square_p(&[1, 0], &[0.0, 1.0]), 0.0);
        // Rare bins are pooled: 3 + 1 + 1 expected draws form one bin.
        assert!(chi_square_p(&[995, 4, 1, 0], &[0.995, 0.003, 0.001, 0.001]) > 0.01);
    }
}
