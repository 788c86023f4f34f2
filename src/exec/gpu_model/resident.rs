//! The prefill tiles' weights, repacked once at load where memory allows.
//!
//! The 128-token tiles read the weights repacked: as int8 with their block
//! scales (matmul_q8.hip, ~1.3 bytes per weight) or, for the K-quants on
//! NVIDIA, as f16 sc·q with per-row super-block units and mins
//! (matmul_f16k.hip, ~2.1 bytes per weight), which a repack kernel writes
//! from the quantized bytes. Per step that pass costs ~6 % of a 512-token
//! prefill (H100, Llama-3-8B shape): it reads and writes every weight once
//! more. Kept in device memory instead, the repacked copies cost 3–5x the
//! quantized weights' size, so they are made only while the device keeps
//! [`FREE_SHARE`] of its memory free; matrices that do not fit repack per
//! step into the shared scratch as before. They are the model's last
//! allocations: optional, after every buffer a step needs.

use std::collections::HashMap;
use std::sync::Arc;

use super::super::graph_facts::unsupported;
use super::weights::DeviceWeights;
use super::ExecError;
use crate::backend::{BackendError, DeviceBuffer, DevicePtr, Gpu, Stream};
use crate::codegen::matmul::{MatMulVariant, RepackFormat, MAX_SEGMENTS};
use crate::codegen::plan::{matmul_spec, PlanOptions};
use crate::codegen::KernelCache;
use crate::ir::{Graph, NodeId, Op, Role};

/// The share of the device's memory left free after the repacked copies.
const FREE_SHARE: f64 = 0.125;

/// Repacked weights per matmul node. Running out of device memory while
/// making them is not an error: the remaining matrices repack per step.
#[derive(Default)]
pub struct ResidentRepacks {
    buffers: Vec<DeviceBuffer>,
    by_node: HashMap<(NodeId, RepackFormat), DevicePtr>,
}

impl ResidentRepacks {
    /// Repacks the weights of the graph's matmuls, in graph order, while
    /// the device keeps [`FREE_SHARE`] of its memory free; the repacks are
    /// queued on `stream`.
    pub fn build(
        gpu: &Arc<Gpu>,
        cache: &KernelCache,
        graph: &Graph,
        opts: &PlanOptions,
        weights: &DeviceWeights,
        stream: &Stream,
    ) -> Result<ResidentRepacks, ExecError> {
        let (free, total) = gpu.memory_info()?;
        let reserve = (total as f64 * FREE_SHARE) as usize;
        let mut budget = free.saturating_sub(reserve);
        let mut out = ResidentRepacks::default();
        'nodes: for id in graph.node_ids() {
            if !matches!(graph.node(id).op, Op::MatMul(_)) {
                continue;
            }
            let spec = matmul_spec(graph, id, opts)?;
            // One copy per format some compiled variant reads: the f16
            // sc·q of the K-quants' 128-token tiles, the int8 of the other
            // tiles and the narrow product, the fragment product's order.
            let mut formats: Vec<(RepackFormat, MatMulVariant)> = Vec::new();
            for v in spec.variants(gpu.info().vendor) {
                let f = spec.repack_format(v);
                if spec.repacks_weights(v) && !formats.iter().any(|(g, _)| *g == f) {
                    formats.push((f, v));
                }
            }
            let mut w = [DevicePtr::NULL; MAX_SEGMENTS];
            for (i, n) in graph.operand_list(id, Role::W).into_iter().enumerate() {
                w[i] = weights
                    .ptr(n)
                    .ok_or_else(|| unsupported(graph, id, "a weight operand was not uploaded"))?;
            }
            for (format, v) in formats {
                let bytes = spec.wq_bytes(v) as usize;
                if bytes > budget {
                    tracing::info!(
                        node = %graph.node(id).name,
                        bytes,
                        budget,
                        ?format,
                        "weights repack per step: no room to keep them"
                    );
                    continue;
                }
                let kernel = spec.kernels(v, |src, entry| -> Result<_, ExecError> {
                    Ok(cache.kernel(gpu, src, entry)?)
                })?;
                let Some(repack) = &kernel.repack else {
                    continue;
                };
                // An optimization only: without room the matrix repacks per step.
                let buf = match DeviceBuffer::new(gpu, bytes) {
                    Ok(b) => b,
                    Err(e @ BackendError::OutOfMemory { .. }) => {
                        tracing::info!(error = %e, "weights repack per step from here on");
                        break 'nodes;
                    }
                    Err(e) => return Err(e.into()),
                };
                // SAFETY: `w` addresses the node's uploaded weights, `buf` holds
                // `wq_bytes`; both outlive the queued work (the caller waits for
                // the stream before returning the model).
                unsafe { spec.repack(v, repack, stream, &w, buf.ptr())? };
                budget -= bytes;
                out.by_node.insert((id, format), buf.ptr());
                out.buffers.push(buf);
            }
        }
        Ok(out)
    }

    /// The weights of matmul `id` repacked in `format`, when kept; else
    /// null.
    pub fn get(&self, id: NodeId, format: RepackFormat) -> DevicePtr {
        self.by_node
            .get(&(id, format))
            .copied()
            .unwrap_or(DevicePtr::NULL)
    }

    /// Device bytes the kept copies hold.
    pub fn bytes(&self) -> usize {
        self.buffers.iter().map(DeviceBuffer::len).sum()
    }
}
