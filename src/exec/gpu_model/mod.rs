//! The GPU backend: replays a compiled graph on a CUDA or HIP device.
//!
//! Built once per model: every kernel the graph needs is specialized and
//! compiled ([`kernels`]), the weights uploaded into one buffer
//! ([`weights`]), one activation arena of the memory plan's size, the
//! paged KV cache (in its element types, `codegen::KvLayout`) and a small
//! buffer for the step's inputs
//! ([`inputs`]) allocated, and every launch node resolved to a kernel and
//! its device addresses ([`build`], [`launch`]). A step then queues the
//! copy of its packed inputs (page-locked staging, no wait), the launches,
//! and the read-back of the logits (or, for greedy decoding, only the
//! argmax token ids): that read-back is the step's only wait.
//!
//! A step of decodes only (every token's attention through the split-K
//! kernel) is captured as a graph the first time its size (tokens, rows)
//! comes, and replayed after: every launch argument of such a step follows
//! from its size (positions, sequences and pages are read from device
//! memory, the attention grid covers the plan's context), so a graph never
//! needs updating. Steps with prefill chunks are queued launch by launch.
//!
//! Every device buffer has one owner (the fields below); if building fails
//! halfway, the buffers already made are dropped, which frees them.

mod build;
mod error;
mod inputs;
mod kernels;
mod launch;
mod resident;
pub mod tune;
mod weights;

use std::collections::HashMap;
use std::sync::Arc;

pub use error::GpuError;
pub use inputs::StepShape;

use self::build::{Loc, Places};
use self::inputs::StepBuffer;
use self::launch::{Launch, RowCount};
use self::resident::ResidentRepacks;
use self::weights::DeviceWeights;
use super::graph_facts::{fixed_cols, unsupported};
use super::session::{StepBackend, StepLimits};
use super::step::{StepInputs, TopRows};
use super::ExecError;
use crate::artifact::progress::Progress;
use crate::backend::{Capture, DeviceBuffer, Event, Gpu, GraphExec, PinnedBuffer, Stream, Vendor};
use crate::codegen::plan::{kv_layout, matmul_spec, PlanOptions};
use crate::codegen::rows::TOP_CANDIDATES;
use crate::codegen::{KernelCache, KvLayout, RowOp, Target};
use crate::exec::cpu::KvTypes;
use crate::gguf::GgufFile;
use crate::ir::{Graph, Op};
use crate::passes::MemoryPlan;

/// Logit rows read back through page-locked memory: a decode step's (and a
/// few more, for small batches); larger reads go through `host_logits`.
const PINNED_LOGIT_ROWS: usize = 4;

/// Captured decode steps by (tokens, rows, tail).
type DecodeGraphs = HashMap<(u32, u32, Tail), GraphExec>;

/// The most decode steps kept captured: every size a server of up to 64
/// sequences meets, with each tail, stays well below it; past it, new
/// sizes are queued launch by launch.
const MAX_GRAPHS: usize = 256;

/// What follows a step's launches on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tail {
    /// Nothing: the logits are read back.
    Logits,
    /// Each row's argmax.
    Argmax,
    /// Each row's top candidates and log-sum-exp.
    Top,
}

/// Device memory the model holds, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceFootprint {
    pub weights: usize,
    pub arena: usize,
    pub kv_cache: usize,
    /// The prefill tiles' weights (int8 or f16), repacked once at load
    /// (resident.rs).
    pub repacked_weights: usize,
    pub other: usize,
}

impl DeviceFootprint {
    pub fn total(&self) -> usize {
        self.weights + self.arena + self.kv_cache + self.repacked_weights + self.other
    }
}

/// Where the model's kernels came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelOrigin {
    /// An artifact's code objects, loaded with the driver (no compiler).
    Stored { objects: usize },
    /// The runtime compiler (`nvrtc 13.0`), through the disk cache.
    Compiled { compiler: String },
}

impl std::fmt::Display for KernelOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelOrigin::Stored { objects } => write!(
                f,
                "{objects} code objects loaded from the artifact (no runtime compiler)"
            ),
            KernelOrigin::Compiled { compiler } => write!(f, "compiled by {compiler}"),
        }
    }
}

/// A model compiled for a GPU, ready to run steps.
pub struct GpuModel {
    // Fields drop in order: graphs and kernels before the buffers they
    // point into, the stream before the device.
    graphs: DecodeGraphs,
    use_graphs: bool,
    /// Whether a decode step of a size not captured yet is captured (off
    /// once [`GpuModel::capture_decode_steps`] has run: such a step then
    /// queues its launches, and the graphs' memory stays as it was).
    capture_more: bool,
    launches: Vec<Launch>,
    argmax: Launch,
    topk: Launch,
    arena: DeviceBuffer,
    kv: DeviceBuffer,
    attn_scratch: DeviceBuffer,
    xq_scratch: DeviceBuffer,
    wq_scratch: DeviceBuffer,
    resident: ResidentRepacks,
    argmax_out: DeviceBuffer,
    topk_out: DeviceBuffer,
    inputs: StepBuffer,
    weights: DeviceWeights,
    stream: Stream,
    gpu: Arc<Gpu>,
    /// Byte offset of the logits in the arena (rows are contiguous).
    logits_offset: usize,
    /// One step's logit rows when there are more than `pinned_logits`
    /// holds.
    host_logits: Vec<f32>,
    /// Page-locked room for a decode step's logits: the download is a
    /// direct DMA instead of a copy staged by the driver (qwen05b: 608 KB
    /// a token). None where the host refused to lock the memory.
    pinned_logits: Option<PinnedBuffer>,
    host_tokens: Vec<i32>,
    host_top: Vec<i32>,
    /// Whether steps may return top candidates instead of logit rows.
    device_top: bool,
    tuning: tune::MatMulTuning,
    /// Rows of the last step (for `last_logits`).
    last_rows: usize,
    limits: StepLimits,
    vocab: usize,
    kernel_origin: KernelOrigin,
}

impl GpuModel {
    /// Prepares `graph` (compiled, with `plan`) to run on `gpu` with the
    /// weights of `file` and a KV pool of `n_pages` pages whose keys and
    /// values are of `kv_types`; kernels are
    /// compiled through `cache`. `recorded` (an artifact's matmul variant
    /// tables) is taken where it was timed on a device of this name; else
    /// the variants are timed here. `progress` hears of the kernels'
    /// compilation and the weights' upload.
    // Each argument is one independent input of the build; a struct for
    // them would only be unpacked here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Arc<Gpu>,
        file: &GgufFile,
        graph: &Graph,
        plan: &MemoryPlan,
        page_size: usize,
        n_pages: usize,
        kv_types: KvTypes,
        cache: &KernelCache,
        recorded: Option<&tune::MatMulTuning>,
        progress: &dyn Progress,
    ) -> Result<GpuModel, ExecError> {
        let env = plan.env;
        let pages_per_seq = env.pages as usize;
        let limits = StepLimits {
            max_tokens: env.tokens as usize,
            max_rows: env.rows as usize,
            max_seqs: env.seqs as usize,
            pages_per_seq,
            n_pages: n_pages.max(1),
            page_size,
        };
        let logits_node = graph
            .output("logits")
            .ok_or_else(|| ExecError::Unsupported {
                node: "logits".into(),
                kind: "graph",
                reason: "the graph has no `logits` output".into(),
            })?;
        let vocab = fixed_cols(graph, logits_node)?;
        let opts = PlanOptions {
            page_size: page_size as u32,
            vendor: gpu.vendor(),
            kv: kv_types,
        };
        kernels::precompile(gpu, cache, graph, &opts, progress)?;
        let kernel_origin = match cache.is_stored() {
            true => KernelOrigin::Stored {
                objects: cache.loaded(),
            },
            false => KernelOrigin::Compiled {
                compiler: gpu.compiler()?.version_string(),
            },
        };
        let stream = Stream::new(gpu)?;
        let weights = DeviceWeights::upload(gpu, file, graph, &plan.schedule, progress)?;
        let mut arena = DeviceBuffer::new(gpu, plan.arena_bytes as usize)?;
        stream.fill_buffer_u32(&mut arena, 0)?;
        let (n_layers, kv_layer_bytes) = kv_pool(graph, &opts, limits.n_pages)?;
        let mut kv = DeviceBuffer::new(gpu, n_layers * kv_layer_bytes)?;
        stream.fill_buffer_u32(&mut kv, 0)?;
        let context = (pages_per_seq * page_size) as u32;
        let prefill_tokens = env.tokens as u32;
        let decode_tokens = (inputs::DECODE_MAX_RUN * limits.max_seqs).min(limits.max_tokens);
        let scratch_bytes = attention_scratch(
            graph,
            &opts,
            context,
            (prefill_tokens, decode_tokens as u32),
            opts.vendor,
        );
        let attn_scratch = DeviceBuffer::new(gpu, scratch_bytes)?;
        let (xq_bytes, wq_bytes) = int8_scratch_bytes(graph, &opts, env.tokens as u32)?;
        let xq_scratch = DeviceBuffer::new(gpu, xq_bytes)?;
        let wq_scratch = DeviceBuffer::new(gpu, wq_bytes)?;
        let argmax_out = DeviceBuffer::new(gpu, limits.max_rows.max(1) * 4)?;
        let top_words = 2 * TOP_CANDIDATES as usize + 1;
        let topk_out = DeviceBuffer::new(gpu, limits.max_rows.max(1) * top_words * 4)?;
        let inputs = StepBuffer::new(gpu, limits, vocab)?;
        // Last, as they are optional: any matrix left out (no room) repacks
        // into `wq_scratch` per step, which is sized for every matrix but
        // the copies too large to repack per step (their variants are then
        // left out: build.rs).
        let resident = ResidentRepacks::build(gpu, cache, graph, &opts, &weights, &stream)?;
        let places = Places {
            gpu,
            cache,
            opts,
            warp: Target::of(gpu.info()).warp_size(),
            graph,
            plan,
            arena: arena.ptr(),
            weights: &weights,
            inputs: &inputs,
            kv: kv.ptr(),
            kv_layer_bytes,
            pages_per_seq: pages_per_seq as u32,
            attn_scratch: attn_scratch.ptr(),
            xq_scratch: xq_scratch.ptr(),
            wq_scratch: wq_scratch.ptr(),
            wq_scratch_bytes: wq_scratch.len(),
            resident: &resident,
        };
        let mut launches = Vec::new();
        for &id in &plan.schedule {
            launches.extend(places.launches(id).map_err(ExecError::Gpu)?);
        }
        let device = &gpu.info().name;
        let tuning = match recorded {
            Some(r) if r.timed_on(device) && tune::apply(&mut launches, limits, r) => {
                tracing::info!(device = %device, "matmul variants as the artifact recorded them on this device");
                r.clone()
            }
            _ if tune::enabled() => {
                if let Some(other) = recorded.and_then(|r| r.measured_on.as_deref()) {
                    tracing::info!(recorded_on = other, device = %device, "matmul variants timed again: the artifact's are for another device or plan");
                }
                tune::tune(&mut launches, &stream, limits)?
            }
            _ => tune::MatMulTuning::default(),
        };
        let logits = places.loc(logits_node).map_err(ExecError::Gpu)?;
        let argmax = argmax_launch(
            &places,
            RowOp::Argmax { n: vocab as u32 },
            logits,
            argmax_out.ptr(),
        )?;
        let topk = argmax_launch(
            &places,
            RowOp::TopK {
                n: vocab as u32,
                k: TOP_CANDIDATES,
            },
            logits,
            topk_out.ptr(),
        )?;
        let logits_offset = (logits.ptr.0 - arena.ptr().0) as usize;
        if logits.ld as usize != vocab {
            return Err(unsupported(
                graph,
                logits_node,
                "the logits rows are not contiguous",
            ));
        }
        stream.synchronize()?;
        Ok(GpuModel {
            graphs: DecodeGraphs::default(),
            use_graphs: true,
            capture_more: true,
            launches,
            argmax,
            topk,
            arena,
            kv,
            attn_scratch,
            xq_scratch,
            wq_scratch,
            resident,
            argmax_out,
            topk_out,
            inputs,
            weights,
            stream,
            gpu: gpu.clone(),
            logits_offset,
            host_logits: vec![0f32; limits.max_rows * vocab],
            pinned_logits: PinnedBuffer::new(
                gpu,
                PINNED_LOGIT_ROWS.min(limits.max_rows) * vocab * 4,
            )
            .map_err(|e| tracing::info!(error = %e, "logits read back through pageable memory"))
            .ok(),
            host_tokens: vec![0i32; limits.max_rows],
            host_top: vec![0i32; limits.max_rows * top_words],
            device_top: true,
            last_rows: 0,
            limits,
            vocab,
            kernel_origin,
            tuning,
        })
    }

    /// The matmul variant tables this model runs with (timed at load, or
    /// taken from an artifact; empty and unmeasured where tuning is off).
    pub fn matmul_tuning(&self) -> &tune::MatMulTuning {
        &self.tuning
    }

    pub fn kernel_origin(&self) -> &KernelOrigin {
        &self.kernel_origin
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Whether decode steps replay a captured graph (default) or queue
    /// their launches one by one (for comparisons).
    pub fn set_graphs(&mut self, on: bool) {
        self.use_graphs = on;
    }

    /// Captures the graphs of decode-only steps of 1 to `max_tokens`
    /// tokens (one row each, as a server's steps of decodes are) for the
    /// tails a scheduler uses (top candidates, then whole logits while
    /// room is left), so that no step captures later: a long-running
    /// server's device and host memory then stay where they were after
    /// load: later steps of other shapes (a prefix-cache hit that leaves a
    /// sequence 2-4 tokens to compute) queue their launches instead of
    /// capturing more (the GPU load test saw +6 MiB from those). Returns
    /// how many graphs were captured.
    pub fn capture_decode_steps(&mut self, max_tokens: u32) -> Result<usize, ExecError> {
        if !self.use_graphs {
            return Ok(0);
        }
        let max = max_tokens
            .min(self.limits.max_seqs as u32)
            .min(self.limits.max_tokens as u32)
            .min(self.limits.max_rows as u32);
        let tails: &[Tail] = if self.device_top {
            &[Tail::Top, Tail::Logits]
        } else {
            &[Tail::Logits]
        };
        self.capture_more = false;
        let mut captured = 0;
        for &tail in tails {
            for n in 1..=max {
                let key = (n, n, tail);
                if self.graphs.contains_key(&key) {
                    continue;
                }
                if self.graphs.len() >= MAX_GRAPHS {
                    return Ok(captured);
                }
                let shape = StepShape {
                    tokens: n,
                    rows: n,
                    keys: 1,
                    decode_tokens: n,
                };
                let g = capture(&self.stream, &self.launches, self.tail_launch(tail), shape)?;
                self.graphs.insert(key, g);
                captured += 1;
            }
        }
        Ok(captured)
    }

    /// Whether steps may return each row's top candidates (the `topk`
    /// kernel) instead of whole logit rows, where every sampled row can be
    /// drawn from them (greedy, small top-k): on by default, as the
    /// selection takes microseconds and a row of logits is a vocabulary of
    /// floats to download and scan (docs/PERFORMANCE.md).
    pub fn set_device_top(&mut self, on: bool) {
        self.device_top = on;
    }

    /// Launch nodes per step (without the argmax).
    pub fn launches(&self) -> usize {
        self.launches.len()
    }

    pub fn footprint(&self) -> DeviceFootprint {
        DeviceFootprint {
            weights: self.weights.bytes(),
            arena: self.arena.len(),
            kv_cache: self.kv.len(),
            repacked_weights: self.resident.bytes(),
            other: self.attn_scratch.len()
                + self.xq_scratch.len()
                + self.wq_scratch.len()
                + self.argmax_out.len()
                + self.topk_out.len(),
        }
    }

    /// Runs `step` and returns the argmax token id of each output row:
    /// only the ids cross to the host.
    pub fn run_step_argmax(&mut self, step: &StepInputs) -> Result<Vec<u32>, ExecError> {
        let shape = self.inputs.write(&self.stream, step)?;
        self.queue(shape, Tail::Argmax)?;
        self.last_rows = shape.rows as usize;
        let r = shape.rows as usize;
        let out = &mut self.host_tokens[..r];
        self.stream
            .download_from(&self.argmax_out, 0, bytemuck::cast_slice_mut(out))?;
        self.inputs.settled();
        out.iter()
            .enumerate()
            .map(|(row, &id)| {
                u32::try_from(id).map_err(|_| ExecError::Gpu(GpuError::NanLogits { row }))
            })
            .collect()
    }

    /// The row op that follows a step's launches for `tail`.
    fn tail_launch(&self, tail: Tail) -> Option<&Launch> {
        match tail {
            Tail::Logits => None,
            Tail::Argmax => Some(&self.argmax),
            Tail::Top => Some(&self.topk),
        }
    }

    /// Queues a whole step: a captured graph for steps of decodes only,
    /// the launches one by one otherwise.
    fn queue(&mut self, shape: StepShape, tail: Tail) -> Result<(), ExecError> {
        // Field by field: the graph map is borrowed mutably below.
        let tail_launch = match tail {
            Tail::Logits => None,
            Tail::Argmax => Some(&self.argmax),
            Tail::Top => Some(&self.topk),
        };
        let key = (shape.tokens, shape.rows, tail);
        let decodes_only = shape.decode_tokens == shape.tokens;
        let room = self.capture_more && self.graphs.len() < MAX_GRAPHS;
        if self.use_graphs && decodes_only {
            let g = match self.graphs.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
                std::collections::hash_map::Entry::Vacant(e) if room => {
                    let g = capture(&self.stream, &self.launches, tail_launch, shape)?;
                    tracing::debug!(
                        ?tail,
                        tokens = shape.tokens,
                        rows = shape.rows,
                        "captured a decode step"
                    );
                    Some(e.insert(g))
                }
                std::collections::hash_map::Entry::Vacant(_) => None,
            };
            if let Some(g) = g {
                g.launch(&self.stream)?;
                return Ok(());
            }
        }
        // SAFETY: `shape` was checked against the plan's limits by
        // `StepBuffer::write`, which also wrote the step's inputs.
        unsafe {
            for l in self.launches.iter().chain(tail_launch) {
                l.enqueue(&self.stream, shape)?;
            }
        }
        Ok(())
    }
}

impl GpuModel {
    /// Runs `step` launch by launch with an event after each (and the top
    /// candidates last), and returns each launch's label and device time
    /// in milliseconds, in order: where a step's time goes.
    pub fn profile_step(&mut self, step: &StepInputs) -> Result<Vec<(String, f32)>, ExecError> {
        let shape = self.inputs.write(&self.stream, step)?;
        let start = Event::new(&self.gpu)?;
        start.record(&self.stream)?;
        let mut marks = Vec::with_capacity(self.launches.len() + 1);
        for l in self.launches.iter().chain(Some(&self.topk)) {
            // SAFETY: as in `queue`.
            unsafe { l.enqueue(&self.stream, shape)? };
            let e = Event::new(&self.gpu)?;
            e.record(&self.stream)?;
            marks.push((l.label(&self.stream, shape), e));
        }
        self.stream.synchronize()?;
        self.inputs.settled();
        let mut prev = &start;
        let mut out = Vec::with_capacity(marks.len());
        for (label, e) in &marks {
            out.push((label.clone(), e.elapsed_ms_since(prev)?));
            prev = e;
        }
        Ok(out)
    }
}

impl StepBackend for GpuModel {
    fn run_step(&mut self, step: &StepInputs) -> Result<&[f32], ExecError> {
        let shape = self.inputs.write(&self.stream, step)?;
        self.queue(shape, Tail::Logits)?;
        self.last_rows = shape.rows as usize;
        self.download_logits()
    }

    fn top_candidates(&self) -> usize {
        if self.device_top {
            TOP_CANDIDATES as usize
        } else {
            0
        }
    }

    fn run_step_top(&mut self, step: &StepInputs) -> Result<TopRows<'_>, ExecError> {
        let shape = self.inputs.write(&self.stream, step)?;
        self.queue(shape, Tail::Top)?;
        self.last_rows = shape.rows as usize;
        let words = self.last_rows * (2 * TOP_CANDIDATES as usize + 1);
        let out = &mut self.host_top[..words];
        self.stream
            .download_from(&self.topk_out, 0, bytemuck::cast_slice_mut(out))?;
        self.inputs.settled();
        Ok(TopRows::new(TOP_CANDIDATES as usize, out))
    }

    fn last_logits(&mut self) -> Result<&[f32], ExecError> {
        self.download_logits()
    }

    fn limits(&self) -> StepLimits {
        self.limits
    }

    fn vocab(&self) -> usize {
        self.vocab
    }
}

impl GpuModel {
    /// The last step's logit rows, read back from the arena (which keeps
    /// them until the next step).
    fn download_logits(&mut self) -> Result<&[f32], ExecError> {
        let n = self.last_rows * self.vocab;
        let out = match self.pinned_logits.as_mut().map(|p| p.as_mut_slice::<f32>()) {
            Some(pinned) if n <= pinned.len() => &mut pinned[..n],
            _ => &mut self.host_logits[..n],
        };
        self.stream.download_from(
            &self.arena,
            self.logits_offset,
            bytemuck::cast_slice_mut(out),
        )?;
        self.inputs.settled();
        Ok(out)
    }
}

/// Records the launches of a step of `shape` (and `tail`) as a graph.
fn capture(
    stream: &Stream,
    launches: &[Launch],
    tail: Option<&Launch>,
    shape: StepShape,
) -> Result<GraphExec, ExecError> {
    let cap = Capture::begin(stream)?;
    // SAFETY: as in `GpuModel::queue`; the captured launches run later
    // with the same arguments, when the step's inputs have been written.
    unsafe {
        for l in launches.iter().chain(tail) {
            l.enqueue(stream, shape)?;
        }
    }
    Ok(cap.finish()?)
}

/// A row op over the logits (argmax, top candidates) writing to `out`.
fn argmax_launch(
    places: &Places<'_>,
    op: RowOp,
    logits: Loc,
    out: crate::backend::DevicePtr,
) -> Result<Launch, ExecError> {
    let kernel = places.cache.kernel(places.gpu, &op.source()?, op.entry())?;
    Ok(Launch::Row {
        op,
        kernel,
        input: logits.ptr,
        ld_in: logits.ld,
        aux: crate::backend::DevicePtr::NULL,
        out,
        ld_out: 1,
        rows: RowCount::Rows,
    })
}

/// Layers of the KV pool and the bytes of each layer's `n_pages` pages
/// (the largest layer's, so that layer `l` starts at `l` times it).
fn kv_pool(graph: &Graph, opts: &PlanOptions, n_pages: usize) -> Result<(usize, usize), ExecError> {
    let (mut layers, mut bytes) = (0, 0);
    for id in graph.node_ids() {
        if let Op::KvCache { layer } = graph.node(id).op {
            let layout: KvLayout = kv_layout(graph, id, layer, opts)?;
            layout.validate()?;
            layers = layers.max(layer as usize + 1);
            bytes = bytes.max(layout.layer_bytes(n_pages));
        }
    }
    Ok((layers, bytes))
}

/// The largest quantized input rows and per-step repacked weights any
/// matmul's int8 prefill of up to `max_tokens` tokens uses (at least 16
/// bytes each, so that the buffers exist).
fn int8_scratch_bytes(
    graph: &Graph,
    opts: &PlanOptions,
    max_tokens: u32,
) -> Result<(usize, usize), ExecError> {
    let (mut xq, mut wq) = (16u64, 16u64);
    for id in graph.node_ids() {
        if matches!(graph.node(id).op, Op::MatMul(_)) {
            let spec = matmul_spec(graph, id, opts)?;
            for v in spec.variants(opts.vendor) {
                xq = xq.max(spec.xq_bytes(v, max_tokens));
                if !spec.copy_is_resident_only(v) {
                    wq = wq.max(spec.wq_bytes(v));
                }
            }
        }
    }
    Ok((xq as usize, wq as usize))
}

/// The scratch the attention of the largest layer needs over `context`
/// keys: decode's for steps of up to `tokens.1` decode tokens, and a
/// prefill's of up to `tokens.0` tokens in the most key splits `vendor`'s
/// kernel takes.
fn attention_scratch(
    graph: &Graph,
    opts: &PlanOptions,
    context: u32,
    (prefill_tokens, decode_tokens): (u32, u32),
    vendor: Vendor,
) -> usize {
    graph
        .node_ids()
        .filter_map(|id| match graph.node(id).op {
            Op::Attention(a) => Some(Places::attention_spec(&a, opts.page_size, opts.kv)),
            _ => None,
        })
        .map(|s| {
            let prefill = s.prefill_scratch_bytes(vendor, prefill_tokens, context);
            s.decode_scratch_bytes(context, decode_tokens).max(prefill)
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::KvType;
    use crate::ir::DimEnv;
    use crate::passes::test_graph::{build, Tiny};

    /// The GPU's pool holds exactly the bytes per token of its types
    /// (what `rfc serve --kv-memory` and `bench` count), per layer.
    #[test]
    fn the_kv_pool_takes_the_bytes_per_token_of_its_types() {
        let m = Tiny {
            d: 256,
            head_dim: 64,
            ..Tiny::qwen2()
        };
        let g = crate::passes::compile(build(&m).0, DimEnv::default())
            .unwrap()
            .graph;
        let n_pages = 64;
        for (k, v) in [
            (KvType::F16, KvType::F16),
            (KvType::Q8_0, KvType::Q8_0),
            (KvType::Q4_0, KvType::F16),
            (KvType::F32, KvType::IQ4NL),
        ] {
            let types = KvTypes { k, v };
            let opts = PlanOptions {
                kv: types,
                ..PlanOptions::default()
            };
            let (layers, layer_bytes) = kv_pool(&g, &opts, n_pages).unwrap();
            assert_eq!(layers, 2);
            let per_token = types.bytes_per_token(1, 2, 64);
            // 64 pages of 16 tokens: whole 256-byte runs, no padding.
            assert_eq!(layer_bytes, n_pages * 16 * per_token, "{types}");
        }
        // Q8_0: 34 bytes per 32 values against f16's 64.
        let size = |t| {
            let opts = PlanOptions {
                kv: KvTypes::both(t),
                ..PlanOptions::default()
            };
            kv_pool(&g, &opts, n_pages).unwrap().1
        };
        assert_eq!(size(KvType::F16) * 17, size(KvType::Q8_0) * 32);
    }
}
