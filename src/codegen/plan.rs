//! The kernels a compiled graph needs: one or more specialized sources per
//! launch node (both matmul variants, decode and prefill attention), plus
//! the device argmax over the logits. Identical specializations (the same
//! shapes in every layer) are listed once.

use std::collections::BTreeMap;

use super::attention::AttentionKernelSpec;
use super::elementwise::{binary_source, rope_source};
use super::error::CodegenError;
use super::experts::{ExpertsSpec, RouterSpec};
use super::kv_layout::KvLayout;
use super::kv_store::KvStoreSpec;
use super::matmul::{KvEpilogue, MatMulSpec, RopeEpilogue, Segment};
use super::rows::RowOp;
use super::source::KernelSource;
use super::target::Target;
use crate::backend::Vendor;
use crate::exec::cpu::KvTypes;
use crate::ir::{Dim, Epilogue, Graph, NodeId, Op, Prologue, Role, RopeSpec};

/// Settings of the plan that are not in the graph.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Tokens per KV-cache page.
    pub page_size: u32,
    /// Whose GPU runs the kernels: a variant that vendor never launches
    /// (the tall int8 tile on AMD, `MatMulSpec::variants`) is not compiled.
    pub vendor: Vendor,
    /// Element types of the KV cache's keys and values.
    pub kv: KvTypes,
}

impl PlanOptions {
    /// The options of kernels compiled for `target` (an f16 KV cache).
    pub fn for_target(page_size: u32, target: &Target) -> PlanOptions {
        PlanOptions {
            page_size,
            vendor: target.vendor(),
            kv: KvTypes::default(),
        }
    }
}

impl Default for PlanOptions {
    /// 16-token pages, NVIDIA kernels (every variant), an f16 KV cache.
    fn default() -> Self {
        PlanOptions {
            page_size: 16,
            vendor: Vendor::Cuda,
            kv: KvTypes::default(),
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
            let mut sources = spec
                .variants(opts.vendor)
                .into_iter()
                .map(|v| spec.source(v))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(store) = unfused_kv_store(g, id, opts)? {
                sources.push(store.source()?);
            }
            sources
        }
        Op::Attention(a) => vec![AttentionKernelSpec::of(a, opts.page_size, opts.kv).source()?],
        Op::Add | Op::Mul | Op::Silu | Op::Gelu | Op::Scale { .. } | Op::SoftCap { .. } => {
            vec![binary_source()]
        }
        Op::HeadRmsNorm { eps } => vec![head_norm(g, id, *eps)?.source()?],
        Op::Rope(spec) => {
            let heads = fixed(g, id, last)? / spec.head_dim.max(1);
            vec![rope_source(&rope_epilogue(g, id, spec, heads)?)]
        }
        Op::KvStore { layer } => vec![KvStoreSpec {
            layout: kv_layout(g, id, *layer, opts)?,
        }
        .source()?],
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
                layer,
                k_col,
                v_col,
                kv_dim,
            } if kv_layout(g, id, *layer, opts)?.written_by_epilogue() => {
                spec.kv = Some(KvEpilogue {
                    k_col: *k_col as u32,
                    v_col: *v_col as u32,
                    kv_dim: *kv_dim as u32,
                    page_size: opts.page_size,
                })
            }
            // Written by a kv_store launch after the matmul instead.
            Epilogue::KvStore { .. } => {}
            Epilogue::SwiGlu => spec.swiglu = true,
            Epilogue::GeGlu => (spec.swiglu, spec.gelu) = (true, true),
            Epilogue::Residual => spec.residual = true,
        }
    }
    spec.validate()?;
    Ok(spec.with_f16_tiles(opts.vendor))
}

/// The store kernel that follows matmul `id` where its epilogue has a KV
/// store that the cache's types keep out of it.
pub fn unfused_kv_store(
    g: &Graph,
    id: NodeId,
    opts: &PlanOptions,
) -> Result<Option<KvStoreSpec>, CodegenError> {
    let Op::MatMul(m) = &g.node(id).op else {
        return Ok(None);
    };
    for e in &m.epilogue {
        if let Epilogue::KvStore { layer, .. } = e {
            let layout = kv_layout(g, id, *layer, opts)?;
            if !layout.written_by_epilogue() {
                return Ok(Some(KvStoreSpec { layout }));
            }
        }
    }
    Ok(None)
}

/// The paged cache of `layer`, with the heads of its attention.
pub fn kv_layout(
    g: &Graph,
    id: NodeId,
    layer: u32,
    opts: &PlanOptions,
) -> Result<KvLayout, CodegenError> {
    g.node_ids()
        .find_map(|n| match &g.node(n).op {
            Op::Attention(a) if g.node(n).layer == Some(layer) => Some(KvLayout {
                types: opts.kv,
                n_kv_heads: a.n_kv_heads,
                head_dim: a.head_dim,
                page_size: opts.page_size,
            }),
            _ => None,
        })
        .ok_or_else(|| {
            bad(
                g,
                id,
                &format!("no attention reads the KV cache of layer {layer}"),
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::KvType;
    use crate::ir::DimEnv;
    use crate::passes::test_graph::{build, Tiny};

    /// The qwen2-like tiny decoder with heads of 64, compiled (fused).
    fn compiled() -> Graph {
        let m = Tiny {
            d: 256,
            head_dim: 64,
            ff: 256,
            ..Tiny::qwen2()
        };
        crate::passes::compile(build(&m).0, DimEnv::default())
            .unwrap()
            .graph
    }

    fn opts(k: KvType, v: KvType) -> PlanOptions {
        PlanOptions {
            kv: KvTypes { k, v },
            ..PlanOptions::default()
        }
    }

    fn qkv(g: &Graph) -> NodeId {
        g.node_ids()
            .find(|&id| match &g.node(id).op {
                Op::MatMul(m) => m
                    .epilogue
                    .iter()
                    .any(|e| matches!(e, Epilogue::KvStore { .. })),
                _ => false,
            })
            .expect("a fused qkv matmul")
    }

    #[test]
    fn the_f16_cache_is_written_by_the_qkv_epilogue() {
        let g = compiled();
        let o = opts(KvType::F16, KvType::F16);
        assert!(matmul_spec(&g, qkv(&g), &o).unwrap().kv.is_some());
        assert!(unfused_kv_store(&g, qkv(&g), &o).unwrap().is_none());
        let labels: Vec<String> = kernel_sources(&g, &o).unwrap().into_keys().collect();
        assert!(
            !labels.iter().any(|l| l.starts_with("kv_store")),
            "{labels:?}"
        );
    }

    #[test]
    fn a_block_typed_cache_is_stored_by_a_kernel_after_the_qkv_matmul() {
        let g = compiled();
        let o = opts(KvType::Q8_0, KvType::F16);
        let id = qkv(&g);
        assert!(matmul_spec(&g, id, &o).unwrap().kv.is_none());
        let store = unfused_kv_store(&g, id, &o).unwrap().unwrap();
        assert_eq!(store.layout.types, o.kv);
        assert_eq!((store.layout.head_dim, store.layout.n_kv_heads), (64, 2));
        let sources = node_sources(&g, id, &o).unwrap();
        assert_eq!(sources.last().unwrap().label, store.label());
        // The attention kernels read the same types.
        let labels: Vec<String> = kernel_sources(&g, &o).unwrap().into_keys().collect();
        assert!(
            labels
                .iter()
                .any(|l| l.starts_with("attention_") && l.ends_with("_kq8_0_vf16")),
            "{labels:?}"
        );
    }

    #[test]
    fn a_block_type_that_does_not_divide_the_heads_is_refused_by_name() {
        let m = Tiny::qwen2(); // heads of 16
        let g = crate::passes::compile(build(&m).0, DimEnv::default())
            .unwrap()
            .graph;
        let e = kernel_sources(&g, &opts(KvType::Q4_0, KvType::Q4_0)).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("Q4_0") && e.contains("head_dim"), "{e}");
    }
}
