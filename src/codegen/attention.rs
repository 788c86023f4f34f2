//! Attention kernels (attention.hip): split-K decode + combine, and tiled
//! causal prefill, over the paged f16 KV cache.

use super::error::{unsupported, CodegenError};
use super::source::{KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream};

/// Everything that specializes the attention kernels of one layer shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionKernelSpec {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub scale: f32,
    pub window: Option<u32>,
    pub page_size: u32,
}

/// Prefill tile: queries and keys.
const QT: u32 = 16;

/// Device addresses of one attention launch.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttentionArgs {
    /// Queries: row t, head h at `q + (t*ldq + h*head_dim)` floats (the q
    /// columns of the QKV matmul's output).
    pub q: DevicePtr,
    pub ldq: u32,
    /// The layer's KV cache.
    pub kv: DevicePtr,
    pub pos: DevicePtr,
    pub seq: DevicePtr,
    pub pages: DevicePtr,
    pub pages_per_seq: u32,
    pub out: DevicePtr,
    pub ldo: u32,
    pub tokens: u32,
    /// Decode only: scratch of [`AttentionKernelSpec::scratch_bytes`].
    pub scratch: DevicePtr,
    /// Decode only: chunks per token the grid covers (≥ the longest
    /// token's keys / chunk; see [`AttentionKernelSpec::chunks_for`]).
    pub max_chunks: u32,
}

impl AttentionKernelSpec {
    /// Keys per decode chunk (= decode block threads).
    pub fn chunk(&self) -> u32 {
        self.head_dim.max(128)
    }

    /// Prefill key tile: the K and V tiles fill at most ~34 KB of shared
    /// memory together.
    fn key_tile(&self) -> u32 {
        if self.head_dim <= 64 {
            64
        } else {
            32
        }
    }

    /// Decode chunks needed for keys up to `max_kv_len` positions.
    pub fn chunks_for(&self, max_kv_len: u32) -> u32 {
        max_kv_len.div_ceil(self.chunk()).max(1)
    }

    /// Scratch bytes decode needs for `tokens` tokens and `max_chunks`.
    pub fn scratch_bytes(&self, tokens: u32, max_chunks: u32) -> usize {
        tokens as usize
            * self.n_heads as usize
            * max_chunks as usize
            * (self.head_dim as usize + 2)
            * 4
    }

    pub fn label(&self) -> String {
        let mut s = format!(
            "attention_h{}_kv{}_d{}_p{}",
            self.n_heads, self.n_kv_heads, self.head_dim, self.page_size
        );
        if let Some(w) = self.window {
            s += &format!("_w{w}");
        }
        s
    }

    pub fn validate(&self) -> Result<(), CodegenError> {
        let bad = |r: String| Err(unsupported("attention", r));
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} heads over {} kv heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !matches!(self.head_dim, 32 | 64 | 80 | 96 | 128 | 256)
            || !self.head_dim.is_multiple_of(16)
        {
            return bad(format!("head_dim {}", self.head_dim));
        }
        if self.page_size == 0 {
            return bad("page size 0".into());
        }
        if self.n_heads / self.n_kv_heads > 16 {
            return bad(format!(
                "{} query heads per kv head (at most 16)",
                self.n_heads / self.n_kv_heads
            ));
        }
        Ok(())
    }

    /// One source with the three entry points.
    pub fn source(&self) -> Result<KernelSource, CodegenError> {
        self.validate()?;
        if !self.chunk().is_multiple_of(self.head_dim) {
            return Err(unsupported(
                "attention",
                format!("head_dim {} does not divide the chunk", self.head_dim),
            ));
        }
        Ok(KernelSource::new(
            Template::Attention,
            self.label(),
            &["attn_decode", "attn_combine", "attn_prefill"],
        )
        .define("HD", self.head_dim)
        .define("NH", self.n_heads)
        .define("NKV", self.n_kv_heads)
        .define("PAGE_SIZE", self.page_size)
        .define_f32_bits("SCALE_BITS", self.scale)
        .define("WINDOW", self.window.unwrap_or(0))
        .define("CH", self.chunk())
        .define("QT", QT)
        .define("KT", self.key_tile()))
    }

    /// Queues decode: partial chunks, then their combination.
    ///
    /// # Safety
    /// Pointers as docs/KERNELS.md states; `scratch` of
    /// [`scratch_bytes`](Self::scratch_bytes)`(tokens, max_chunks)`.
    pub unsafe fn launch_decode(
        &self,
        decode: &Kernel,
        combine: &Kernel,
        stream: &Stream,
        a: &AttentionArgs,
    ) -> Result<()> {
        if a.tokens == 0 {
            return Ok(());
        }
        let args = KernelArgs::new()
            .ptr(a.q)
            .u32(a.ldq)
            .ptr(a.kv)
            .ptr(a.pos)
            .ptr(a.seq)
            .ptr(a.pages)
            .u32(a.pages_per_seq)
            .ptr(a.scratch)
            .u32(a.max_chunks)
            .u32(a.tokens);
        let dims = LaunchDims::new(
            [a.max_chunks.max(1), self.n_kv_heads, a.tokens],
            self.chunk(),
        );
        decode.launch(stream, dims, &args)?;
        let args = KernelArgs::new()
            .ptr(a.scratch)
            .u32(a.max_chunks)
            .ptr(a.pos)
            .ptr(a.out)
            .u32(a.ldo)
            .u32(a.tokens);
        combine.launch(
            stream,
            LaunchDims::new([self.n_heads, a.tokens, 1], self.head_dim),
            &args,
        )
    }

    /// Queues the tiled prefill kernel.
    ///
    /// # Safety
    /// Pointers as docs/KERNELS.md states.
    pub unsafe fn launch_prefill(
        &self,
        prefill: &Kernel,
        stream: &Stream,
        a: &AttentionArgs,
    ) -> Result<()> {
        if a.tokens == 0 {
            return Ok(());
        }
        let args = KernelArgs::new()
            .ptr(a.q)
            .u32(a.ldq)
            .ptr(a.kv)
            .ptr(a.pos)
            .ptr(a.seq)
            .ptr(a.pages)
            .u32(a.pages_per_seq)
            .ptr(a.out)
            .u32(a.ldo)
            .u32(a.tokens);
        let dims = LaunchDims::new([a.tokens.div_ceil(QT), self.n_heads, 1], 256);
        prefill.launch(stream, dims, &args)
    }
}
