//! From the compiled graph to the launch list: every value's device
//! address (arena offset of the memory plan, view columns, the packed step
//! inputs, weights, the KV cache) and every node's compiled kernel.

use std::sync::Arc;

use super::error::GpuError;
use super::inputs::StepBuffer;
use super::launch::{Launch, RowCount};
use super::weights::DeviceWeights;
use crate::backend::{DevicePtr, Gpu};
use crate::codegen::elementwise::{binary_source, rope_source, RopeArgs, UnaryOp};
use crate::codegen::plan::{
    experts_spec, head_norm, kv_layout, matmul_spec, rope_epilogue, router_spec, unfused_kv_store,
    PlanOptions,
};
use crate::codegen::{
    AttentionArgs, AttentionKernelSpec, ExpertsArgs, ExpertsSpec, KernelCache, KvStoreArgs,
    KvStoreSpec, MatMulArgs, RepackFormat, RouterSpec, RowOp,
};
use crate::exec::cpu::KvTypes;
use crate::ir::{Dim, Epilogue, Graph, InputKind, NodeId, Op, Prologue, Role};
use crate::passes::MemoryPlan;

/// Where a value is: its address, row stride and width (in elements).
#[derive(Debug, Clone, Copy)]
pub struct Loc {
    pub ptr: DevicePtr,
    pub ld: u32,
    pub cols: u32,
}

/// Everything the launches point into.
pub struct Places<'a> {
    pub gpu: &'a Arc<Gpu>,
    pub cache: &'a KernelCache,
    pub opts: PlanOptions,
    pub warp: u32,
    pub graph: &'a Graph,
    pub plan: &'a MemoryPlan,
    pub arena: DevicePtr,
    pub weights: &'a DeviceWeights,
    pub inputs: &'a StepBuffer,
    /// Layer `l`'s cache starts at `kv + l * kv_layer_bytes`.
    pub kv: DevicePtr,
    pub kv_layer_bytes: usize,
    pub pages_per_seq: u32,
    pub attn_scratch: DevicePtr,
    /// The prefill tiles' prepared input rows (`MatMulSpec::xq_bytes`),
    /// shared by every matmul: each reads them right after writing them.
    pub xq_scratch: DevicePtr,
    /// The prefill tiles' repacked weights (`MatMulSpec::wq_bytes`), shared
    /// the same way by the matmuls whose copies are not `resident`.
    pub wq_scratch: DevicePtr,
    pub wq_scratch_bytes: usize,
    pub resident: &'a super::resident::ResidentRepacks,
}

impl Places<'_> {
    fn unsupported(&self, id: NodeId, reason: impl Into<String>) -> GpuError {
        let n = self.graph.node(id);
        GpuError::Unsupported {
            node: n.name.clone(),
            kind: n.op.kind(),
            reason: reason.into(),
        }
    }

    fn operand(&self, id: NodeId, role: Role) -> Result<NodeId, GpuError> {
        self.graph
            .operand(id, role)
            .ok_or_else(|| self.unsupported(id, format!("no {role} operand")))
    }

    fn cols(&self, id: NodeId) -> Result<u32, GpuError> {
        self.graph
            .node(id)
            .ty
            .last()
            .and_then(Dim::fixed)
            .map(|c| c as u32)
            .ok_or_else(|| self.unsupported(id, "the last dim must be fixed"))
    }

    /// Rows of a node in a step: its first dim (one for a vector).
    fn rows(&self, id: NodeId) -> RowCount {
        let ty = &self.graph.node(id).ty;
        match ty.shape.first() {
            _ if ty.rank() < 2 => RowCount::Fixed(1),
            Some(Dim::Tokens) => RowCount::Tokens,
            Some(Dim::Rows) => RowCount::Rows,
            Some(d) => RowCount::Fixed(d.fixed().unwrap_or(1) as u32),
            None => RowCount::Fixed(1),
        }
    }

    /// The address of a value computed or read by a step. A value whose
    /// last dim is symbolic (the i32 inputs) counts as one column: its
    /// consumers take their sizes from the step, not from the row.
    pub fn loc(&self, id: NodeId) -> Result<Loc, GpuError> {
        let cols = self.cols(id).unwrap_or(1);
        if let Some((base, col)) = self.plan.view_of(id) {
            let b = self.loc(base)?;
            return Ok(Loc {
                ptr: b.ptr.offset(col as usize * 4),
                ld: b.ld,
                cols,
            });
        }
        let ptr = match &self.graph.node(id).op {
            Op::Input(kind) => self.inputs.ptr(*kind),
            _ => match self.plan.offset_of(id) {
                Some(off) => self.arena.offset(off as usize),
                None => return Err(self.unsupported(id, "the memory plan gives it no place")),
            },
        };
        Ok(Loc {
            ptr,
            ld: cols,
            cols,
        })
    }

    fn weight(&self, id: NodeId) -> Result<DevicePtr, GpuError> {
        self.weights
            .ptr(id)
            .ok_or_else(|| self.unsupported(id, "expected an uploaded weight"))
    }

    /// The cache of the layer a `kv` operand names.
    fn kv_of(&self, id: NodeId) -> Result<DevicePtr, GpuError> {
        let kv = self.operand(id, Role::Kv)?;
        match self.graph.node(kv).op {
            Op::KvCache { layer } | Op::KvStore { layer } => Ok(self.kv_layer(layer)),
            _ => Err(self.unsupported(id, "the kv operand is not a KV cache")),
        }
    }

    fn kv_layer(&self, layer: u32) -> DevicePtr {
        self.kv.offset(layer as usize * self.kv_layer_bytes)
    }

    fn input(&self, kind: InputKind) -> DevicePtr {
        self.inputs.ptr(kind)
    }

    /// The launches of node `id`: none for nodes that launch nothing, two
    /// for a QKV matmul whose KV store runs after it.
    pub fn launches(&self, id: NodeId) -> Result<Vec<Launch>, GpuError> {
        if matches!(self.graph.node(id).op, Op::MatMul(_)) {
            return self.matmul(id);
        }
        Ok(self.launch(id)?.into_iter().collect())
    }

    /// The launch of a node other than a matmul, or `None` for nodes that
    /// launch nothing.
    fn launch(&self, id: NodeId) -> Result<Option<Launch>, GpuError> {
        let op = self.graph.node(id).op.clone();
        Ok(Some(match op {
            Op::Input(_) | Op::Weight { .. } | Op::KvCache { .. } | Op::Slice { .. } => {
                return Ok(None)
            }
            Op::Embed => self.embed(id)?,
            Op::RmsNorm { eps } => {
                let (x, g) = (
                    self.loc(self.operand(id, Role::X)?)?,
                    self.operand(id, Role::Norm)?,
                );
                let out = self.loc(id)?;
                self.row_op(
                    RowOp::RmsNorm { dim: out.cols, eps },
                    x,
                    self.weight(g)?,
                    out,
                    self.rows(id),
                )?
            }
            Op::GatherRows => {
                let x = self.loc(self.operand(id, Role::X)?)?;
                let out = self.loc(id)?;
                let idx = self.input(InputKind::OutputRows);
                self.row_op(
                    RowOp::GatherRows { dim: out.cols },
                    x,
                    idx,
                    out,
                    RowCount::Rows,
                )?
            }
            Op::HeadRmsNorm { eps } => {
                let op = head_norm(self.graph, id, eps)?;
                let x = self.loc(self.operand(id, Role::X)?)?;
                let g = self.weight(self.operand(id, Role::Norm)?)?;
                self.row_op(op, x, g, self.loc(id)?, self.rows(id))?
            }
            Op::MatMul(_) => unreachable!("`launches` builds matmuls"),
            Op::Attention(a) => self.attention(id, a)?,
            Op::Add | Op::Mul => self.binary(id)?,
            Op::Silu => self.unary(id, UnaryOp::Silu)?,
            Op::Gelu => self.unary(id, UnaryOp::Gelu)?,
            Op::Scale { factor } => self.unary(id, UnaryOp::Scale(factor))?,
            Op::SoftCap { cap } => self.unary(id, UnaryOp::SoftCap(cap))?,
            Op::KvStore { layer } => self.kv_store(id, layer)?,
            Op::Rope(spec) => self.rope(id, &spec)?,
            Op::Router { .. } => self.router(id)?,
            Op::Experts(m) => self.experts(id, &m)?,
        }))
    }

    fn router(&self, id: NodeId) -> Result<Launch, GpuError> {
        let spec = router_spec(self.graph, id)?;
        let kernel = self
            .cache
            .kernel(self.gpu, &spec.source()?, RouterSpec::ENTRY)?;
        let (x, out) = (self.loc(self.operand(id, Role::X)?)?, self.loc(id)?);
        Ok(Launch::Router {
            spec,
            kernel,
            logits: x.ptr,
            ld: x.ld,
            out: out.ptr,
            ldo: out.ld,
            rows: self.rows(id),
        })
    }

    /// The experts op: its rows (normalized into the plan's scratch under
    /// the RMSNorm prologue) through each token's slots, into the output
    /// (from the residual under that epilogue).
    fn experts(&self, id: NodeId, m: &crate::ir::MatMulOp) -> Result<Launch, GpuError> {
        let spec = experts_spec(self.graph, id)?;
        let src = spec.source()?;
        let layout = self.plan.scratch_layout(self.graph, id);
        let scratch = |s: Option<crate::passes::Slot>, what: &str| {
            s.map(|s| self.arena.offset(s.offset as usize))
                .ok_or_else(|| {
                    self.unsupported(id, format!("the plan gives no scratch for {what}"))
                })
        };
        let x = self.loc(self.operand(id, Role::X)?)?;
        let (input, norm) = match m.prologue {
            Some(Prologue::RmsNorm { eps }) => {
                let normed = Loc {
                    ptr: scratch(layout.normalized, "the normalized input")?,
                    ld: spec.d,
                    cols: spec.d,
                };
                let g = self.weight(self.operand(id, Role::Norm)?)?;
                let op = RowOp::RmsNorm { dim: spec.d, eps };
                let launch = self.row_op(op, x, g, normed, self.rows(id))?;
                (normed, Some(Box::new(launch)))
            }
            None => (x, None),
        };
        let act = scratch(layout.activated, "the activation")?;
        let route = self.loc(self.operand(id, Role::Route)?)?;
        let ws = self.graph.operand_list(id, Role::W);
        let out = self.loc(id)?;
        let mut args = ExpertsArgs {
            x: input.ptr,
            ldx: input.ld,
            route: route.ptr,
            ldr: route.ld,
            gate: self.weight(ws[0])?,
            up: self.weight(ws[1])?,
            down: self.weight(ws[2])?,
            act,
            out: out.ptr,
            ldo: out.ld,
            ..Default::default()
        };
        if m.epilogue.contains(&Epilogue::Residual) {
            let r = self.loc(self.operand(id, Role::Residual)?)?;
            (args.residual, args.ldres) = (r.ptr, r.ld);
        }
        Ok(Launch::Experts {
            spec,
            norm,
            up: self.cache.kernel(self.gpu, &src, ExpertsSpec::UP)?,
            down: self.cache.kernel(self.gpu, &src, ExpertsSpec::DOWN)?,
            args,
            warp: self.warp,
            rows: self.rows(id),
        })
    }

    fn row_op(
        &self,
        op: RowOp,
        x: Loc,
        aux: DevicePtr,
        out: Loc,
        rows: RowCount,
    ) -> Result<Launch, GpuError> {
        let kernel = self.cache.kernel(self.gpu, &op.source()?, op.entry())?;
        Ok(Launch::Row {
            op,
            kernel,
            input: x.ptr,
            ld_in: x.ld,
            aux,
            out: out.ptr,
            ld_out: out.ld,
            rows,
        })
    }

    fn embed(&self, id: NodeId) -> Result<Launch, GpuError> {
        let table = self.operand(id, Role::Table)?;
        let tokens = self.loc(self.operand(id, Role::Tokens)?)?;
        let tt = &self.graph.node(table).ty;
        let vocab = tt.shape.first().and_then(|d| d.fixed()).unwrap_or(0) as u32;
        let out = self.loc(id)?;
        let op = RowOp::Embed {
            ty: tt.dtype,
            dim: out.cols,
            vocab,
        };
        let table = Loc {
            ptr: self.weight(table)?,
            ld: 0,
            cols: out.cols,
        };
        self.row_op(op, table, tokens.ptr, out, RowCount::Tokens)
    }

    /// A matmul's launch, and the KV store after it where its epilogue
    /// leaves the cache to one.
    fn matmul(&self, id: NodeId) -> Result<Vec<Launch>, GpuError> {
        let spec = matmul_spec(self.graph, id, &self.opts)?;
        let x = self.loc(self.operand(id, Role::X)?)?;
        let out = self.loc(id)?;
        let out_loc = out;
        if x.ld % 4 != 0 || x.ptr.0 % 16 != 0 {
            return Err(self.unsupported(id, "the input rows are not 16-byte aligned"));
        }
        let mut args = MatMulArgs {
            x: x.ptr,
            ldx: x.ld,
            out: out.ptr,
            ldo: out.ld,
            pos: self.input(InputKind::Positions),
            seq: self.input(InputKind::SeqIds),
            pages: self.input(InputKind::PageTable),
            pages_per_seq: self.pages_per_seq,
            xq: self.xq_scratch,
            wq: self.wq_scratch,
            kept_f16: self.resident.get(id, RepackFormat::F16),
            kept_i8: self.resident.get(id, RepackFormat::Int8),
            kept_frag: self.resident.get(id, RepackFormat::Fragment),
            ..Default::default()
        };
        for (i, w) in self.graph.operand_list(id, Role::W).into_iter().enumerate() {
            args.w[i] = self.weight(w)?;
        }
        for (o, b) in self.graph.operands(id) {
            if o.role == Role::Bias {
                args.bias[o.index as usize] = self.weight(b)?;
            }
        }
        if let Some(n) = self.graph.operand(id, Role::Norm) {
            args.norm = self.weight(n)?;
        }
        if let Some(f) = self.graph.operand(id, Role::Freqs) {
            args.freqs = self.weight(f)?;
        }
        if let Some(r) = self.graph.operand(id, Role::Residual) {
            let r = self.loc(r)?;
            (args.residual, args.ldr) = (r.ptr, r.ld);
        }
        let Op::MatMul(m) = &self.graph.node(id).op else {
            unreachable!("matmul_spec accepted it")
        };
        for e in &m.epilogue {
            if let Epilogue::KvStore { layer, .. } = e {
                args.kv = self.kv_layer(*layer);
            }
        }
        let mut kernels = Vec::new();
        for v in spec.variants(self.opts.vendor) {
            // A copy too large to repack per step runs only where it is
            // resident (int8_scratch_bytes left it out of the scratch).
            let copy = spec.repack_format(v);
            if spec.repacks_weights(v)
                && self.resident.get(id, copy) == DevicePtr::NULL
                && spec.wq_bytes(v) as usize > self.wq_scratch_bytes
            {
                tracing::info!(
                    node = %self.graph.node(id).name,
                    variant = %v,
                    "left out: its weight copy is not resident and exceeds the per-step scratch"
                );
                continue;
            }
            let k = spec.kernels(v, |src, entry| -> Result<_, GpuError> {
                Ok(self.cache.kernel(self.gpu, src, entry)?)
            })?;
            kernels.push((v, k));
        }
        let mut out = vec![Launch::MatMul {
            spec,
            kernels,
            args,
            rows: self.rows(id),
            warp: self.warp,
            tuned: Vec::new(),
        }];
        if let Some(store) = unfused_kv_store(self.graph, id, &self.opts)? {
            for e in &m.epilogue {
                if let Epilogue::KvStore {
                    layer,
                    k_col,
                    v_col,
                    ..
                } = *e
                {
                    let col = |c: u64| out_loc.ptr.offset(c as usize * 4);
                    let (k, v) = (col(k_col), col(v_col));
                    out.push(self.store_launch(
                        store,
                        (k, out_loc.ld),
                        (v, out_loc.ld),
                        self.kv_layer(layer),
                    )?);
                }
            }
        }
        Ok(out)
    }

    /// The kernel spec of an attention node (shared with the scratch sizing).
    pub fn attention_spec(
        a: &crate::ir::AttentionSpec,
        page_size: u32,
        kv: KvTypes,
    ) -> AttentionKernelSpec {
        AttentionKernelSpec::of(a, page_size, kv)
    }

    fn attention(&self, id: NodeId, a: crate::ir::AttentionSpec) -> Result<Launch, GpuError> {
        let spec = Self::attention_spec(&a, self.opts.page_size, self.opts.kv);
        let src = spec.source()?;
        let k = |entry| self.cache.kernel(self.gpu, &src, entry);
        let (q, out) = (self.loc(self.operand(id, Role::Q)?)?, self.loc(id)?);
        let args = AttentionArgs {
            q: q.ptr,
            ldq: q.ld,
            kv: self.kv_of(id)?,
            pos: self.input(InputKind::Positions),
            seq: self.input(InputKind::SeqIds),
            pages: self.input(InputKind::PageTable),
            pages_per_seq: self.pages_per_seq,
            out: out.ptr,
            ldo: out.ld,
            tokens: 0,
            scratch: self.attn_scratch,
            // Per step, from its decode tokens (launch.rs).
            max_chunks: 0,
        };
        Ok(Launch::Attention {
            spec,
            decode: k("attn_decode")?,
            combine: k("attn_combine")?,
            prefill: k("attn_prefill")?,
            args,
        })
    }

    /// A value that element-wise kernels can treat as one flat array.
    fn flat(&self, id: NodeId) -> Result<Loc, GpuError> {
        let l = self.loc(id)?;
        if l.ld != l.cols {
            return Err(self.unsupported(id, "an element-wise operand must be contiguous"));
        }
        Ok(l)
    }

    fn binary(&self, id: NodeId) -> Result<Launch, GpuError> {
        let (a, b) = (self.operand(id, Role::A)?, self.operand(id, Role::B)?);
        let entry = if matches!(self.graph.node(id).op, Op::Add) {
            "add"
        } else {
            "mul"
        };
        let kernel = self.cache.kernel(self.gpu, &binary_source(), entry)?;
        let out = self.flat(id)?;
        let b_row = self.graph.node(b).ty.rank() == 1;
        let b_ptr = if matches!(self.graph.node(b).op, Op::Weight { .. }) {
            self.weight(b)?
        } else {
            self.flat(b)?.ptr
        };
        Ok(Launch::Binary {
            kernel,
            a: self.flat(a)?.ptr,
            b: b_ptr,
            out: out.ptr,
            cols: out.cols as u64,
            b_row,
            rows: self.rows(id),
        })
    }

    fn unary(&self, id: NodeId, op: UnaryOp) -> Result<Launch, GpuError> {
        let kernel = self.cache.kernel(self.gpu, &binary_source(), op.entry())?;
        let out = self.flat(id)?;
        Ok(Launch::Unary {
            op,
            kernel,
            x: self.flat(self.operand(id, Role::X)?)?.ptr,
            out: out.ptr,
            cols: out.cols as u64,
            rows: self.rows(id),
        })
    }

    fn rope(&self, id: NodeId, spec: &crate::ir::RopeSpec) -> Result<Launch, GpuError> {
        let (x, out) = (self.loc(self.operand(id, Role::X)?)?, self.loc(id)?);
        let heads = out.cols / spec.head_dim.max(1);
        let r = rope_epilogue(self.graph, id, spec, heads)?;
        let kernel = self.cache.kernel(self.gpu, &rope_source(&r), "rope")?;
        let freqs = match self.graph.operand(id, Role::Freqs) {
            Some(f) => self.weight(f)?,
            None => DevicePtr::default(),
        };
        Ok(Launch::Rope {
            kernel,
            args: RopeArgs {
                x: x.ptr,
                ldx: x.ld,
                out: out.ptr,
                ldo: out.ld,
                pos: self.input(InputKind::Positions),
                freqs,
                tokens: 0,
            },
        })
    }

    fn kv_store(&self, id: NodeId, layer: u32) -> Result<Launch, GpuError> {
        let (k, v) = (
            self.loc(self.operand(id, Role::K)?)?,
            self.loc(self.operand(id, Role::V)?)?,
        );
        let spec = KvStoreSpec {
            layout: kv_layout(self.graph, id, layer, &self.opts)?,
        };
        self.store_launch(spec, (k.ptr, k.ld), (v.ptr, v.ld), self.kv_of(id)?)
    }

    /// The store of keys and values (rows `ld` floats apart) into the
    /// cache at `kv`.
    fn store_launch(
        &self,
        spec: KvStoreSpec,
        (k, ldk): (DevicePtr, u32),
        (v, ldv): (DevicePtr, u32),
        kv: DevicePtr,
    ) -> Result<Launch, GpuError> {
        let kernel = self.cache.kernel(self.gpu, &spec.source()?, "kv_store")?;
        Ok(Launch::KvStore {
            spec,
            kernel,
            args: KvStoreArgs {
                k,
                ldk,
                v,
                ldv,
                pos: self.input(InputKind::Positions),
                seq: self.input(InputKind::SeqIds),
                pages: self.input(InputKind::PageTable),
                pages_per_seq: self.pages_per_seq,
                kv,
                tokens: 0,
            },
        })
    }
}
