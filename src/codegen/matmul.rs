//! The fused matmul kernels (matvec.hip for decode, matmul.hip for
//! prefill): `out = epilogue(prologue(x) · [W0, W1, ...]ᵀ)`.

use super::error::{unsupported, CodegenError};
use super::source::{gpu_supports, type_id, type_label, KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream};
use crate::quant::GgmlType;

/// Most weight segments one kernel reads (q, k, v; gate, up).
pub const MAX_SEGMENTS: usize = 4;

/// One weight matrix of the concatenation: `rows` output features of `k`
/// inputs each, in GGUF row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    pub ty: GgmlType,
    pub rows: u32,
    /// Whether a bias vector of `rows` f32 is added (Bias epilogue).
    pub bias: bool,
}

/// RoPE of the first `q_heads + k_heads` heads of each output row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeEpilogue {
    pub head_dim: u32,
    pub heads: u32,
    pub neox: bool,
    pub base: f32,
    /// Multiplies every angle (1 / linear scaling factor).
    pub freq_scale: f32,
    /// Pair `i`'s angle is divided by `rope_freqs[i]` (Llama-3.1-style
    /// frequency factors, `head_dim/2` f32 at [`MatMulArgs::freqs`]).
    pub freqs: bool,
}

impl RopeEpilogue {
    /// `base^(-2/head_dim)` in f32, as the CPU backend and llama.cpp form it.
    pub fn theta_scale(&self) -> f32 {
        self.base.powf(-2.0 / self.head_dim as f32)
    }
}

/// Writing K and V columns into the paged f16 KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KvEpilogue {
    pub k_col: u32,
    pub v_col: u32,
    pub kv_dim: u32,
    pub page_size: u32,
}

/// Everything that specializes one fused matmul.
#[derive(Debug, Clone, PartialEq)]
pub struct MatMulSpec {
    /// Input width.
    pub k: u32,
    pub segments: Vec<Segment>,
    /// RMSNorm prologue with this epsilon (operand `norm`, f32[k]).
    pub rms_eps: Option<f32>,
    pub rope: Option<RopeEpilogue>,
    pub kv: Option<KvEpilogue>,
    pub swiglu: bool,
    pub residual: bool,
}

/// Which kernel computes the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatMulVariant {
    /// matvec.hip: a warp per output pair, `tokens` tokens per pass.
    Vector { tokens: u32 },
    /// matmul.hip: 64 weight rows x `tokens` tokens per block.
    Tiled { tokens: u32 },
}

impl MatMulVariant {
    /// The variant for a step of up to `t` tokens: matvec for decode-sized
    /// steps, tiles beyond.
    pub fn for_tokens(t: u32) -> MatMulVariant {
        match t {
            0..=1 => MatMulVariant::Vector { tokens: 1 },
            2..=4 => MatMulVariant::Vector { tokens: 4 },
            5..=16 => MatMulVariant::Tiled { tokens: 16 },
            17..=32 => MatMulVariant::Tiled { tokens: 32 },
            _ => MatMulVariant::Tiled { tokens: 64 },
        }
    }
}

/// Warps per matvec block.
const MATVEC_WARPS: u32 = 8;

/// Warps that share one matvec item: long rows are split so that few-row
/// matrices still fill the GPU (1 up to K=512, then doubling, at most 8).
fn matvec_ksplit(k: u32) -> u32 {
    k.div_ceil(512).next_power_of_two().clamp(1, MATVEC_WARPS)
}

/// The device addresses and strides of one launch (row strides in
/// elements). Unused operands stay [`DevicePtr::NULL`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MatMulArgs {
    pub x: DevicePtr,
    pub ldx: u32,
    pub w: [DevicePtr; MAX_SEGMENTS],
    pub bias: [DevicePtr; MAX_SEGMENTS],
    pub norm: DevicePtr,
    pub residual: DevicePtr,
    pub ldr: u32,
    pub out: DevicePtr,
    pub ldo: u32,
    pub pos: DevicePtr,
    pub seq: DevicePtr,
    pub pages: DevicePtr,
    pub pages_per_seq: u32,
    /// The layer's KV cache (f16 rows of 2*kv_dim).
    pub kv: DevicePtr,
    /// Tokens of this step (T).
    pub tokens: u32,
    /// RoPE frequency factors (f32[head_dim/2]) when the spec has them.
    pub freqs: DevicePtr,
}

impl MatMulSpec {
    /// Rows of the concatenated weights.
    pub fn rows(&self) -> u32 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    /// Columns of the output (half the rows with SwiGLU).
    pub fn out_cols(&self) -> u32 {
        if self.swiglu {
            self.rows() / 2
        } else {
            self.rows()
        }
    }

    /// A label naming the specialization.
    pub fn label(&self, variant: MatMulVariant) -> String {
        let mut s = match variant {
            MatMulVariant::Vector { tokens } => format!("matvec_t{tokens}_k{}", self.k),
            MatMulVariant::Tiled { tokens } => format!("matmul_t{tokens}_k{}", self.k),
        };
        for seg in &self.segments {
            s += &format!("_{}x{}", type_label(seg.ty), seg.rows);
        }
        let flags = [
            (self.rms_eps.is_some(), "rms"),
            (self.segments.iter().any(|s| s.bias), "bias"),
            (self.rope.is_some(), "rope"),
            (self.rope.is_some_and(|r| r.freqs), "freqs"),
            (self.kv.is_some(), "kv"),
            (self.swiglu, "swiglu"),
            (self.residual, "res"),
        ];
        for (on, f) in flags {
            if on {
                s += "_";
                s += f;
            }
        }
        s
    }

    /// Checks the spec against what the templates cover.
    pub fn validate(&self) -> Result<(), CodegenError> {
        let name = "matmul";
        let n = self.segments.len();
        if n == 0 || n > MAX_SEGMENTS {
            return Err(unsupported(
                name,
                format!("{n} weight segments (1..={MAX_SEGMENTS})"),
            ));
        }
        if self.k == 0 || !self.k.is_multiple_of(32) {
            return Err(unsupported(
                name,
                format!("input width {} is not a multiple of 32", self.k),
            ));
        }
        for s in &self.segments {
            if !gpu_supports(s.ty) {
                return Err(unsupported(name, format!("weight type {}", s.ty.name())));
            }
            if !(self.k as usize).is_multiple_of(s.ty.block_len()) {
                return Err(unsupported(
                    name,
                    format!("k={} is not whole {} blocks", self.k, s.ty.name()),
                ));
            }
        }
        let rows = self.rows();
        if rows == 0 || !rows.is_multiple_of(2) {
            return Err(unsupported(
                name,
                format!("{rows} output rows (must be even)"),
            ));
        }
        if self.swiglu && (self.rope.is_some() || self.kv.is_some()) {
            return Err(unsupported(name, "SwiGLU together with RoPE or a KV store"));
        }
        if let Some(r) = self.rope {
            if r.head_dim == 0 || !r.head_dim.is_multiple_of(2) || r.heads * r.head_dim > rows {
                return Err(unsupported(
                    name,
                    format!("RoPE of {} heads of {} in {rows} rows", r.heads, r.head_dim),
                ));
            }
        }
        if let Some(kv) = self.kv {
            let fits = |c: u32| c.checked_add(kv.kv_dim).is_some_and(|e| e <= rows);
            if kv.kv_dim == 0 || kv.page_size == 0 || !fits(kv.k_col) || !fits(kv.v_col) {
                return Err(unsupported(name, format!("KV store {kv:?} in {rows} rows")));
            }
        }
        Ok(())
    }

    /// The specialized source of `variant`.
    pub fn source(&self, variant: MatMulVariant) -> Result<KernelSource, CodegenError> {
        self.validate()?;
        let (template, entry) = match variant {
            MatMulVariant::Vector { .. } => (Template::MatVec, "matvec"),
            MatMulVariant::Tiled { .. } => (Template::MatMul, "matmul"),
        };
        let mut src =
            KernelSource::new(template, self.label(variant), &[entry]).define("K", self.k);
        src = match variant {
            MatMulVariant::Vector { tokens } => {
                let ks = matvec_ksplit(self.k);
                src.define("NT", tokens)
                    .define("KSPLIT", ks)
                    .define("IPB", MATVEC_WARPS / ks)
            }
            MatMulVariant::Tiled { tokens } => {
                if !matches!(tokens, 16 | 32 | 48 | 64) {
                    return Err(unsupported(
                        "matmul",
                        format!("token tile {tokens} (16, 32, 48 or 64)"),
                    ));
                }
                src.define("TM", tokens)
            }
        };
        for (i, s) in self.segments.iter().enumerate() {
            src = src
                .define(&format!("SEG{i}_TYPE"), type_id(s.ty))
                .define(&format!("SEG{i}_ROWS"), s.rows)
                .define(&format!("SEG{i}_BIAS"), s.bias as u32);
        }
        if let Some(eps) = self.rms_eps {
            src = src
                .define("PROLOGUE_RMS", 1)
                .define_f32_bits("EPS_BITS", eps);
        }
        if self.segments.iter().any(|s| s.bias) {
            src = src.define("EPI_BIAS", 1);
        }
        if let Some(r) = self.rope {
            src = src
                .define("EPI_ROPE", 1)
                .define("ROPE_HD", r.head_dim)
                .define("ROPE_HEADS", r.heads)
                .define("ROPE_NEOX", r.neox as u32)
                .define_f32_bits("ROPE_THETA_SCALE_BITS", r.theta_scale())
                .define_f32_bits("ROPE_FREQ_SCALE_BITS", r.freq_scale);
            if r.freqs {
                src = src.define("ROPE_FREQS", 1);
            }
        }
        if let Some(kv) = self.kv {
            src = src
                .define("EPI_KV", 1)
                .define("KV_K_COL", kv.k_col)
                .define("KV_V_COL", kv.v_col)
                .define("KV_DIM", kv.kv_dim)
                .define("PAGE_SIZE", kv.page_size);
        }
        if self.swiglu {
            src = src.define("EPI_SWIGLU", 1).define("FF", self.rows() / 2);
        }
        if self.residual {
            src = src.define("EPI_RESIDUAL", 1);
        }
        Ok(src)
    }

    /// Grid and block for `tokens` tokens.
    pub fn dims(&self, variant: MatMulVariant, tokens: u32, warp: u32) -> LaunchDims {
        let items = self.rows() / 2;
        match variant {
            MatMulVariant::Vector { tokens: nt } => {
                let ipb = MATVEC_WARPS / matvec_ksplit(self.k);
                LaunchDims::new(
                    [items.div_ceil(ipb), tokens.div_ceil(nt).max(1), 1],
                    MATVEC_WARPS * warp,
                )
            }
            MatMulVariant::Tiled { tokens: tm } => {
                LaunchDims::new([items.div_ceil(32), tokens.div_ceil(tm).max(1), 1], 256)
            }
        }
    }

    /// Queues the kernel (compiled from [`source`](Self::source) of the
    /// same variant) for `args.tokens` tokens.
    ///
    /// # Safety
    /// Every pointer of `args` must address device memory of the sizes
    /// docs/KERNELS.md states for this spec, valid until the work is done.
    pub unsafe fn launch(
        &self,
        kernel: &Kernel,
        stream: &Stream,
        variant: MatMulVariant,
        warp: u32,
        a: &MatMulArgs,
    ) -> Result<()> {
        if a.tokens == 0 {
            return Ok(());
        }
        let args = KernelArgs::new()
            .ptr(a.x)
            .u32(a.ldx)
            .ptr(a.w[0])
            .ptr(a.w[1])
            .ptr(a.w[2])
            .ptr(a.w[3])
            .ptr(a.bias[0])
            .ptr(a.bias[1])
            .ptr(a.bias[2])
            .ptr(a.bias[3])
            .ptr(a.norm)
            .ptr(a.residual)
            .u32(a.ldr)
            .ptr(a.out)
            .u32(a.ldo)
            .ptr(a.pos)
            .ptr(a.seq)
            .ptr(a.pages)
            .u32(a.pages_per_seq)
            .ptr(a.kv)
            .u32(a.tokens)
            .ptr(a.freqs);
        kernel.launch(stream, self.dims(variant, a.tokens, warp), &args)
    }
}
