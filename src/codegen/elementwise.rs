//! Element-wise kernels of the unfused graph (elementwise.hip).

use super::matmul::RopeEpilogue;
use super::source::{KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream};

const BLOCK: u32 = 256;
/// Grid cap of the grid-stride loops.
const MAX_BLOCKS: u64 = 4096;

/// add, mul and the unary ops share one unspecialized source.
pub fn binary_source() -> KernelSource {
    KernelSource::new(
        Template::Elementwise,
        "elementwise",
        &[
            "add",
            "mul",
            UnaryOp::Silu.entry(),
            UnaryOp::Gelu.entry(),
            UnaryOp::Scale(1.0).entry(),
            UnaryOp::SoftCap(1.0).entry(),
        ],
    )
}

/// An element-wise op of one operand, its constant a kernel argument (so
/// one compiled source serves every value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// `x * sigmoid(x)`.
    Silu,
    /// The tanh GELU (the CPU backend's `gelu_tanh`).
    Gelu,
    /// `x * factor` (Gemma's embedding scale).
    Scale(f32),
    /// `cap * tanh(x / cap)` (Gemma 2's final logits).
    SoftCap(f32),
}

impl UnaryOp {
    pub fn entry(self) -> &'static str {
        match self {
            UnaryOp::Silu => "silu_kernel",
            UnaryOp::Gelu => "gelu_kernel",
            UnaryOp::Scale(_) => "scale_kernel",
            UnaryOp::SoftCap(_) => "softcap_kernel",
        }
    }

    /// The kernel's constant argument.
    fn constant(self) -> f32 {
        match self {
            UnaryOp::Silu | UnaryOp::Gelu => 0.0,
            UnaryOp::Scale(c) | UnaryOp::SoftCap(c) => c,
        }
    }
}

fn grid(n: u64) -> LaunchDims {
    LaunchDims::new(
        [n.div_ceil(BLOCK as u64).clamp(1, MAX_BLOCKS) as u32, 1, 1],
        BLOCK,
    )
}

/// `out[i] = a[i] (+ or *) b[i % b_len]` for `add`/`mul`.
///
/// # Safety
/// `a`, `out`: `n` floats; `b`: `b_len` floats.
pub unsafe fn launch_binary(
    kernel: &Kernel,
    stream: &Stream,
    a: DevicePtr,
    b: DevicePtr,
    out: DevicePtr,
    n: u64,
    b_len: u64,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let args = KernelArgs::new().ptr(a).ptr(b).ptr(out);
    let args = push_u64(push_u64(args, n), b_len.max(1));
    kernel.launch(stream, grid(n), &args)
}

/// `out[i] = op(x[i])` with `op`'s kernel (`UnaryOp::entry`).
///
/// # Safety
/// `x`, `out`: `n` floats (`out` may be `x`).
pub unsafe fn launch_unary(
    op: UnaryOp,
    kernel: &Kernel,
    stream: &Stream,
    x: DevicePtr,
    out: DevicePtr,
    n: u64,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let args = push_u64(KernelArgs::new().ptr(x).ptr(out), n).f32(op.constant());
    kernel.launch(stream, grid(n), &args)
}

fn push_u64(a: KernelArgs, v: u64) -> KernelArgs {
    // An 8-byte slot holds the whole value.
    a.ptr(DevicePtr(v))
}

/// Standalone RoPE: the heads of a value whose Q/K norm came between the
/// projection and the rotation (Qwen3, Gemma 3), which the QKV epilogue
/// cannot take (the norm sums a whole head first).
pub fn rope_source(r: &RopeEpilogue) -> KernelSource {
    let label = format!(
        "rope_h{}_d{}{}{}",
        r.heads,
        r.head_dim,
        if r.neox { "_neox" } else { "" },
        r.label_tag()
    );
    r.define(KernelSource::new(Template::Elementwise, label, &["rope"]))
}

/// Device addresses of a standalone RoPE.
#[derive(Debug, Clone, Copy, Default)]
pub struct RopeArgs {
    pub x: DevicePtr,
    pub ldx: u32,
    /// May be `x` (in place).
    pub out: DevicePtr,
    pub ldo: u32,
    pub pos: DevicePtr,
    /// `head_dim/2` f32 factors where the source has `ROPE_FREQS`.
    pub freqs: DevicePtr,
    pub tokens: u32,
}

/// Rotates the heads of `x` (`[tokens, ldx]`) into `out` (`[tokens, ldo]`).
///
/// # Safety
/// `x`, `out`: `tokens` rows of their strides; `pos`: `tokens` i32;
/// `freqs` as [`RopeArgs::freqs`].
pub unsafe fn launch_rope(kernel: &Kernel, stream: &Stream, a: &RopeArgs) -> Result<()> {
    if a.tokens == 0 {
        return Ok(());
    }
    let args = KernelArgs::new()
        .ptr(a.x)
        .u32(a.ldx)
        .ptr(a.out)
        .u32(a.ldo)
        .ptr(a.pos)
        .ptr(a.freqs)
        .u32(a.tokens);
    kernel.launch(stream, LaunchDims::new([a.tokens, 1, 1], BLOCK), &args)
}
