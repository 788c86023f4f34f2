//! Row-wise kernels (rows.hip): embedding gather, RMSNorm, per-head
//! RMSNorm, gather of logit rows, argmax, top candidates. One block per row: 256 threads,
//! [`TOPK_BLOCK`] for the top candidates (whose sort takes a pair per
//! thread).

use super::error::{unsupported, CodegenError};
use super::source::{gpu_supports, type_id, type_label, KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream};
use crate::quant::GgmlType;

const BLOCK: u32 = 256;

/// The top-candidates kernel's block: a power of two (its bitonic sort),
/// at least the candidates.
pub const TOPK_BLOCK: u32 = 1024;

/// Candidates per logits row the device returns for host sampling
/// ([`RowOp::TopK`]): llama.cpp's default top-k of 40 with up to eight
/// end-of-generation tokens masked, greedy decoding, and OpenAI's 20 top
/// log-probabilities.
pub const TOP_CANDIDATES: u32 = 48;

/// A row-wise op and its constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowOp {
    /// `out[t] = dequant(table[tokens[t]])`, table `[vocab, dim]`.
    Embed { ty: GgmlType, dim: u32, vocab: u32 },
    /// `out[t] = x[t] / rms(x[t]) * g`.
    RmsNorm { dim: u32, eps: f32 },
    /// The same per head of `head_dim` columns, `heads` of them per row,
    /// with one head's weights `g` (Qwen3's and Gemma 3's Q/K norm).
    HeadRmsNorm { head_dim: u32, heads: u32, eps: f32 },
    /// `out[r] = x[rows[r]]`.
    GatherRows { dim: u32 },
    /// `out[r] = argmax(logits[r])` (i32; first of equal maxima).
    Argmax { n: u32 },
    /// The `k` largest of `n` logits per row, with the row's log-sum-exp:
    /// `2k + 1` 32-bit words per row (ids, logits, log-sum-exp).
    TopK { n: u32, k: u32 },
}

impl RowOp {
    pub fn entry(&self) -> &'static str {
        match self {
            RowOp::Embed { .. } => "embed",
            RowOp::RmsNorm { .. } => "rms_norm",
            RowOp::HeadRmsNorm { .. } => "head_rms_norm",
            RowOp::GatherRows { .. } => "gather_rows",
            RowOp::Argmax { .. } => "argmax",
            RowOp::TopK { .. } => "topk",
        }
    }

    pub fn source(&self) -> Result<KernelSource, CodegenError> {
        let e = self.entry();
        let src = match *self {
            RowOp::Embed { ty, dim, vocab } => {
                if !gpu_supports(ty)
                    || !dim.is_multiple_of(32)
                    || !(dim as usize).is_multiple_of(ty.block_len())
                {
                    return Err(unsupported(
                        e,
                        format!("{} table of width {dim}", ty.name()),
                    ));
                }
                KernelSource::new(
                    Template::Rows,
                    format!("embed_{}_d{dim}", type_label(ty)),
                    &[e],
                )
                .reading(ty)
                .define("EMBED_TYPE", type_id(ty))
                .define("D", dim)
                .define("V", vocab)
            }
            RowOp::RmsNorm { dim, eps } => {
                KernelSource::new(Template::Rows, format!("rms_norm_d{dim}"), &[e])
                    .define("NORM_D", dim)
                    .define_f32_bits("EPS_BITS", eps)
            }
            RowOp::HeadRmsNorm {
                head_dim,
                heads,
                eps,
            } => KernelSource::new(
                Template::Rows,
                format!("head_rms_norm_h{heads}_d{head_dim}"),
                &[e],
            )
            .define("HEAD_NORM_D", head_dim)
            .define("HEAD_NORM_HEADS", heads)
            .define_f32_bits("EPS_BITS", eps),
            RowOp::GatherRows { dim } => {
                KernelSource::new(Template::Rows, format!("gather_rows_d{dim}"), &[e])
                    .define("GATHER_D", dim)
            }
            RowOp::Argmax { n } => KernelSource::new(Template::Rows, format!("argmax_n{n}"), &[e])
                .define("ARGMAX_N", n),
            RowOp::TopK { n, k } => {
                KernelSource::new(Template::Rows, format!("topk_n{n}_k{k}"), &[e])
                    .define("TOPK_N", n)
                    .define("TOPK_K", k)
                    .define("TOPK_BLOCK", TOPK_BLOCK)
            }
        };
        Ok(src)
    }

    /// Queues the op over `rows` rows. `idx` is the token ids (Embed) or
    /// row indices (GatherRows); `aux` the norm weights (RmsNorm); strides
    /// in elements.
    ///
    /// # Safety
    /// Pointers as docs/KERNELS.md states for the op.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn launch(
        &self,
        kernel: &Kernel,
        stream: &Stream,
        input: DevicePtr,
        ld_in: u32,
        idx_or_aux: DevicePtr,
        out: DevicePtr,
        ld_out: u32,
        rows: u32,
    ) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let args = match self {
            RowOp::Embed { .. } => KernelArgs::new()
                .ptr(input)
                .ptr(idx_or_aux)
                .ptr(out)
                .u32(ld_out)
                .u32(rows),
            RowOp::RmsNorm { .. } | RowOp::HeadRmsNorm { .. } | RowOp::GatherRows { .. } => {
                KernelArgs::new()
                    .ptr(input)
                    .u32(ld_in)
                    .ptr(idx_or_aux)
                    .ptr(out)
                    .u32(ld_out)
                    .u32(rows)
            }
            RowOp::Argmax { .. } | RowOp::TopK { .. } => {
                KernelArgs::new().ptr(input).u32(ld_in).ptr(out).u32(rows)
            }
        };
        let block = match self {
            RowOp::TopK { .. } => TOPK_BLOCK,
            _ => BLOCK,
        };
        kernel.launch(stream, LaunchDims::new([rows, 1, 1], block), &args)
    }
}
