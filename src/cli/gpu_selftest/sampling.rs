//! The sampler fed the device's top candidates: greedy and top-k = 1 give
//! exactly the CPU sampler's token on the row copied back, and random
//! draws follow the whole row's distribution (chi-square, 100,000 draws
//! per setting, p ≥ 1e-3).

use rocmforge::backend::DevicePtr;
use rocmforge::codegen::rows::{RowOp, TOP_CANDIDATES};
use rocmforge::exec::step::TopRows;
use rocmforge::sampler::goodness_of_fit::top_draws_fit_p;
use rocmforge::sampler::{RowTop, Sampler, SamplerConfig};

use super::{Check, Res, Suite};

const DRAWS: usize = 100_000;

pub fn device_candidates(s: &mut Suite) -> Res<Check> {
    let (n, k) = (151_936usize, TOP_CANDIDATES as usize);
    // Shaped like a language model's row: a flat background and a few
    // tokens far ahead, so that a nucleus fits in the candidates.
    let mut x = s.rng.vec(n, -3.0, 3.0);
    for (j, v) in [
        (17usize, 20.0f32),
        (90_000, 19.5),
        (5, 18.0),
        (151_000, 17.0),
        (40, 16.5),
    ] {
        x[j] = v;
    }
    for (i, j) in (1_000..1_040).map(|i| i * 97).enumerate() {
        x[j] = 10.0 + 0.1 * (i % 7) as f32;
    }
    let op = RowOp::TopK {
        n: n as u32,
        k: TOP_CANDIDATES,
    };
    let kern = s.kernel(&op.source()?, op.entry())?;
    let xb = s.upload(&x)?;
    let out = s.upload(&vec![-7i32; 2 * k + 1])?;
    // SAFETY: x holds one row of n floats, out one row of 2k+1 words.
    unsafe {
        op.launch(
            &kern,
            &s.stream,
            xb.ptr(),
            n as u32,
            DevicePtr::NULL,
            out.ptr(),
            0,
            1,
        )?
    };
    s.stream.synchronize()?;
    let words: Vec<i32> = out.to_vec()?;
    let row: Vec<f32> = xb.to_vec()?;
    let (cands, lse) = TopRows::new(k, &words).row(0);
    let top = RowTop::new(&cands, k, lse, &[], |_| false);
    let mut failures = 0usize;
    let mut notes = Vec::new();
    for cfg in [
        SamplerConfig::greedy(),
        SamplerConfig {
            top_k: 1,
            ..SamplerConfig::default()
        },
    ] {
        let want = Sampler::new(cfg.clone()).sample(&mut row.clone());
        let got = Sampler::new(cfg).sample_top(&top);
        if got != Some(want) {
            failures += 1;
            notes.push(format!("exact: {got:?} vs CPU {want}"));
        }
    }
    let repeated: Vec<u32> = cands.iter().take(2).map(|c| c.0).collect();
    let mut worst_p = 1f64;
    for (cfg, history) in [
        (SamplerConfig::default(), &[][..]),
        (
            SamplerConfig {
                top_k: 0,
                top_p: 0.9,
                min_p: 0.0,
                temperature: 1.2,
                ..SamplerConfig::default()
            },
            &[],
        ),
        (
            SamplerConfig {
                top_k: 0,
                top_p: 1.0,
                min_p: 0.01,
                ..SamplerConfig::default()
            },
            &[],
        ),
        (
            SamplerConfig {
                repeat_penalty: 1.3,
                presence_penalty: 0.5,
                ..SamplerConfig::default()
            },
            &repeated[..],
        ),
    ] {
        match top_draws_fit_p(&cfg, history, &row, &top, DRAWS) {
            Some(p) => {
                worst_p = worst_p.min(p);
                if p < 1e-3 {
                    failures += 1;
                    notes.push(format!(
                        "top_k {} top_p {}: p = {p:.2e}",
                        cfg.top_k, cfg.top_p
                    ));
                }
            }
            None => {
                failures += 1;
                notes.push(format!(
                    "top_k {} top_p {}: candidates undecided",
                    cfg.top_k, cfg.top_p
                ));
            }
        }
    }
    notes.push(format!("lowest chi-square p {worst_p:.3}"));
    Ok(Check::new(failures as f64, 0.0).note(notes.join("; ")))
}
