//! The CPU backend: replays a compiled graph from one preallocated arena and
//! a paged KV cache. Nothing is allocated per step once the first step of
//! each size has run (scratch vectors only grow).
//!
//! The arena is one `Vec<f32>`; the memory plan gives every value a byte
//! offset in it. Values are f32 or i32 (both 4 bytes), stored row-major with
//! the row stride of their own last dim, except views, which read their
//! base's memory with the base's stride.

use std::collections::HashMap;
use std::sync::Arc;

use super::cpu::{
    ExpertGroups, InterleavedRows, KvCache, KvTypes, QuantizedActs, SimdPath, WeightMatrix,
};
use super::graph_facts::{fixed_cols, unsupported};
use super::session::{StepBackend, StepLimits};
use super::step::StepInputs;
use super::ExecError;
use crate::gguf::GgufFile;
use crate::ir::{Dim, DimEnv, Graph, InputKind, NodeId, Op, Role};
use crate::passes::MemoryPlan;
use crate::quant::GgmlType;

mod moe;
mod ops;

/// Where a value lives in the arena, in 4-byte units.
#[derive(Debug, Clone, Copy)]
struct Loc {
    off: usize,
    /// Row stride.
    ld: usize,
    cols: usize,
}

/// A weight's bytes in the mapped file.
#[derive(Debug, Clone)]
struct WeightRef {
    name: String,
    ty: GgmlType,
    start: usize,
    len: usize,
    rows: usize,
    cols: usize,
}

impl WeightRef {
    /// The weight as the kernels see it, in the file's bytes.
    fn matrix<'f>(&self, file: &'f GgufFile) -> WeightMatrix<'f> {
        WeightMatrix::new(
            self.ty,
            &file.bytes()[self.start..self.start + self.len],
            self.rows,
            self.cols,
        )
    }
}

/// A model compiled for the CPU, ready to run steps.
pub struct CpuModel {
    file: Arc<GgufFile>,
    graph: Graph,
    plan: MemoryPlan,
    schedule: Vec<NodeId>,
    inputs: HashMap<InputKind, NodeId>,
    logits: NodeId,
    weights: HashMap<NodeId, WeightRef>,
    /// Interleaved copies of the products' weights, where the AVX2 kernels
    /// read them (the GGUF bytes stay for the rest).
    interleaved: HashMap<NodeId, InterleavedRows>,
    /// F32 copies of small vectors (norm weights, biases, rope factors).
    vectors: HashMap<NodeId, Vec<f32>>,
    arena: Vec<f32>,
    kv: KvCache,
    acts: QuantizedActs,
    /// Contiguous copy of a strided operand (e.g. q out of the fused qkv).
    gather: Vec<f32>,
    /// The step's rows grouped by expert (experts ops).
    groups: ExpertGroups,
    limits: StepLimits,
    vocab: usize,
}

impl CpuModel {
    /// Prepares `graph` (compiled, with `plan`) to run on the weights of `file`.
    pub fn new(
        file: Arc<GgufFile>,
        graph: Graph,
        plan: MemoryPlan,
        page_size: usize,
    ) -> Result<Self, ExecError> {
        let env = plan.env;
        let schedule = plan.schedule.clone();
        let mut inputs = HashMap::new();
        let mut weights = HashMap::new();
        let mut vectors = HashMap::new();
        let mut kv_shape = None;
        for &id in &schedule {
            let node = graph.node(id);
            match &node.op {
                Op::Input(kind) => {
                    inputs.insert(*kind, id);
                }
                Op::Weight { name } => {
                    let w = resolve_weight(&file, name, &node.ty)?;
                    if node.ty.rank() == 1 {
                        vectors.insert(id, weight_as_f32(&file, &w)?);
                    }
                    weights.insert(id, w);
                }
                Op::KvCache { .. } => kv_shape = Some(node.ty.clone()),
                _ => {}
            }
        }
        let logits = graph
            .output("logits")
            .ok_or_else(|| ExecError::Unsupported {
                node: "logits".into(),
                kind: "graph",
                reason: "the graph has no `logits` output".into(),
            })?;
        let vocab = fixed_cols(&graph, logits)?;
        let (n_layers, kv_cols) = match kv_shape {
            Some(t) => (
                count_layers(&graph),
                t.last().and_then(Dim::fixed).unwrap_or(0) as usize,
            ),
            None => (0, 0),
        };
        let kv_spec = first_attention(&graph);
        let (n_kv_heads, head_dim) = kv_spec
            .map(|a| (a.n_kv_heads as usize, a.head_dim as usize))
            .unwrap_or((1, kv_cols / 2));
        let pages_per_seq = env.pages as usize;
        let n_pages = pages_per_seq * env.seqs as usize;
        let kv = KvCache::new(n_layers, n_kv_heads, head_dim, page_size, n_pages);
        let limits = StepLimits {
            max_tokens: env.tokens as usize,
            max_rows: env.rows as usize,
            max_seqs: env.seqs as usize,
            pages_per_seq,
            n_pages,
            page_size,
        };
        let arena = vec![0f32; (plan.arena_bytes as usize).div_ceil(4)];
        let interleaved = interleaved_copies(&file, &graph, &schedule, &weights);
        Ok(CpuModel {
            file,
            graph,
            plan,
            schedule,
            inputs,
            logits,
            weights,
            interleaved,
            vectors,
            arena,
            kv,
            acts: QuantizedActs::new(),
            gather: Vec::new(),
            groups: ExpertGroups::default(),
            limits,
            vocab,
        })
    }

    /// Stores the KV cache's keys and values as `types` in a pool of
    /// `n_pages` pages (call before the first step: the cache is made anew,
    /// empty, once). Refused where a block type does not divide the heads.
    pub fn with_kv(mut self, types: KvTypes, n_pages: usize) -> Result<Self, ExecError> {
        if types != self.kv.kv_types() || n_pages != self.kv.n_pages() {
            self.kv = self.remade_kv(n_pages, types)?;
            self.limits.n_pages = n_pages;
        }
        Ok(self)
    }

    /// An empty cache of the current one's shape with `n_pages` of `types`.
    fn remade_kv(&self, n_pages: usize, types: KvTypes) -> Result<KvCache, ExecError> {
        let kv = &self.kv;
        Ok(KvCache::with_types(
            kv.n_layers(),
            kv.n_kv_heads(),
            kv.head_dim(),
            kv.page_size(),
            n_pages,
            types,
        )?)
    }

    /// The compiled graph this model runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Bytes of the activation arena.
    pub fn arena_bytes(&self) -> usize {
        self.arena.len() * 4
    }

    fn loc(&self, id: NodeId) -> Loc {
        if let Some((base, col)) = self.plan.view_of(id) {
            let b = self.loc(base);
            let cols = self
                .graph
                .node(id)
                .ty
                .last()
                .and_then(Dim::fixed)
                .unwrap_or(1) as usize;
            return Loc {
                off: b.off + col as usize,
                ld: b.ld,
                cols,
            };
        }
        let off = self.plan.offset_of(id).unwrap_or(0) as usize / 4;
        let cols = self
            .graph
            .node(id)
            .ty
            .last()
            .and_then(Dim::fixed)
            .unwrap_or(1) as usize;
        Loc {
            off,
            ld: cols,
            cols,
        }
    }

    fn rows(&self, id: NodeId, env: &DimEnv) -> usize {
        let ty = &self.graph.node(id).ty;
        match ty.rank() {
            0 => 1,
            1 if ty.shape[0].fixed().is_some() => 1,
            _ => ty.shape[0].eval(env) as usize,
        }
    }

    fn write_inputs(&mut self, step: &StepInputs) {
        let sets: [(InputKind, &[i32]); 5] = [
            (InputKind::Tokens, &step.tokens),
            (InputKind::Positions, &step.positions),
            (InputKind::SeqIds, &step.seq_ids),
            (InputKind::PageTable, &step.page_table),
            (InputKind::OutputRows, &step.output_rows),
        ];
        for (kind, values) in sets {
            if let Some(&id) = self.inputs.get(&kind) {
                let off = self.loc(id).off;
                let dst: &mut [i32] =
                    bytemuck::cast_slice_mut(&mut self.arena[off..off + values.len()]);
                dst.copy_from_slice(values);
            }
        }
    }

    fn check_step(&self, step: &StepInputs) -> Result<DimEnv, ExecError> {
        let l = &self.limits;
        let lim = |what, found, limit| {
            if found > limit {
                Err(ExecError::PlanLimit { what, found, limit })
            } else {
                Ok(())
            }
        };
        lim("tokens in a step", step.n_tokens(), l.max_tokens)?;
        lim("logit rows in a step", step.output_rows.len(), l.max_rows)?;
        lim("sequences in a step", step.n_seqs(), l.max_seqs)?;
        lim("pages per sequence", step.pages_per_seq, l.pages_per_seq)?;
        Ok(DimEnv {
            tokens: step.n_tokens() as u64,
            rows: step.output_rows.len() as u64,
            seqs: step.n_seqs() as u64,
            pages: step.pages_per_seq as u64,
            kv_len: self.plan.env.kv_len,
        })
    }
}

impl StepBackend for CpuModel {
    fn run_step(&mut self, step: &StepInputs) -> Result<&[f32], ExecError> {
        let env = self.check_step(step)?;
        self.write_inputs(step);
        // The whole step runs on one of the pool's workers, not on the
        // caller: every op's parallel part is then split by a worker that
        // the other workers, spinning between ops, steal from at once,
        // instead of each op being injected from outside the pool and the
        // caller sleeping on and woken by a futex (two wake-ups per op,
        // ~200 ops per decoded token).
        rayon::scope(|_| {
            for i in 0..self.schedule.len() {
                let id = self.schedule[i];
                self.run_node(id, &env, step)?;
            }
            Ok::<(), ExecError>(())
        })?;
        let l = self.loc(self.logits);
        let r = step.output_rows.len();
        Ok(&self.arena[l.off..l.off + r * self.vocab])
    }

    fn limits(&self) -> StepLimits {
        self.limits
    }

    fn vocab(&self) -> usize {
        self.vocab
    }
}

fn count_layers(graph: &Graph) -> usize {
    graph
        .node_ids()
        .filter_map(|id| match graph.node(id).op {
            Op::KvCache { layer } => Some(layer as usize + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn first_attention(graph: &Graph) -> Option<crate::ir::AttentionSpec> {
    graph.node_ids().find_map(|id| match graph.node(id).op {
        Op::Attention(a) => Some(a),
        _ => None,
    })
}

/// The interleaved copies of the matrix products' weights, made where
/// this machine runs the AVX2 kernels (they read GGUF order elsewhere).
fn interleaved_copies(
    file: &GgufFile,
    graph: &Graph,
    schedule: &[NodeId],
    weights: &HashMap<NodeId, WeightRef>,
) -> HashMap<NodeId, InterleavedRows> {
    let mut copies = HashMap::new();
    if SimdPath::detect() != SimdPath::Avx2 {
        return copies;
    }
    for &id in schedule {
        if !matches!(graph.node(id).op, Op::MatMul(_)) {
            continue;
        }
        for w in graph.operand_list(id, Role::W) {
            let Some(r) = weights.get(&w) else { continue };
            if copies.contains_key(&w) || !InterleavedRows::supports(r.ty) {
                continue;
            }
            if let Some(c) = InterleavedRows::build(&r.matrix(file)) {
                copies.insert(w, c);
                // The mapped bytes are read again only for rows past the last
                // whole group and by embedding lookups (tied tables): a few
                // rows, paged in again on demand, not the whole matrix twice.
                file.release_range(r.start, r.len);
            }
        }
    }
    tracing::debug!(
        matrices = copies.len(),
        bytes = copies.values().map(InterleavedRows::bytes).sum::<usize>(),
        "interleaved weight copies for the AVX2 kernels"
    );
    copies
}

fn resolve_weight(
    file: &GgufFile,
    name: &str,
    ty: &crate::ir::TensorType,
) -> Result<WeightRef, ExecError> {
    let info = file.tensor_info(name).ok_or_else(|| {
        ExecError::Gguf(crate::gguf::GgufError::MissingTensor { name: name.into() })
    })?;
    let view = file.view(info);
    view.require_supported()?;
    let cols = info.row_len() as usize;
    let rows = info.n_rows() as usize;
    if ty.dtype != info.ty {
        return Err(ExecError::Weight {
            name: name.into(),
            reason: format!("the graph says {} but the file holds {}", ty.dtype, info.ty),
        });
    }
    Ok(WeightRef {
        name: name.into(),
        ty: info.ty,
        start: (file.data_offset() + info.offset) as usize,
        len: info.size as usize,
        rows,
        cols,
    })
}

fn weight_as_f32(file: &GgufFile, w: &WeightRef) -> Result<Vec<f32>, ExecError> {
    let mut out = vec![0f32; w.rows * w.cols];
    crate::quant::dequantize(w.ty, &file.bytes()[w.start..w.start + w.len], &mut out).map_err(
        |e| ExecError::Weight {
            name: w.name.clone(),
            reason: e.to_string(),
        },
    )?;
    Ok(out)
}
