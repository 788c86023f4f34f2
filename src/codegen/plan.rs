//! The kernels a compiled graph needs: one or more specialized sources per
//! launch node (both matmul variants, decode and prefill attention), plus
//! the device argmax over the logits. Identical specializations (the same
//! shapes in every layer) are listed once.

use std::collections::BTreeMap;

use super::attention::AttentionKernelSpec;
use super::elementwise::{binary_source, kv_store_source, rope_source};
use super::error::CodegenError;
use super::experts::{ExpertsSpec, RouterSpec};
use super::matmul::{KvEpilogue, MatMulSpec, RopeEpilogue, Segment};
use super::rows::RowOp;
use super::source::KernelSource;
use super::target::Target;
use crate::backend::Vendor;
use crate::ir::{Dim, Epilogue, Graph, NodeId, Op, Prologue, Role, RopeSpec};

/// Settings of the plan that are not in the graph.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Tokens per KV-cache page.
    pub page_size: u32,
    /// Whose GPU runs the kernels: a variant that vendor never launches
    /// (the tall int8 tile on AMD, `MatMulSpec::variants`) is not compiled.
    pub vendor: Vendor,
}

impl PlanOptions {
    /// The options of kernels compiled for `target`.
    pub fn for_target(page_size: u32, target: &Target) -> PlanOptions {
        PlanOptions {
            page_size,
            vendor: target.vendor(),
        }
    }
}

impl Default for PlanOptions {
    /// 16-token pages, NVIDIA kernels (every variant).
    fn default() -> Self {
        PlanOptions {
            page_size: 16,
            vendor: Vendor::Cuda,
        }
    }
}

/// Every distinct specialized source `g` needs, by label.
pub fn kernel_sources(
    g: &Graph,
    opts: &PlanOptions,
) -> Result<BTreeMap<String, KernelSource>, CodegenError> {
    let mut out = BTreeMap::new();
    let order = g
        .topo_order()
        .map_err(|n| bad(g, n, "the graph has a cycle"))?;
    for id in order {
        for src in node_sources(g, id, opts)? {
            match out.get(&src.label) {
                // A label names one specialization: the artifact and the
                // executor find kernels by it.
                Some(known) if *known != src => {
                    return Err(bad(
                        g,
                        id,
                        &format!("two kernels are both labelled {}", src.label),
                    ))
                }
                Some(_) => {}
                None => {
                    out.insert(src.label.clone(), src);
                }
            }
        }
    }
    if let Some(logits) = g.output("logits") {
        let n = fixed(g, logits, g.node(logits).ty.shape.len().saturating_sub(1))?;
        for op in [
            RowOp::Argmax { n },
            RowOp::TopK {
                n,
                k: super::rows::TOP_CANDIDATES,
            },
        ] {
            let src = op.source()?;
            out.entry(src.label.clone()).or_insert(src);
        }
    }
    Ok(out)
}

/// The sources of one node (none for inputs, weights, caches and views).
pub fn node_sources(
    g: &Graph,
    id: NodeId,
    opts: &PlanOptions,
) -> Result<Vec<KernelSource>, CodegenError> {
    let node = g.node(id);
    let last = node.ty.shape.len().saturating_sub(1);
    Ok(match &node.op {
        Op::Embed => {
            let table = operand(g, id, Role::Table)?;
            let tt = &g.node(table).ty;
            vec![RowOp::Embed {
                ty: tt.dtype,
                dim: fixed(g, table, 1)?,
                vocab: fixed(g, table, 0)?,
            }
            .source()?]
        }
        Op::RmsNorm { eps } => vec![RowOp::RmsNorm {
            dim: fixed(g, id, last)?,
            eps: *eps,
        }
        .source()?],
        Op::GatherRows => vec![RowOp::GatherRows {
            dim: fixed(g, id, last)?,
        }
        .source()?],
        Op::MatMul(_) => {
            let spec = matmul_spec(g, id, opts)?;
            spec.variants(opts.vendor)
                .into_iter()
                .map(|v| spec.source(v))
                .collect::<Result<_, _>>()?
        }
        Op::Attention(a) => vec![AttentionKernelSpec::of(a, opts.page_size).source()?],
        Op::Add | Op::Mul | Op::Silu | Op::Gelu | Op::Scale { .. } | Op::SoftCap { .. } => {
            vec![binary_source()]
        }
        Op::HeadRmsNorm { eps } => vec![head_norm(g, id, *eps)?.source()?],
        Op::Rope(spec) => {
            let heads = fixed(g, id, last)? / spec.head_dim.max(1);
            vec![rope_source(&rope_epilogue(g, id, spec, heads)?)]
        }
        Op::KvStore { .. } => {
            let k = operand(g, id, Role::K)?;
            vec![kv_store_source(fixed(g, k, 1)?, opts.page_size)]
        }
        Op::Input(_) | Op::Weight { .. } | Op::KvCache { .. } | Op::Slice { .. } => vec![],
        Op::Router { .. } => vec![router_spec(g, id)?.source()?],
        Op::Experts(m) => {
            let mut v = vec![experts_spec(g, id)?.source()?];
            // The RMSNorm prologue runs as its own row kernel first.
            if let Some(Prologue::RmsNorm { eps }) = m.prologue {
                let x = operand(g, id, Role::X)?;
                let dim = fixed(g, x, g.node(x).ty.shape.len().saturating_sub(1))?;
                v.push(RowOp::RmsNorm { dim, eps }.source()?);
            }
            v
        }
    })
}

/// The [`RouterSpec`] of a router node: its logits' width and top-k.
pub fn router_spec(g: &Graph, id: NodeId) -> Result<RouterSpec, CodegenError> {
    let Op::Router { top_k } = g.node(id).op else {
        return Err(bad(g, id, "not a router"));
    };
    let x = operand(g, id, Role::X)?;
    let n_expert = fixed(g, x, g.node(x).ty.shape.len().saturating_sub(1))?;
    Ok(RouterSpec { n_expert, top_k })
}

/// The [`ExpertsSpec`] of an experts node: widths and types from its
/// 3-D weights, k from its route.
pub fn experts_spec(g: &Graph, id: NodeId) -> Result<ExpertsSpec, CodegenError> {
    let ws = g.operand_list(id, Role::W);
    let [gate, up, down] = ws[..] else {
        return Err(bad(g, id, "expected w=[gate_exps, up_exps, down_exps]"));
    };
    let route = operand(g, id, Role::Route)?;
    let spec = ExpertsSpec {
        d: fixed(g, gate, 2)?,
        ff: fixed(g, gate, 1)?,
        n_expert: fixed(g, gate, 0)?,
        top_k: fixed(g, route, 1)? / 2,
        gate: g.node(gate).ty.dtype,
        up: g.node(up).ty.dtype,
        down: g.node(down).ty.dtype,
    };
    spec.validate().map_err(|e| bad(g, id, &e.to_string()))?;
    Ok(spec)
}

/// The row op of a per-head RMSNorm node: heads as wide as its `Norm`.
pub fn head_norm(g: &Graph, id: NodeId, eps: f32) -> Result<RowOp, CodegenError> {
    let norm = operand(g, id, Role::Norm)?;
    let head_dim = fixed(g, norm, 0)?;
    let cols = fixed(g, id, g.node(id).ty.shape.len().saturating_sub(1))?;
    if head_dim == 0 || !cols.is_multiple_of(head_dim) {
        return Err(bad(
            g,
            id,
            &format!("{cols} columns in heads of {head_dim}"),
        ));
    }
    Ok(RowOp::HeadRmsNorm {
        head_dim,
        heads: cols / head_dim,
        eps,
    })
}

/// The [`MatMulSpec`] of a (possibly fused) matmul node.
pub fn matmul_spec(g: &Graph, id: NodeId, opts: &PlanOptions) -> Result<MatMulSpec, CodegenError> {
    let Op::MatMul(m) = &g.node(id).op else {
        return Err(bad(g, id, "not a matmul"));
    };
    let x = operand(g, id, Role::X)?;
    let k = fixed(g, x, g.node(x).ty.shape.len().saturating_sub(1))?;
    let biased: Vec<u8> = g
        .operands(id)
        .iter()
        .filter(|(o, _)| o.role == Role::Bias)
        .map(|(o, _)| o.index)
        .collect();
    let segments = g
        .operand_list(id, Role::W)
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            Ok(Segment {
                ty: g.node(w).ty.dtype,
                rows: fixed(g, w, 0)?,
                bias: biased.contains(&(i as u8)),
            })
        })
        .collect::<Result<Vec<_>, CodegenError>>()?;
    let mut spec = MatMulSpec {
        k,
        segments,
        rms_eps: m.prologue.map(|Prologue::RmsNorm { eps }| eps),
        rope: None,
        kv: None,
        swiglu: false,
        gelu: false,
        residual: false,
        f16_tiles: false,
    };
    for e in &m.epilogue {
        match e {
            Epilogue::Bias => {}
            Epilogue::Rope {
                spec: r,
                q_heads,
                k_heads,
            } => spec.rope = Some(rope_epilogue(g, id, r, q_heads + k_heads)?),
            Epilogue::KvStore {
                k_col,
                v_col,
                kv_dim,
                ..
            } => {
                spec.kv = Some(KvEpilogue {
                    k_col: *k_col as u32,
                    v_col: *v_col as u32,
                    kv_dim: *kv_dim as u32,
                    page_size: opts.page_size,
                })
            }
            Epilogue::SwiGlu => spec.swiglu = true,
            Epilogue::GeGlu => (spec.swiglu, spec.gelu) = (true, true),
            Epilogue::Residual => spec.residual = true,
        }
    }
    spec.validate()?;
    Ok(spec.with_f16_tiles(opts.vendor))
}

/// The kernels' RoPE of `heads` heads by node `id`'s `r` (the fused
/// epilogue's and the standalone kernel's), refusing what they lack.
pub fn rope_epilogue(
    g: &Graph,
    id: NodeId,
    r: &RopeSpec,
    heads: u32,
) -> Result<RopeEpilogue, CodegenError> {
    if r.n_rot != r.head_dim {
        return Err(bad(
            g,
            id,
            &format!("partial RoPE (n_rot {} of {})", r.n_rot, r.head_dim),
        ));
    }
    Ok(RopeEpilogue::of(
        r,
        heads,
        g.operand(id, Role::Freqs).is_some(),
    ))
}

fn operand(g: &Graph, id: NodeId, role: Role) -> Result<NodeId, CodegenError> {
    g.operand(id, role)
        .ok_or_else(|| bad(g, id, &format!("no {role} operand")))
}

/// Dim `i` of `id`'s shape, which must be fixed.
fn fixed(g: &Graph, id: NodeId, i: usize) -> Result<u32, CodegenError> {
    match g.node(id).ty.shape.get(i) {
        Some(Dim::Fixed(n)) => {
            u32::try_from(*n).map_err(|_| bad(g, id, &format!("dim {i} = {n} is too large")))
        }
        Some(d) => Err(bad(
            g,
            id,
            &format!("dim {i} is symbolic ({d}) where a size is needed"),
        )),
        None => Err(bad(g, id, &format!("has no dim {i}"))),
    }
}

fn bad(g: &Graph, id: NodeId, reason: &str) -> CodegenError {
    CodegenError::BadNode {
        node: format!("{} ({})", g.node(id).name, g.node(id).op.kind()),
        reason: reason.to_string(),
    }
}
