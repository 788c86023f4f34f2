//! The model's weights on the device: one allocation, uploaded once.
//!
//! The weight matrices of a multi-segment matmul (q|k|v, gate|up) are
//! placed one after another ("QKV concatenated": one region per matmul;
//! the kernel takes a pointer per segment, so a segment only has to start
//! on a 16-byte boundary, which the real shapes meet without padding).
//! Matrices and embedding tables keep their GGUF blocks; 1-d weights (norm
//! gains, biases) are stored as f32, which is what the kernels read.

use crate::artifact::progress::{Progress, Unit};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{DeviceBuffer, DevicePtr, Gpu};
use crate::exec::ExecError;
use crate::gguf::GgufFile;
use crate::ir::{Graph, NodeId, Op, Role};

/// Alignment of the first segment of a matmul and of every other weight.
const REGION_ALIGN: usize = 256;
/// Alignment of a later segment of the same matmul.
const SEGMENT_ALIGN: usize = 16;

/// Every weight of a compiled graph, on the device.
pub struct DeviceWeights {
    buffer: DeviceBuffer,
    offsets: HashMap<NodeId, usize>,
}

/// One weight's bytes as the device will hold them.
struct HostWeight<'f> {
    node: NodeId,
    data: Cow<'f, [u8]>,
}

impl DeviceWeights {
    /// Uploads the weights of `graph` (nodes in `schedule` order) from `file`.
    pub fn upload(
        gpu: &Arc<Gpu>,
        file: &GgufFile,
        graph: &Graph,
        schedule: &[NodeId],
        progress: &dyn Progress,
    ) -> Result<DeviceWeights, ExecError> {
        let order = placement_order(graph, schedule);
        let mut host = Vec::with_capacity(order.len());
        for &(node, _) in &order {
            host.push(HostWeight {
                node,
                data: weight_bytes(file, graph, node)?,
            });
        }
        let mut offsets = HashMap::new();
        let mut end = 0usize;
        for (w, &(_, align)) in host.iter().zip(&order) {
            let at = end.next_multiple_of(align);
            offsets.insert(w.node, at);
            end = at + w.data.len();
        }
        let mut buffer = DeviceBuffer::new(gpu, end.max(1))?;
        progress.begin("upload", end as u64, Unit::Bytes);
        for w in &host {
            buffer.write(offsets[&w.node], &w.data)?;
            progress.advance(w.data.len() as u64);
        }
        progress.end();
        tracing::info!(
            "uploaded {} weights, {:.1} MiB",
            host.len(),
            end as f64 / (1 << 20) as f64
        );
        Ok(DeviceWeights { buffer, offsets })
    }

    /// The device address of weight `node`.
    pub fn ptr(&self, node: NodeId) -> Option<DevicePtr> {
        self.offsets
            .get(&node)
            .map(|&o| self.buffer.ptr().offset(o))
    }

    pub fn bytes(&self) -> usize {
        self.buffer.len()
    }
}

/// Weights in placement order with their alignment: each matmul's
/// segments together (first come, first placed: a weight shared by two
/// matmuls, or by a matmul and an embedding, is placed once), then the rest.
fn placement_order(graph: &Graph, schedule: &[NodeId]) -> Vec<(NodeId, usize)> {
    let mut order: Vec<(NodeId, usize)> = Vec::new();
    let mut placed = std::collections::HashSet::new();
    for &id in schedule {
        if matches!(graph.node(id).op, Op::MatMul(_)) {
            let segs = graph.operand_list(id, Role::W);
            for (i, w) in segs.into_iter().enumerate() {
                if placed.insert(w) {
                    let align = if i == 0 { REGION_ALIGN } else { SEGMENT_ALIGN };
                    order.push((w, align));
                }
            }
        }
    }
    for &id in schedule {
        if matches!(graph.node(id).op, Op::Weight { .. }) && placed.insert(id) {
            order.push((id, REGION_ALIGN));
        }
    }
    order
}

/// The bytes of weight `node`: its GGUF data, or f32 values for a vector.
fn weight_bytes<'f>(
    file: &'f GgufFile,
    graph: &Graph,
    node: NodeId,
) -> Result<Cow<'f, [u8]>, ExecError> {
    let n = graph.node(node);
    let Op::Weight { name } = &n.op else {
        return Err(ExecError::Unsupported {
            node: n.name.clone(),
            kind: n.op.kind(),
            reason: "a matmul's W operand must be a weight".into(),
        });
    };
    let view = file.tensor(name)?;
    view.require_supported()?;
    if n.ty.dtype != view.ty() {
        return Err(ExecError::Weight {
            name: name.clone(),
            reason: format!(
                "the graph says {} but the file holds {}",
                n.ty.dtype,
                view.ty()
            ),
        });
    }
    if n.ty.rank() != 1 {
        return Ok(Cow::Borrowed(view.data));
    }
    let mut values = vec![0f32; view.info.n_elements() as usize];
    crate::quant::dequantize(view.ty(), view.data, &mut values).map_err(|e| ExecError::Weight {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    Ok(Cow::Owned(bytemuck::cast_slice(&values).to_vec()))
}
