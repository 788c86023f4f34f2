//! Element-wise kernels of the unfused graph (elementwise.hip).

use super::matmul::RopeEpilogue;
use super::source::{KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream};

const BLOCK: u32 = 256;
/// Grid cap of the grid-stride loops.
const MAX_BLOCKS: u64 = 4096;

/// add, mul and silu share one unspecialized source.
pub fn binary_source() -> KernelSource {
    KernelSource::new(
        Template::Elementwise,
        "elementwise",
        &["add", "mul", "silu_kernel"],
    )
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

/// `out[i] = silu(x[i])` (`silu_kernel`).
///
/// # Safety
/// `x`, `out`: `n` floats.
pub unsafe fn launch_silu(
    kernel: &Kernel,
    stream: &Stream,
    x: DevicePtr,
    out: DevicePtr,
    n: u64,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    kernel.launch(
        stream,
        grid(n),
        &push_u64(KernelArgs::new().ptr(x).ptr(out), n),
    )
}

fn push_u64(a: KernelArgs, v: u64) -> KernelArgs {
    // An 8-byte slot holds the whole value.
    a.ptr(DevicePtr(v))
}

/// Standalone RoPE (in place).
pub fn rope_source(r: &RopeEpilogue) -> KernelSource {
    KernelSource::new(
        Template::Elementwise,
        format!("rope_h{}_d{}", r.heads, r.head_dim),
        &["rope"],
    )
    .define("ROPE_HD", r.head_dim)
    .define("ROPE_HEADS", r.heads)
    .define("ROPE_NEOX", r.neox as u32)
    .define_f32_bits("ROPE_THETA_SCALE_BITS", r.theta_scale())
    .define_f32_bits("ROPE_FREQ_SCALE_BITS", r.freq_scale)
}

/// Rotates `x` (`[tokens, ld]`) in place.
///
/// # Safety
/// `x`: `tokens * ld` floats; `pos`: `tokens` i32.
pub unsafe fn launch_rope(
    kernel: &Kernel,
    stream: &Stream,
    x: DevicePtr,
    ld: u32,
    pos: DevicePtr,
    tokens: u32,
) -> Result<()> {
    if tokens == 0 {
        return Ok(());
    }
    let args = KernelArgs::new().ptr(x).u32(ld).ptr(pos).u32(tokens);
    kernel.launch(stream, LaunchDims::new([tokens, 1, 1], BLOCK), &args)
}
