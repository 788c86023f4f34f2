//! The mixture-of-experts ops on the CPU: the router, and the experts op,
//! which groups the step's rows by expert and runs each chosen expert's
//! matrices once over just its rows (the same quantized dot products as
//! every matmul), then adds the weighted results into each row.

use super::ops::ArenaPtr;
use super::{unsupported, CpuModel, Loc, WeightRef};
use crate::exec::cpu::{self, WeightMatrix};
use crate::exec::ExecError;
use crate::gguf::GgufFile;
use crate::ir::{DimEnv, Epilogue, MatMulOp, NodeId, Prologue, Role};
use crate::passes::Slot;

impl CpuModel {
    pub(super) fn router(&mut self, id: NodeId, top_k: u32, env: &DimEnv) -> Result<(), ExecError> {
        let x = self.operand(id, Role::X)?;
        let rows = self.rows(id, env);
        let (xl, ol) = (self.loc(x), self.loc(id));
        let k = top_k as usize;
        let a = self.arena();
        let (src, dst) = (a.read(xl, rows), a.write(ol, rows));
        let mut ids = vec![0u32; k];
        for r in 0..rows {
            let out = &mut dst[r * ol.ld..r * ol.ld + 2 * k];
            let (id_cols, weights) = out.split_at_mut(k);
            cpu::route_top_k(&src[r * xl.ld..r * xl.ld + xl.cols], &mut ids, weights);
            for (c, &e) in id_cols.iter_mut().zip(&ids) {
                *c = e as f32;
            }
        }
        Ok(())
    }

    pub(super) fn experts(
        &mut self,
        id: NodeId,
        m: &MatMulOp,
        env: &DimEnv,
    ) -> Result<(), ExecError> {
        let (x, route) = (self.operand(id, Role::X)?, self.operand(id, Role::Route)?);
        let ws = self.graph.operand_list(id, Role::W);
        let [gate, up, down] = ws[..] else {
            return Err(unsupported(&self.graph, id, "expected w=[gate, up, down]"));
        };
        let rows = self.rows(id, env);
        let (xl, rl, ol) = (self.loc(x), self.loc(route), self.loc(id));
        let d = xl.cols;
        let n_expert = self.expert_count(gate);
        if n_expert == 0 {
            return Err(unsupported(&self.graph, id, "an experts op of no experts"));
        }
        let ff = self.weights[&gate].rows / n_expert;
        let layout = self.plan.scratch_layout(&self.graph, id);
        let a = self.arena();
        let need = |s: Option<Slot>, what: &str| {
            s.map(|s| s.offset as usize / 4).ok_or_else(|| {
                unsupported(
                    &self.graph,
                    id,
                    format!("the plan gives no scratch for {what}"),
                )
            })
        };
        let pre = need(layout.pre_activation, "the gate/up product")?;
        let gathered = need(layout.gathered, "the gathered rows")?;
        let activated = need(layout.activated, "the activation")?;
        let expert_out = need(layout.expert_out, "the expert output")?;
        // The rows the experts read: RMS-normalized under a prologue.
        let input = match m.prologue {
            Some(Prologue::RmsNorm { eps }) => {
                let off = need(layout.normalized, "the normalized input")?;
                let normed = Loc {
                    off,
                    ld: d,
                    cols: d,
                };
                let (src, dst) = (a.read(xl, rows), a.write(normed, rows));
                let w = self.vector(self.operand(id, Role::Norm)?)?;
                for r in 0..rows {
                    let out = &mut dst[r * d..(r + 1) * d];
                    cpu::rms_norm(&src[r * xl.ld..r * xl.ld + d], w, eps, out);
                }
                normed
            }
            None => xl,
        };
        let k2 = rl.cols;
        let routes = a.read(rl, rows);
        let row_route = |r: usize| {
            let row = &routes[r * rl.ld..r * rl.ld + k2];
            row.split_at(k2 / 2)
        };
        self.groups
            .group(n_expert, rows, row_route)
            .map_err(|e| unsupported(&self.graph, id, format!("a route names expert {e}")))?;
        self.start_output(id, m, &a, ol, rows)?;
        let out = a.write(ol, rows);
        let src = a.read(input, rows);
        for e in 0..n_expert {
            let n = self.groups.of(e).0.len();
            if n == 0 {
                continue;
            }
            let g_rows = a.write(
                Loc {
                    off: gathered,
                    ld: d,
                    cols: d,
                },
                n,
            );
            for (i, &r) in self.groups.of(e).0.iter().enumerate() {
                g_rows[i * d..(i + 1) * d].copy_from_slice(&src[r * input.ld..r * input.ld + d]);
            }
            let file = &self.file;
            let matrix = |w: NodeId| match self.weights.get(&w) {
                Some(r) => Ok(expert_matrix(file, r, e, n_expert)),
                None => Err(unsupported(&self.graph, w, "expected a weight")),
            };
            let (wg, wu, wd) = (matrix(gate)?, matrix(up)?, matrix(down)?);
            self.acts.prepare(g_rows, n, d, &[wg.ty, wu.ty])?;
            let gu = a.write(
                Loc {
                    off: pre,
                    ld: 2 * ff,
                    cols: 2 * ff,
                },
                n,
            );
            cpu::matmul(&wg, &self.acts, gu, 2 * ff, 0)?;
            cpu::matmul(&wu, &self.acts, gu, 2 * ff, ff)?;
            let act = a.write(
                Loc {
                    off: activated,
                    ld: ff,
                    cols: ff,
                },
                n,
            );
            cpu::silu_mul(gu, ff, act);
            self.acts.prepare(act, n, ff, &[wd.ty])?;
            let y = a.write(
                Loc {
                    off: expert_out,
                    ld: d,
                    cols: d,
                },
                n,
            );
            cpu::matmul(&wd, &self.acts, y, d, 0)?;
            let (grows, gweights) = self.groups.of(e);
            for (i, (&r, &w)) in grows.iter().zip(gweights).enumerate() {
                let o = &mut out[r * ol.ld..r * ol.ld + d];
                for (o, &v) in o.iter_mut().zip(&y[i * d..(i + 1) * d]) {
                    *o += w * v;
                }
            }
        }
        Ok(())
    }

    /// The experts op's output before the experts add into it: the
    /// residual under that epilogue, else zeros.
    fn start_output(
        &self,
        id: NodeId,
        m: &MatMulOp,
        a: &ArenaPtr,
        ol: Loc,
        rows: usize,
    ) -> Result<(), ExecError> {
        let out = a.write(ol, rows);
        if m.epilogue.contains(&Epilogue::Residual) {
            let rl = self.loc(self.operand(id, Role::Residual)?);
            let src = a.read(rl, rows);
            for r in 0..rows {
                out[r * ol.ld..r * ol.ld + ol.cols]
                    .copy_from_slice(&src[r * rl.ld..r * rl.ld + ol.cols]);
            }
        } else {
            for r in 0..rows {
                out[r * ol.ld..r * ol.ld + ol.cols].fill(0.0);
            }
        }
        Ok(())
    }

    /// The number of experts of a 3-D expert weight (its first dim).
    fn expert_count(&self, w: NodeId) -> usize {
        let ty = &self.graph.node(w).ty;
        ty.shape.first().and_then(|d| d.fixed()).unwrap_or(1) as usize
    }
}

/// Expert `e`'s matrix of the 3-D weight `r`: its rows are a contiguous
/// run of the tensor's (GGUF's third dim is the outermost).
fn expert_matrix<'f>(
    file: &'f GgufFile,
    r: &WeightRef,
    e: usize,
    n_expert: usize,
) -> WeightMatrix<'f> {
    let bytes = r.len / n_expert;
    let start = r.start + e * bytes;
    WeightMatrix::new(
        r.ty,
        &file.bytes()[start..start + bytes],
        r.rows / n_expert,
        r.cols,
    )
}
