//! Which matmul variant serves a step of each size, chosen by timing the
//! candidates on the GPU at hand when the model is built.
//!
//! Whether a step of 8 or 16 tokens is faster through the matvec (each
//! weight read once per pass of its token count, split over the rows and
//! the input) or through a matrix-unit tile (each weight read once, but
//! in blocks of 64 or 128 rows: a narrow matrix's grid leaves most of a
//! large GPU idle) depends on the matrix's shape and on the GPU; a fixed
//! rule is right for some shapes only. So every distinct matmul of the
//! plan times its candidates once per size of [`TUNED_TOKENS`], on the
//! model's own buffers, and keeps the fastest; where no candidate beats
//! the stated default ([`MatMulSpec::variant_for`]) by [`MARGIN`], the
//! default stays, so that noise does not change results between loads.
//! `RFC_MATMUL_TUNE=0` keeps the defaults everywhere. The tables go into
//! artifacts ([`MatMulTuning`]): `rfc compile` for a GPU that is present
//! times them there, and a load on a device of the same name takes them
//! instead of timing again.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::launch::{Launch, RowCount};
use crate::backend::{Event, Stream};
use crate::codegen::{MatMulArgs, MatMulVariant};
use crate::exec::session::StepLimits;
use crate::exec::ExecError;

/// Step sizes whose variant is measured. A step takes the choice of the
/// smallest size at or above its own; one-token steps and steps past the
/// last size keep the default.
pub const TUNED_TOKENS: [u32; 6] = [2, 4, 8, 16, 32, 64];

/// How much faster than the default a candidate must be to replace it.
const MARGIN: f32 = 0.05;

/// Timed launches per candidate (after one untimed).
const REPEATS: u32 = 5;

/// The variant chosen per step size, as (largest tokens, variant), sorted.
pub type VariantTable = Vec<(u32, MatMulVariant)>;

/// Every matmul's table, as an artifact records it (`rfc.matmul_tuning`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatMulTuning {
    /// The device the tables were timed on; `None`: never timed, the
    /// stated defaults ([`MatMulSpec::variant_for`]) serve every step.
    pub measured_on: Option<String>,
    /// Per matmul (its kernel label and row limit): (largest tokens,
    /// variant name) per measured step size.
    #[serde(default)]
    pub tables: BTreeMap<String, Vec<(u32, String)>>,
}

impl MatMulTuning {
    /// Whether the tables were timed on a device named `device`.
    pub fn timed_on(&self, device: &str) -> bool {
        self.measured_on.as_deref() == Some(device)
    }
}

/// The variant `table` gives a step of `t` tokens, if any.
pub fn pick(table: &VariantTable, t: u32) -> Option<MatMulVariant> {
    if t <= 1 {
        return None;
    }
    table.iter().find(|(n, _)| t <= *n).map(|&(_, v)| v)
}

/// The compiled variants worth timing for `t` tokens: a token count per
/// pass (or tile) within a factor of 4 below and 2 above the step's.
pub fn candidates(compiled: &[MatMulVariant], t: u32) -> Vec<MatMulVariant> {
    let skipped = skipped_kinds();
    compiled
        .iter()
        .copied()
        .filter(|v| {
            let name = v.to_string();
            let kind = name.split('/').next().unwrap_or("");
            !skipped.iter().any(|s| s == kind)
        })
        .filter(|v| match *v {
            MatMulVariant::Vector { tokens: 1 } => false,
            MatMulVariant::Vector { tokens: n }
            | MatMulVariant::VectorQ8 { tokens: n }
            | MatMulVariant::Tiled { tokens: n } => 4 * t >= n && t <= 2 * n,
            // Its cost hardly depends on the tokens below its tile (the
            // weights are read once): worth timing from 2 tokens up (the
            // 8B's down projection: narrow/16 at 4 tokens 0.053 ms against
            // matvec/4 at 2 tokens 0.079 on the H100).
            MatMulVariant::Narrow { tokens: n } => t >= 2 && t <= 2 * n,
            // The same, from its smallest tile up.
            MatMulVariant::Fragment { tokens: n, .. } => {
                t >= 2 && t <= 2 * n && (n == 8 || 2 * t > n)
            }
            MatMulVariant::TiledTall => t >= 64,
        })
        .collect()
}

/// Variant kinds left out of the timing (`RFC_TUNE_SKIP=frag,narrow`): a
/// developer's A/B of one kind against the rest on the same build.
fn skipped_kinds() -> Vec<String> {
    std::env::var("RFC_TUNE_SKIP")
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

/// Whether tuning is on (`RFC_MATMUL_TUNE=0` turns it off).
pub fn enabled() -> bool {
    std::env::var("RFC_MATMUL_TUNE").map_or(true, |v| v != "0")
}

/// The most rows a matmul launch takes in a step of `limits` (the plan's
/// tokens, or its logit rows for the logits' matmul: its output holds no
/// more), and the key its table is known by.
fn rows_and_key(
    spec: &crate::codegen::MatMulSpec,
    rows: &RowCount,
    limits: StepLimits,
) -> (u32, String) {
    let most = match rows {
        RowCount::Tokens => limits.max_tokens,
        RowCount::Rows => limits.max_rows,
        RowCount::Fixed(n) => *n as usize,
    } as u32;
    (
        most,
        format!("{} {most}", spec.label(MatMulVariant::Vector { tokens: 1 })),
    )
}

/// Gives each matmul of `launches` its table from `record`; false (and
/// nothing changed) where one has none there or names a variant it was
/// not compiled with.
pub fn apply(launches: &mut [Launch], limits: StepLimits, record: &MatMulTuning) -> bool {
    let mut found = Vec::new();
    for l in launches.iter() {
        let Launch::MatMul {
            spec,
            kernels,
            rows,
            ..
        } = l
        else {
            continue;
        };
        let (_, key) = rows_and_key(spec, rows, limits);
        let Some(entries) = record.tables.get(&key) else {
            return false;
        };
        let mut table = VariantTable::new();
        for (t, name) in entries {
            match name.parse::<MatMulVariant>() {
                Ok(v) if kernels.iter().any(|(c, _)| *c == v) => table.push((*t, v)),
                _ => return false,
            }
        }
        found.push(table);
    }
    let mut found = found.into_iter();
    for l in launches.iter_mut() {
        if let Launch::MatMul { tuned, .. } = l {
            *tuned = found.next().expect("one table per matmul");
        }
    }
    true
}

/// Times each matmul of `launches` (once per distinct kernel label and
/// row count) at every size of [`TUNED_TOKENS`] its rows take in a step
/// of `limits` and stores its table in the launch; returns the tables,
/// as an artifact records them. The launches write their usual outputs in
/// the arena and KV store (all-zero step inputs: page 0, position 0),
/// before any sequence holds a page.
pub fn tune(
    launches: &mut [Launch],
    stream: &Stream,
    limits: StepLimits,
) -> Result<MatMulTuning, ExecError> {
    let gpu = stream.gpu().clone();
    let info = gpu.info();
    let mut done: HashMap<String, VariantTable> = HashMap::new();
    for l in launches.iter_mut() {
        let Launch::MatMul {
            spec,
            kernels,
            args,
            warp,
            tuned,
            rows,
        } = l
        else {
            continue;
        };
        let (most, key) = rows_and_key(spec, rows, limits);
        if let Some(t) = done.get(&key) {
            tuned.clone_from(t);
            continue;
        }
        let compiled: Vec<MatMulVariant> = kernels.iter().map(|(v, _)| *v).collect();
        let mut table = VariantTable::new();
        for t in TUNED_TOKENS.into_iter().filter(|&t| t <= most) {
            let default = spec.variant_for(t, info.multiprocessors, info.vendor);
            let a = MatMulArgs { tokens: t, ..*args };
            let time = |v: MatMulVariant| -> Result<f32, ExecError> {
                let Some((_, k)) = kernels.iter().find(|(c, _)| *c == v) else {
                    return Ok(f32::INFINITY);
                };
                let (start, end) = (Event::new(&gpu)?, Event::new(&gpu)?);
                // SAFETY: the launch's addresses are the model's buffers,
                // sized for `most` rows of this node; `t` is within it.
                unsafe {
                    spec.launch(k, stream, v, *warp, &a)?;
                    start.record(stream)?;
                    for _ in 0..REPEATS {
                        spec.launch(k, stream, v, *warp, &a)?;
                    }
                }
                end.record(stream)?;
                end.synchronize()?;
                Ok(end.elapsed_ms_since(&start)? / REPEATS as f32)
            };
            let base = time(default)?;
            let mut best = (base, default);
            for v in candidates(&compiled, t) {
                if v != default {
                    let ms = time(v)?;
                    tracing::trace!(matmul = %key, tokens = t, variant = %v, ms, "matmul candidate timed");
                    if ms < best.0 * (1.0 - MARGIN) && ms < base * (1.0 - MARGIN) {
                        best = (ms, v);
                    }
                }
            }
            tracing::debug!(matmul = %key, tokens = t, default = ?default, default_ms = base, chosen = ?best.1, chosen_ms = best.0, "matmul variant timed");
            table.push((t, best.1));
        }
        done.insert(key, table.clone());
        *tuned = table;
    }
    let tables = done
        .into_iter()
        .map(|(k, t)| (k, t.iter().map(|(n, v)| (*n, v.to_string())).collect()))
        .collect();
    Ok(MatMulTuning {
        measured_on: Some(info.name.clone()),
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_takes_the_choice_of_the_next_measured_size() {
        let v8 = MatMulVariant::Vector { tokens: 8 };
        let t32 = MatMulVariant::Tiled { tokens: 32 };
        let table = vec![(8, v8), (16, t32)];
        assert_eq!(pick(&table, 1), None);
        assert_eq!(pick(&table, 5), Some(v8));
        assert_eq!(pick(&table, 8), Some(v8));
        assert_eq!(pick(&table, 9), Some(t32));
        assert_eq!(pick(&table, 17), None);
    }

    #[test]
    fn variant_names_read_back() {
        for v in crate::codegen::matmul::MATMUL_VARIANTS.into_iter().chain([
            MatMulVariant::TiledTall,
            MatMulVariant::VectorQ8 { tokens: 4 },
            MatMulVariant::Narrow { tokens: 16 },
        ]) {
            assert_eq!(v.to_string().parse::<MatMulVariant>(), Ok(v));
        }
        for bad in [
            "",
            "matvec",
            "matvec/0",
            "matvec/x",
            "tiled/999",
            "tall/4",
            "tiled/tall/2",
        ] {
            assert!(bad.parse::<MatMulVariant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_reads_back_and_knows_its_device() {
        let mut r = MatMulTuning {
            measured_on: Some("NVIDIA H100 80GB HBM3".into()),
            tables: BTreeMap::new(),
        };
        r.tables.insert(
            "matvec_t1_k896_q4_kx896 16".into(),
            vec![(2, "matvec/4".into()), (16, "tiled/32".into())],
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<MatMulTuning>(&json).unwrap(), r);
        assert!(r.timed_on("NVIDIA H100 80GB HBM3"));
        assert!(!r.timed_on("NVIDIA H200"));
        assert!(!MatMulTuning::default().timed_on(""));
    }

    #[test]
    fn candidates_are_within_a_factor_of_the_step() {
        let all = crate::codegen::matmul::MATMUL_VARIANTS;
        let tokens = |t| -> Vec<String> {
            candidates(&all, t)
                .iter()
                .map(|v| format!("{v:?}"))
                .collect()
        };
        assert_eq!(tokens(2), ["Vector { tokens: 4 }", "Vector { tokens: 8 }"]);
        assert_eq!(
            tokens(16),
            [
                "Vector { tokens: 8 }",
                "Vector { tokens: 16 }",
                "Tiled { tokens: 32 }",
                "Tiled { tokens: 64 }"
            ]
        );
        assert!(!tokens(64).iter().any(|v| v.starts_with("Vector")));
        // The narrow product from 2 tokens up to twice its tile.
        let n16 = MatMulVariant::Narrow { tokens: 16 };
        assert_eq!(candidates(&[n16], 1), []);
        assert_eq!(candidates(&[n16], 2), [n16]);
        assert_eq!(candidates(&[n16], 32), [n16]);
        assert_eq!(candidates(&[n16], 33), []);
    }
}
