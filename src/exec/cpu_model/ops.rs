//! How each IR op runs on the CPU: operands are read from and results
//! written to the arena at the places the memory plan gave them.

use super::{unsupported, CpuModel, Loc};
use crate::exec::cpu::{self, WeightMatrix};
use crate::exec::step::StepInputs;
use crate::exec::ExecError;
use crate::ir::{
    AttentionSpec, DimEnv, Epilogue, MatMulOp, NodeId, Op, Prologue, Role, RopeScaling, RopeSpec,
    RopeStyle,
};

/// Raw views of the arena. The memory plan guarantees that an op's result
/// never overlaps an operand that is live during the op, so handing out one
/// mutable output slice beside shared operand slices is sound as long as
/// the ranges differ, which `debug_assert_disjoint` checks in debug builds.
pub(super) struct ArenaPtr {
    base: *mut f32,
    len: usize,
}

impl ArenaPtr {
    fn span(loc: Loc, rows: usize) -> (usize, usize) {
        let len = if rows == 0 {
            0
        } else {
            (rows - 1) * loc.ld + loc.cols
        };
        (loc.off, len)
    }

    pub(super) fn read(&self, loc: Loc, rows: usize) -> &[f32] {
        let (off, len) = Self::span(loc, rows);
        assert!(off + len <= self.len, "arena read past the end");
        // SAFETY: in bounds (checked); see the type's invariant.
        unsafe { std::slice::from_raw_parts(self.base.add(off), len) }
    }

    #[allow(clippy::mut_from_ref)]
    pub(super) fn write(&self, loc: Loc, rows: usize) -> &mut [f32] {
        let (off, len) = Self::span(loc, rows);
        assert!(off + len <= self.len, "arena write past the end");
        // SAFETY: in bounds (checked); see the type's invariant.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off), len) }
    }

    fn read_i32(&self, loc: Loc, n: usize) -> &[i32] {
        bytemuck::cast_slice(self.read(
            Loc {
                ld: n,
                cols: n,
                ..loc
            },
            1,
        ))
    }
}

impl CpuModel {
    pub(super) fn run_node(
        &mut self,
        id: NodeId,
        env: &DimEnv,
        step: &StepInputs,
    ) -> Result<(), ExecError> {
        let op = self.graph.node(id).op.clone();
        match &op {
            Op::Input(_) | Op::Weight { .. } | Op::KvCache { .. } | Op::Slice { .. } => Ok(()),
            Op::Embed => self.embed(id, env),
            Op::RmsNorm { eps } => self.rms_norm(id, *eps, env),
            Op::MatMul(m) => self.matmul(id, m, env, step),
            Op::Add => self.binary(id, env, |a, b| a + b),
            Op::Mul => self.binary(id, env, |a, b| a * b),
            Op::Silu => self.unary(id, env, cpu_silu),
            Op::Gelu => self.unary(id, env, cpu::gelu_tanh),
            Op::Scale { factor } => {
                let c = *factor;
                self.unary(id, env, move |v| v * c)
            }
            Op::SoftCap { cap } => {
                let c = *cap;
                self.unary(id, env, move |v| cpu::softcap(v, c))
            }
            // cpu::rms_norm normalizes each run of len(Norm) columns: here one head.
            Op::HeadRmsNorm { eps } => self.rms_norm(id, *eps, env),
            Op::Rope(spec) => self.rope_op(id, spec, env, step),
            Op::KvStore { layer } => self.kv_store(id, *layer, env, step),
            Op::Attention(spec) => self.attention(id, spec, env, step),
            Op::GatherRows => self.gather_rows(id, env, step),
            Op::Router { top_k } => self.router(id, *top_k, env),
            Op::Experts(m) => self.experts(id, m, env),
        }
    }

    pub(super) fn arena(&mut self) -> ArenaPtr {
        ArenaPtr {
            base: self.arena.as_mut_ptr(),
            len: self.arena.len(),
        }
    }

    pub(super) fn operand(&self, id: NodeId, role: Role) -> Result<NodeId, ExecError> {
        self.graph
            .operand(id, role)
            .ok_or_else(|| unsupported(&self.graph, id, format!("missing operand {role}")))
    }

    fn weight(&self, id: NodeId) -> Result<WeightMatrix<'_>, ExecError> {
        let w = self
            .weights
            .get(&id)
            .ok_or_else(|| unsupported(&self.graph, id, "expected a weight"))?;
        Ok(w.matrix(&self.file)
            .with_interleaved(self.interleaved.get(&id)))
    }

    pub(super) fn vector(&self, id: NodeId) -> Result<&[f32], ExecError> {
        self.vectors
            .get(&id)
            .map(Vec::as_slice)
            .ok_or_else(|| unsupported(&self.graph, id, "expected a 1-d weight"))
    }

    fn embed(&mut self, id: NodeId, env: &DimEnv) -> Result<(), ExecError> {
        let table = self.operand(id, Role::Table)?;
        let tokens = self.operand(id, Role::Tokens)?;
        let t = env.tokens as usize;
        let (tl, out) = (self.loc(tokens), self.loc(id));
        let a = self.arena();
        let toks = a.read_i32(tl, t);
        let dst = a.write(out, t);
        cpu::embed_rows(&self.weight(table)?, toks, dst)?;
        Ok(())
    }

    fn rms_norm(&mut self, id: NodeId, eps: f32, env: &DimEnv) -> Result<(), ExecError> {
        let x = self.operand(id, Role::X)?;
        let w = self.operand(id, Role::Norm)?;
        let rows = self.rows(id, env);
        let (xl, ol) = (self.loc(x), self.loc(id));
        let a = self.arena();
        let w = self.vector(w)?;
        let (src, dst) = (a.read(xl, rows), a.write(ol, rows));
        for r in 0..rows {
            let xr = &src[r * xl.ld..r * xl.ld + xl.cols];
            cpu::rms_norm(xr, w, eps, &mut dst[r * ol.ld..r * ol.ld + ol.cols]);
        }
        Ok(())
    }

    fn binary(
        &mut self,
        id: NodeId,
        env: &DimEnv,
        f: impl Fn(f32, f32) -> f32,
    ) -> Result<(), ExecError> {
        let (an, bn) = (self.operand(id, Role::A)?, self.operand(id, Role::B)?);
        let rows = self.rows(id, env);
        let ol = self.loc(id);
        let al = self.loc(an);
        let b_is_vector = self.vectors.contains_key(&bn);
        let bl = self.loc(bn);
        let a = self.arena();
        let src_a = a.read(al, rows);
        let dst = a.write(ol, rows);
        for r in 0..rows {
            let b_row: &[f32] = if b_is_vector {
                self.vector(bn)?
            } else {
                &a.read(bl, rows)[r * bl.ld..r * bl.ld + bl.cols]
            };
            let ar = &src_a[r * al.ld..r * al.ld + al.cols];
            for ((o, &x), &y) in dst[r * ol.ld..r * ol.ld + ol.cols]
                .iter_mut()
                .zip(ar)
                .zip(b_row)
            {
                *o = f(x, y);
            }
        }
        Ok(())
    }

    /// `f` applied to every element of `X`.
    fn unary(&mut self, id: NodeId, env: &DimEnv, f: impl Fn(f32) -> f32) -> Result<(), ExecError> {
        let x = self.operand(id, Role::X)?;
        let rows = self.rows(id, env);
        let (xl, ol) = (self.loc(x), self.loc(id));
        let a = self.arena();
        let (src, dst) = (a.read(xl, rows), a.write(ol, rows));
        for r in 0..rows {
            for (o, &v) in dst[r * ol.ld..r * ol.ld + ol.cols]
                .iter_mut()
                .zip(&src[r * xl.ld..r * xl.ld + xl.cols])
            {
                *o = f(v);
            }
        }
        Ok(())
    }

    fn positions<'a>(&self, a: &'a ArenaPtr, id: NodeId, t: usize) -> Result<&'a [i32], ExecError> {
        let p = self.operand(id, Role::Pos)?;
        Ok(a.read_i32(self.loc(p), t))
    }

    fn freqs(&self, id: NodeId) -> Result<Option<&[f32]>, ExecError> {
        match self.graph.operand(id, Role::Freqs) {
            Some(f) => Ok(Some(self.vector(f)?)),
            None => Ok(None),
        }
    }

    fn rope_op(
        &mut self,
        id: NodeId,
        spec: &RopeSpec,
        env: &DimEnv,
        _step: &StepInputs,
    ) -> Result<(), ExecError> {
        let x = self.operand(id, Role::X)?;
        let t = env.tokens as usize;
        let (xl, ol) = (self.loc(x), self.loc(id));
        let a = self.arena();
        let pos = self.positions(&a, id, t)?;
        let (src, dst) = (a.read(xl, t), a.write(ol, t));
        let heads = ol.cols / spec.head_dim as usize;
        let freqs = self.freqs(id)?;
        for r in 0..t {
            let row = &mut dst[r * ol.ld..r * ol.ld + ol.cols];
            row.copy_from_slice(&src[r * xl.ld..r * xl.ld + xl.cols]);
            rope_rows(row, &pos[r..r + 1], spec, heads, freqs)?;
        }
        Ok(())
    }

    fn kv_store(
        &mut self,
        id: NodeId,
        layer: u32,
        env: &DimEnv,
        step: &StepInputs,
    ) -> Result<(), ExecError> {
        let (k, v) = (self.operand(id, Role::K)?, self.operand(id, Role::V)?);
        let t = env.tokens as usize;
        let (kl, vl) = (self.loc(k), self.loc(v));
        let a = self.arena();
        let (ks, vs) = (a.read(kl, t), a.read(vl, t));
        for r in 0..t {
            let (page, slot) = self.page_slot(step, r)?;
            self.kv.write(
                layer as usize,
                &ks[r * kl.ld..r * kl.ld + kl.cols],
                &vs[r * vl.ld..r * vl.ld + vl.cols],
                page,
                slot,
            )?;
        }
        Ok(())
    }

    fn page_slot(&self, step: &StepInputs, r: usize) -> Result<(usize, usize), ExecError> {
        let ps = self.limits.page_size;
        let pos = step.positions[r] as usize;
        let seq = step.seq_ids[r] as usize;
        let entry = step
            .page_table
            .get(seq * step.pages_per_seq + pos / ps)
            .copied()
            .unwrap_or(-1);
        if entry < 0 || entry as usize >= self.limits.n_pages {
            return Err(ExecError::PlanLimit {
                what: "KV page of a token",
                found: entry.max(0) as usize,
                limit: self.limits.n_pages,
            });
        }
        Ok((entry as usize, pos % ps))
    }

    fn attention(
        &mut self,
        id: NodeId,
        spec: &AttentionSpec,
        env: &DimEnv,
        step: &StepInputs,
    ) -> Result<(), ExecError> {
        let q = self.operand(id, Role::Q)?;
        let t = env.tokens as usize;
        let layer = self.graph.node(id).layer.unwrap_or(0) as usize;
        let (ql, ol) = (self.loc(q), self.loc(id));
        let a = self.arena();
        let src = a.read(ql, t);
        // The kernel reads q contiguous; q is usually a strided view of qkv.
        self.gather.clear();
        for r in 0..t {
            self.gather
                .extend_from_slice(&src[r * ql.ld..r * ql.ld + ql.cols]);
        }
        match self.kv.kv_types().k {
            // ggml multiplies an f16 cache with q rounded to f16.
            cpu::KvType::F16 => {
                for v in &mut self.gather {
                    *v = half::f16::from_f32(*v).to_f32();
                }
            }
            // And a bf16 cache with q in bf16 (its dot type).
            cpu::KvType::Bf16 => {
                for v in &mut self.gather {
                    *v = crate::quant::blocks::float::bf16_to_f32(
                        crate::quant::blocks::float::bf16_from_f32(*v),
                    );
                }
            }
            _ => {}
        }
        let dst = a.write(ol, t);
        let shape = cpu::AttentionShape {
            n_heads: spec.n_heads as usize,
            n_kv_heads: spec.n_kv_heads as usize,
            head_dim: spec.head_dim as usize,
            scale: spec.scale,
            sliding_window: spec.window.map(|w| w as usize),
            softcap: spec.softcap,
        };
        let places = cpu::TokenPlaces {
            positions: &step.positions,
            seq_ids: &step.seq_ids,
            page_table: &step.page_table,
            pages_per_seq: step.pages_per_seq,
        };
        cpu::attention_with(
            cpu::SimdPath::detect(),
            &shape,
            &self.gather,
            &self.kv,
            layer,
            &places,
            dst,
        )?;
        Ok(())
    }

    fn gather_rows(
        &mut self,
        id: NodeId,
        env: &DimEnv,
        step: &StepInputs,
    ) -> Result<(), ExecError> {
        let x = self.operand(id, Role::X)?;
        let r = env.rows as usize;
        let (xl, ol) = (self.loc(x), self.loc(id));
        let a = self.arena();
        let src = a.read(xl, env.tokens as usize);
        let dst = a.write(ol, r);
        for (i, &row) in step.output_rows.iter().enumerate() {
            let row = row as usize;
            if row >= env.tokens as usize {
                return Err(ExecError::PlanLimit {
                    what: "output row",
                    found: row,
                    limit: env.tokens as usize,
                });
            }
            dst[i * ol.ld..i * ol.ld + ol.cols]
                .copy_from_slice(&src[row * xl.ld..row * xl.ld + xl.cols]);
        }
        Ok(())
    }

    fn matmul(
        &mut self,
        id: NodeId,
        m: &MatMulOp,
        env: &DimEnv,
        step: &StepInputs,
    ) -> Result<(), ExecError> {
        let x = self.operand(id, Role::X)?;
        let ws = self.graph.operand_list(id, Role::W);
        let rows = self.rows(id, env);
        let (xl, ol) = (self.loc(x), self.loc(id));
        let k = xl.cols;
        let layout = self.plan.scratch_layout(&self.graph, id);
        let a = self.arena();
        let src = a.read(xl, rows);
        // The product's input: contiguous rows, RMS-normalized under a prologue.
        let input: &[f32] = match m.prologue {
            Some(Prologue::RmsNorm { eps }) => {
                let slot = layout.normalized.ok_or_else(|| {
                    unsupported(
                        &self.graph,
                        id,
                        "the plan gives no scratch for the normalized input",
                    )
                })?;
                let dst = a.write(
                    Loc {
                        off: slot.offset as usize / 4,
                        ld: k,
                        cols: k,
                    },
                    rows,
                );
                let w = self.vector(self.operand(id, Role::Norm)?)?;
                for r in 0..rows {
                    cpu::rms_norm(
                        &src[r * xl.ld..r * xl.ld + k],
                        w,
                        eps,
                        &mut dst[r * k..(r + 1) * k],
                    );
                }
                dst
            }
            None if xl.ld == k => src,
            None => {
                self.gather.clear();
                for r in 0..rows {
                    self.gather
                        .extend_from_slice(&src[r * xl.ld..r * xl.ld + k]);
                }
                &self.gather
            }
        };
        let types: Vec<_> = ws.iter().map(|w| self.weights[w].ty).collect();
        self.acts.prepare(input, rows, k, &types)?;
        let total: usize = ws.iter().map(|w| self.weights[w].rows).sum();
        let gate = m.epilogue.iter().find(|e| e.is_gated()).copied();
        // Under SwiGLU/GeGLU the product (twice the output's columns) goes
        // to scratch.
        let prod = match (gate.is_some(), layout.pre_activation) {
            (false, _) => ol,
            (true, Some(slot)) => Loc {
                off: slot.offset as usize / 4,
                ld: total,
                cols: total,
            },
            (true, None) => {
                return Err(unsupported(
                    &self.graph,
                    id,
                    "the plan gives no scratch for the gated activation",
                ))
            }
        };
        let out = a.write(prod, rows);
        let mut col = 0;
        for &w in &ws {
            let wm = self.weight(w)?;
            cpu::matmul(&wm, &self.acts, out, prod.ld, col)?;
            col += wm.rows;
        }
        for e in &m.epilogue {
            self.epilogue(id, e, &ws, out, prod, rows, step)?;
        }
        if let Some(gate) = gate {
            let dst = a.write(ol, rows);
            let glu = if gate == Epilogue::GeGlu {
                cpu::gelu_mul
            } else {
                cpu::silu_mul
            };
            glu(&out[..rows * total], total / 2, &mut dst[..rows * ol.ld]);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn epilogue(
        &mut self,
        id: NodeId,
        e: &Epilogue,
        ws: &[NodeId],
        out: &mut [f32],
        prod: Loc,
        rows: usize,
        step: &StepInputs,
    ) -> Result<(), ExecError> {
        match *e {
            Epilogue::Bias => {
                let biases = self.graph.operand_list(id, Role::Bias);
                let mut col = 0;
                for (i, &w) in ws.iter().enumerate() {
                    let n = self.weights[&w].rows;
                    if let Some(&b) = biases.get(i) {
                        let b = self.vector(b)?;
                        for r in 0..rows {
                            for (o, &bv) in out[r * prod.ld + col..r * prod.ld + col + n]
                                .iter_mut()
                                .zip(b)
                            {
                                *o += bv;
                            }
                        }
                    }
                    col += n;
                }
            }
            Epilogue::Rope {
                spec,
                q_heads,
                k_heads,
            } => {
                let freqs = self.freqs(id)?;
                let hd = spec.head_dim as usize;
                let n = (q_heads + k_heads) as usize * hd;
                for r in 0..rows {
                    let row = &mut out[r * prod.ld..r * prod.ld + n];
                    rope_rows(
                        row,
                        &step.positions[r..r + 1],
                        &spec,
                        (q_heads + k_heads) as usize,
                        freqs,
                    )?;
                }
            }
            Epilogue::KvStore {
                layer,
                k_col,
                v_col,
                kv_dim,
            } => {
                let (kc, vc, d) = (k_col as usize, v_col as usize, kv_dim as usize);
                for r in 0..rows {
                    let (page, slot) = self.page_slot(step, r)?;
                    let row = &out[r * prod.ld..r * prod.ld + prod.cols];
                    self.kv.write(
                        layer as usize,
                        &row[kc..kc + d],
                        &row[vc..vc + d],
                        page,
                        slot,
                    )?;
                }
            }
            Epilogue::SwiGlu | Epilogue::GeGlu => {}
            Epilogue::Residual => {
                let res = self.operand(id, Role::Residual)?;
                let rl = self.loc(res);
                let a = self.arena();
                let src = a.read(rl, rows);
                for r in 0..rows {
                    for (o, &v) in out[r * prod.ld..r * prod.ld + prod.cols]
                        .iter_mut()
                        .zip(&src[r * rl.ld..r * rl.ld + rl.cols])
                    {
                        *o += v;
                    }
                }
            }
        }
        Ok(())
    }
}

fn cpu_silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

/// Applies `spec` to `heads` heads of each row of `x` (contiguous rows).
fn rope_rows(
    x: &mut [f32],
    positions: &[i32],
    spec: &RopeSpec,
    heads: usize,
    freqs: Option<&[f32]>,
) -> Result<(), ExecError> {
    let style = match spec.style {
        RopeStyle::Normal => cpu::RopeStyle::Normal,
        RopeStyle::Neox => cpu::RopeStyle::Neox,
    };
    // LongRoPE's attn_factor (YaRN's own correction is applied by the
    // kernel from its ramp and freq_scale).
    let attn_factor = match spec.scaling {
        RopeScaling::LongRope { attn_factor } => attn_factor,
        _ => 1.0,
    };
    let yarn = spec
        .yarn_corr_dims()
        .map(|corr_dims| cpu::Yarn { corr_dims });
    if spec.n_rot != spec.head_dim {
        return Err(ExecError::Unsupported {
            node: "rope".into(),
            kind: "rope",
            reason: format!(
                "partial rotation ({} of {} dims) is not implemented",
                spec.n_rot, spec.head_dim
            ),
        });
    }
    let params = cpu::RopeParams {
        head_dim: spec.head_dim as usize,
        n_heads: heads,
        base: spec.base,
        style,
        freq_scale: spec.freq_scale(),
        freq_factors: freqs,
        yarn,
        attn_factor,
    };
    cpu::rope_with(&params, x, positions)?;
    Ok(())
}
