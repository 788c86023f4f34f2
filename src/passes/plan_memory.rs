//! `plan_memory`: one activation arena for the whole step, every value at a
//! fixed offset.
//!
//! The schedule is the graph's topological order. Each value placed in the
//! arena lives from the step that writes it (inputs: from the start, the
//! host writes them first) to its last reader (outputs: to the end); a
//! `slice` is a view, so its readers extend its base's life. Ops whose
//! kernels need room of their own get scratch that lives for their step
//! only: a matmul with an RMSNorm prologue keeps the normalized input
//! f32[rows, k], one with SwiGLU the pre-activation f32[rows, 2·ff]; an
//! experts op, besides, one expert's gathered rows, their activation and
//! their down projection (room for every row: one expert may get them all).
//! Weights, the KV cache and kv_store's result live outside the arena.
//!
//! Placement is best-fit: each buffer, in some order, takes the smallest
//! gap between the buffers already placed that are live at the same time,
//! or the top. Several orders are tried (by first use, by size, by
//! lifetime, by size × lifetime) and the smallest arena is kept; for a
//! decoder it meets the lower bound (the peak of simultaneously live bytes)
//! or comes close. Sizes are for the plan's [`DimEnv`] (its limits); a step
//! with fewer tokens uses the same offsets, row-major tensors being
//! prefixes of their maximal size.
//!
//! Preserves: the graph (unchanged).

use std::collections::BTreeMap;

use crate::ir::{DimEnv, Epilogue, Graph, NodeId, Op, Prologue, Role};

use super::PassError;

/// Offsets and sizes are multiples of this (bytes).
pub const ALIGN: u64 = 256;

/// A byte range of the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub offset: u64,
    /// Bytes used (the space reserved is this, rounded up to [`ALIGN`]).
    pub bytes: u64,
}

/// Where an op's scratch parts lie (absolute arena offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScratchLayout {
    /// f32 rows of the RMSNorm-ed input (prologue `RmsNorm`).
    pub normalized: Option<Slot>,
    /// f32 rows of `[gate | up]` before SwiGLU (epilogue `SwiGlu`; an
    /// experts op, for one expert's rows).
    pub pre_activation: Option<Slot>,
    /// Experts: one expert's input rows, gathered, f32[rows, d].
    pub gathered: Option<Slot>,
    /// Experts: `silu(gate) * up` of those rows, f32[rows, ff].
    pub activated: Option<Slot>,
    /// Experts: their down projection, f32[rows, d], before it is weighted
    /// into the result.
    pub expert_out: Option<Slot>,
}

/// The arena layout of one graph for the limits `env`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    pub env: DimEnv,
    /// The order the executor runs the nodes in (liveness assumes it).
    pub schedule: Vec<NodeId>,
    pub arena_bytes: u64,
    /// The peak of bytes live at one step: no placement can do better.
    pub lower_bound: u64,
    /// Every buffer in its own place: what no reuse would cost.
    pub naive_bytes: u64,
    /// The values in the arena.
    pub slots: BTreeMap<NodeId, Slot>,
    /// Per-op scratch.
    pub scratch: BTreeMap<NodeId, Slot>,
    /// Views: (base value, first column). A column slice of a row-major
    /// `[rows, n]` value is strided: row r starts at `r·n + col_start`.
    pub views: BTreeMap<NodeId, (NodeId, u64)>,
    /// The placement order that gave the smallest arena.
    pub strategy: &'static str,
}

impl MemoryPlan {
    /// The arena offset of a value stored in the arena (not of a view).
    pub fn offset_of(&self, node: NodeId) -> Option<u64> {
        self.slots.get(&node).map(|s| s.offset)
    }

    pub fn slot_of(&self, node: NodeId) -> Option<Slot> {
        self.slots.get(&node).copied()
    }

    pub fn scratch_of(&self, node: NodeId) -> Option<Slot> {
        self.scratch.get(&node).copied()
    }

    /// For a view: the value whose memory it is (never itself a view) and
    /// its first column.
    pub fn view_of(&self, node: NodeId) -> Option<(NodeId, u64)> {
        self.views.get(&node).copied()
    }

    /// The parts of `node`'s scratch slot.
    pub fn scratch_layout(&self, g: &Graph, node: NodeId) -> ScratchLayout {
        let Some(slot) = self.scratch_of(node) else {
            return ScratchLayout::default();
        };
        let parts = scratch_parts(g, node, &self.env);
        let mut at = slot.offset;
        let mut place = |bytes: u64| {
            let s = (bytes > 0).then_some(Slot { offset: at, bytes });
            at += align(bytes);
            s
        };
        ScratchLayout {
            normalized: place(parts[0]),
            pre_activation: place(parts[1]),
            gathered: place(parts[2]),
            activated: place(parts[3]),
            expert_out: place(parts[4]),
        }
    }
}

fn align(bytes: u64) -> u64 {
    bytes.div_ceil(ALIGN) * ALIGN
}

/// Bytes of each part of `node`'s scratch, in [`ScratchLayout`]'s order
/// (normalized, pre-activation, gathered, activated, expert output).
fn scratch_parts(g: &Graph, node: NodeId, env: &DimEnv) -> [u64; 5] {
    let f32_bytes = |elements: u64| elements * 4;
    let (m, experts) = match &g.node(node).op {
        Op::MatMul(m) => (m, false),
        Op::Experts(m) => (m, true),
        _ => return [0; 5],
    };
    let norm = match (m.prologue, g.operand(node, Role::X)) {
        (Some(Prologue::RmsNorm { .. }), Some(x)) => f32_bytes(g.node(x).ty.elements(env)),
        _ => 0,
    };
    if experts {
        // One expert at a time, with at most every row of the step (a
        // row picks an expert once): the room for all rows is reused.
        let ty = &g.node(node).ty;
        let rows = ty.shape.first().map_or(0, |d| d.eval(env));
        let ff = g
            .operand(node, Role::W)
            .and_then(|w| g.node(w).ty.shape.get(1).and_then(|d| d.fixed()))
            .unwrap_or(0);
        let io = f32_bytes(ty.elements(env));
        return [norm, f32_bytes(2 * rows * ff), io, f32_bytes(rows * ff), io];
    }
    let pre = if m.epilogue.iter().any(Epilogue::is_gated) {
        f32_bytes(2 * g.node(node).ty.elements(env))
    } else {
        0
    };
    [norm, pre, 0, 0, 0]
}

/// Bytes of a scratch slot holding `parts` one after another, each but the
/// last rounded up to [`ALIGN`].
fn scratch_bytes(parts: [u64; 5]) -> u64 {
    let last = parts.iter().rposition(|&b| b > 0);
    last.map_or(0, |i| {
        parts[..i].iter().map(|&b| align(b)).sum::<u64>() + parts[i]
    })
}

/// What a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    Value(NodeId),
    Scratch(NodeId),
}

/// A buffer to place: live over schedule steps `[start, end]`.
#[derive(Debug, Clone, Copy)]
struct Buffer {
    holds: Holds,
    start: usize,
    end: usize,
    /// Exact bytes; the space reserved is `align(bytes)`.
    bytes: u64,
}

impl Buffer {
    fn size(&self) -> u64 {
        align(self.bytes)
    }

    fn overlaps(&self, o: &Buffer) -> bool {
        self.start <= o.end && o.start <= self.end
    }
}

/// Plans the arena of `g` for the limits `env`.
pub fn plan(g: &Graph, env: DimEnv) -> Result<MemoryPlan, PassError> {
    let schedule = g.topo_order().map_err(PassError::Cycle)?;
    let views = view_bases(g, &schedule);
    let buffers = buffers(g, &schedule, &views, &env);
    let (strategy, offsets, arena_bytes) = best_placement(&buffers);
    let mut slots = BTreeMap::new();
    let mut scratch = BTreeMap::new();
    for (b, offset) in buffers.iter().zip(offsets) {
        let slot = Slot {
            offset,
            bytes: b.bytes,
        };
        match b.holds {
            Holds::Value(n) => slots.insert(n, slot),
            Holds::Scratch(n) => scratch.insert(n, slot),
        };
    }
    Ok(MemoryPlan {
        env,
        schedule,
        arena_bytes,
        lower_bound: lower_bound(&buffers),
        naive_bytes: buffers.iter().map(Buffer::size).sum(),
        slots,
        scratch,
        views,
        strategy,
    })
}

/// Each view's base value (resolved through views of views) and first column.
fn view_bases(g: &Graph, schedule: &[NodeId]) -> BTreeMap<NodeId, (NodeId, u64)> {
    let mut views = BTreeMap::new();
    for &id in schedule {
        if let (Op::Slice { start, .. }, Some(x)) = (&g.node(id).op, g.operand(id, Role::X)) {
            let (base, col) = views.get(&x).copied().unwrap_or((x, 0));
            views.insert(id, (base, col + start));
        }
    }
    views
}

/// The arena's buffers with their lifetimes, in schedule order.
fn buffers(
    g: &Graph,
    schedule: &[NodeId],
    views: &BTreeMap<NodeId, (NodeId, u64)>,
    env: &DimEnv,
) -> Vec<Buffer> {
    let step: BTreeMap<NodeId, usize> = schedule.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let in_arena = |n: NodeId| !g.node(n).op.is_outside_arena() && !g.node(n).op.is_view();
    let root = |n: NodeId| views.get(&n).map_or(n, |&(b, _)| b);
    let mut end: BTreeMap<NodeId, usize> = BTreeMap::new();
    for (i, &id) in schedule.iter().enumerate() {
        for (o, src) in g.operands(id) {
            if o.role != Role::After {
                let e = end.entry(root(src)).or_insert(i);
                *e = (*e).max(i);
            }
        }
    }
    for (_, out) in g.outputs() {
        end.insert(root(*out), schedule.len().saturating_sub(1));
    }
    let mut bufs = Vec::new();
    for &id in schedule.iter().filter(|&&n| in_arena(n)) {
        let i = step[&id];
        let start = if matches!(g.node(id).op, Op::Input(_)) {
            0
        } else {
            i
        };
        let end = end.get(&id).copied().unwrap_or(i).max(start);
        let bytes = g.node(id).ty.bytes(env);
        bufs.push(Buffer {
            holds: Holds::Value(id),
            start,
            end,
            bytes,
        });
        let bytes = scratch_bytes(scratch_parts(g, id, env));
        if bytes > 0 {
            bufs.push(Buffer {
                holds: Holds::Scratch(id),
                start: i,
                end: i,
                bytes,
            });
        }
    }
    bufs
}

/// The peak, over steps, of the bytes live at that step.
fn lower_bound(bufs: &[Buffer]) -> u64 {
    let steps = bufs.iter().map(|b| b.end + 1).max().unwrap_or(0);
    let mut change = vec![0i128; steps + 1];
    for b in bufs {
        change[b.start] += i128::from(b.size());
        change[b.end + 1] -= i128::from(b.size());
    }
    let mut now = 0i128;
    let mut peak = 0i128;
    for d in change {
        now += d;
        peak = peak.max(now);
    }
    peak as u64
}

type Order = fn(&Buffer) -> (i64, i64, usize);

/// Placement orders tried; ties fall back to schedule order.
const ORDERS: [(&str, Order); 4] = [
    ("first_use", |b| (b.start as i64, 0, b.end)),
    ("size", |b| (-(b.size() as i64), b.start as i64, b.end)),
    ("lifetime", |b| {
        (-((b.end - b.start) as i64), -(b.size() as i64), b.start)
    }),
    ("size_x_lifetime", |b| {
        (
            -((b.size() * (b.end - b.start + 1) as u64) as i64),
            b.start as i64,
            b.end,
        )
    }),
];

/// The smallest arena over [`ORDERS`]: (order name, offsets, arena bytes).
fn best_placement(bufs: &[Buffer]) -> (&'static str, Vec<u64>, u64) {
    let mut best: Option<(&'static str, Vec<u64>, u64)> = None;
    for (name, key) in ORDERS {
        let mut order: Vec<usize> = (0..bufs.len()).collect();
        order.sort_by_key(|&i| (key(&bufs[i]), i));
        let (offsets, arena) = place(bufs, &order);
        if best.as_ref().is_none_or(|b| arena < b.2) {
            best = Some((name, offsets, arena));
        }
    }
    best.unwrap_or(("first_use", Vec::new(), 0))
}

/// Best-fit placement of `bufs` taken in `order`: each goes into the
/// smallest gap among the placed buffers it is live with, or on top.
fn place(bufs: &[Buffer], order: &[usize]) -> (Vec<u64>, u64) {
    let mut offsets: Vec<Option<u64>> = vec![None; bufs.len()];
    let mut arena = 0;
    for &i in order {
        let b = &bufs[i];
        let mut taken: Vec<(u64, u64)> = (0..bufs.len())
            .filter_map(|j| {
                offsets[j]
                    .filter(|_| bufs[j].overlaps(b))
                    .map(|o| (o, o + bufs[j].size()))
            })
            .collect();
        taken.sort();
        let mut best: Option<(u64, u64)> = None; // (gap size, offset)
        let mut top = 0;
        for (lo, hi) in taken {
            if lo >= top + b.size() && best.is_none_or(|(gap, _)| lo - top < gap) {
                best = Some((lo - top, top));
            }
            top = top.max(hi);
        }
        let offset = best.map_or(top, |(_, o)| o);
        offsets[i] = Some(offset);
        arena = arena.max(offset + b.size());
    }
    (offsets.into_iter().map(|o| o.unwrap_or(0)).collect(), arena)
}

#[cfg(test)]
mod tests;
