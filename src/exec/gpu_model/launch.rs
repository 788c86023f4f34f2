//! One kernel launch per node of the compiled graph, with every device
//! address resolved when the model is built: a step only fills in its
//! token and row counts, so the same list is queued directly or captured
//! once as a graph.

use super::inputs::StepShape;
use crate::backend::{DevicePtr, Kernel, Stream};
use crate::codegen::elementwise::{self as ew, RopeArgs, UnaryOp};
use crate::codegen::{
    AttentionArgs, AttentionKernelSpec, ExpertsArgs, ExpertsSpec, KvStoreArgs, KvStoreSpec,
    MatMulArgs, MatMulKernel, MatMulSpec, MatMulVariant, RouterSpec, RowOp,
};
use crate::exec::ExecError;

/// How many rows a node has in a step: its first dim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCount {
    /// `T`.
    Tokens,
    /// `R` (logit rows).
    Rows,
    /// A fixed count.
    Fixed(u32),
}

impl RowCount {
    pub fn of(self, s: StepShape) -> u32 {
        match self {
            RowCount::Tokens => s.tokens,
            RowCount::Rows => s.rows,
            RowCount::Fixed(n) => n,
        }
    }
}

/// A node's kernel and its arguments.
pub enum Launch {
    /// Embedding, RMSNorm (whole rows or per head) or row gather
    /// (`RowOp::launch`'s arguments).
    Row {
        op: RowOp,
        kernel: Kernel,
        input: DevicePtr,
        ld_in: u32,
        aux: DevicePtr,
        out: DevicePtr,
        ld_out: u32,
        rows: RowCount,
    },
    /// A fused matmul, one compiled kernel per variant.
    MatMul {
        spec: MatMulSpec,
        kernels: Vec<(MatMulVariant, MatMulKernel)>,
        args: MatMulArgs,
        rows: RowCount,
        warp: u32,
        /// The variant per step size measured on this GPU (tune.rs);
        /// empty: the stated defaults.
        tuned: super::tune::VariantTable,
    },
    Attention {
        spec: AttentionKernelSpec,
        decode: Kernel,
        combine: Kernel,
        prefill: Kernel,
        args: AttentionArgs,
    },
    /// `add`/`mul` over contiguous rows; `b` is one row broadcast when
    /// `b_row` is set.
    Binary {
        kernel: Kernel,
        a: DevicePtr,
        b: DevicePtr,
        out: DevicePtr,
        cols: u64,
        b_row: bool,
        rows: RowCount,
    },
    /// silu, gelu, scale or softcap over contiguous rows.
    Unary {
        op: UnaryOp,
        kernel: Kernel,
        x: DevicePtr,
        out: DevicePtr,
        cols: u64,
        rows: RowCount,
    },
    /// A standalone RoPE (after a per-head Q/K norm), one row per token.
    Rope { kernel: Kernel, args: RopeArgs },
    /// Keys and values into the cache (a standalone store, or the one
    /// after a QKV matmul whose epilogue leaves the cache's types to it).
    KvStore {
        spec: KvStoreSpec,
        kernel: Kernel,
        args: KvStoreArgs,
    },
    /// The mixture-of-experts router over a step's router logits.
    Router {
        spec: RouterSpec,
        kernel: Kernel,
        logits: DevicePtr,
        ld: u32,
        out: DevicePtr,
        ldo: u32,
        rows: RowCount,
    },
    /// The routed feed-forward: the RMSNorm prologue's row kernel (if
    /// fused) into the normalized scratch, then the slots in order.
    Experts {
        spec: ExpertsSpec,
        norm: Option<Box<Launch>>,
        up: Kernel,
        down: Kernel,
        args: ExpertsArgs,
        warp: u32,
        rows: RowCount,
    },
}

impl Launch {
    /// What runs for a step of `shape`, as a profile names it: the
    /// kernel's label (a matmul's variant for that many rows; attention's
    /// decode and prefill tokens).
    pub fn label(&self, stream: &Stream, shape: StepShape) -> String {
        match self {
            Launch::Row { op, .. } => op.entry().to_string(),
            Launch::MatMul {
                spec, rows, tuned, ..
            } => spec.label(variant(spec, tuned, stream, rows.of(shape))),
            Launch::Attention { spec, .. } => {
                let d = shape.decode_tokens;
                format!("{} decode {d} prefill {}", spec.label(), shape.tokens - d)
            }
            Launch::Binary { b_row, .. } => format!("binary{}", if *b_row { "_row" } else { "" }),
            Launch::Unary { op, .. } => op.entry().trim_end_matches("_kernel").into(),
            Launch::Rope { .. } => "rope".into(),
            Launch::KvStore { spec, .. } => spec.label(),
            Launch::Router { .. } => RouterSpec::ENTRY.into(),
            Launch::Experts { spec, .. } => format!("experts k{}", spec.top_k),
        }
    }

    /// Queues the launch for a step of `shape`.
    ///
    /// # Safety
    /// The addresses were resolved from buffers the model owns, sized for
    /// the plan's limits; `shape` must be within those limits (checked by
    /// `inputs::check`) and the step's inputs written to the device.
    pub unsafe fn enqueue(&self, stream: &Stream, shape: StepShape) -> Result<(), ExecError> {
        match self {
            Launch::Row {
                op,
                kernel,
                input,
                ld_in,
                aux,
                out,
                ld_out,
                rows,
            } => op.launch(
                kernel,
                stream,
                *input,
                *ld_in,
                *aux,
                *out,
                *ld_out,
                rows.of(shape),
            )?,
            Launch::MatMul {
                spec,
                kernels,
                args,
                rows,
                warp,
                tuned,
            } => {
                let t = rows.of(shape);
                let variant = variant(spec, tuned, stream, t);
                let kernel = kernels
                    .iter()
                    .find(|(v, _)| *v == variant)
                    .map(|(_, k)| k)
                    .ok_or_else(|| ExecError::Unsupported {
                        node: spec.label(variant),
                        kind: "matmul",
                        reason: "the variant was not compiled".into(),
                    })?;
                let a = MatMulArgs { tokens: t, ..*args };
                spec.launch(kernel, stream, variant, *warp, &a)?
            }
            Launch::Attention {
                spec,
                decode,
                combine,
                prefill,
                args,
            } => {
                // The leading decodes through the split-K kernel, the
                // prefill chunks after them through the tiled one (both
                // compute the same function; each token's keys are its
                // own sequence's).
                let d = shape.decode_tokens;
                let context = args.pages_per_seq * spec.page_size;
                let a = AttentionArgs {
                    tokens: d,
                    max_chunks: spec.decode_chunks(context, d),
                    ..*args
                };
                spec.launch_decode(decode, combine, stream, &a)?;
                let rest = shape.tokens - d;
                if rest > 0 {
                    let info = stream.gpu().info();
                    let splits =
                        spec.prefill_splits(info.vendor, rest, shape.keys, info.multiprocessors);
                    let (d, f) = (d as usize, std::mem::size_of::<f32>());
                    let i = std::mem::size_of::<i32>();
                    let a = AttentionArgs {
                        q: args.q.offset(d * args.ldq as usize * f),
                        pos: args.pos.offset(d * i),
                        seq: args.seq.offset(d * i),
                        out: args.out.offset(d * args.ldo as usize * f),
                        tokens: rest,
                        ..*args
                    };
                    spec.launch_prefill(prefill, combine, stream, &a, splits)?
                }
            }
            Launch::Binary {
                kernel,
                a,
                b,
                out,
                cols,
                b_row,
                rows,
            } => {
                let n = rows.of(shape) as u64 * cols;
                let b_len = if *b_row { *cols } else { n };
                ew::launch_binary(kernel, stream, *a, *b, *out, n, b_len)?
            }
            Launch::Unary {
                op,
                kernel,
                x,
                out,
                cols,
                rows,
            } => ew::launch_unary(*op, kernel, stream, *x, *out, rows.of(shape) as u64 * cols)?,
            Launch::Rope { kernel, args } => {
                let a = RopeArgs {
                    tokens: shape.tokens,
                    ..*args
                };
                ew::launch_rope(kernel, stream, &a)?
            }
            Launch::KvStore { spec, kernel, args } => {
                let a = KvStoreArgs {
                    tokens: shape.tokens,
                    ..*args
                };
                spec.launch(kernel, stream, &a)?
            }
            Launch::Router {
                spec,
                kernel,
                logits,
                ld,
                out,
                ldo,
                rows,
            } => spec.launch(kernel, stream, *logits, *ld, *out, *ldo, rows.of(shape))?,
            Launch::Experts {
                spec,
                norm,
                up,
                down,
                args,
                warp,
                rows,
            } => {
                if let Some(n) = norm {
                    n.enqueue(stream, shape)?;
                }
                let a = ExpertsArgs {
                    tokens: rows.of(shape),
                    ..*args
                };
                spec.launch(up, down, stream, *warp, &a)?
            }
        }
        Ok(())
    }
}

/// The variant of a step of `t` tokens: measured on this GPU where it was,
/// else the stated default.
fn variant(
    spec: &MatMulSpec,
    tuned: &super::tune::VariantTable,
    stream: &Stream,
    t: u32,
) -> MatMulVariant {
    super::tune::pick(tuned, t).unwrap_or_else(|| {
        let info = stream.gpu().info();
        spec.variant_for(t, info.multiprocessors, info.vendor)
    })
}
