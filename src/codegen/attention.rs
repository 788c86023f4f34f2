//! Attention kernels (attention.hip): split-K decode + combine, and tiled
//! causal prefill, over the paged KV cache in its element types
//! ([`KvLayout`]), read as they are stored (no dequantized copy).

use super::error::{unsupported, CodegenError};
use super::kv_layout::KvLayout;
use super::source::{KernelSource, Template};
use crate::backend::{
    BackendError, DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream, Vendor,
};
use crate::exec::cpu::KvTypes;

/// Everything that specializes the attention kernels of one layer shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionKernelSpec {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub scale: f32,
    pub window: Option<u32>,
    pub page_size: u32,
    /// Element types of the cached keys and values.
    pub kv: KvTypes,
    /// Gemma 2: each scaled score s becomes `cap·tanh(s / cap)` before the
    /// softmax (`SOFTCAP_BITS`).
    pub softcap: Option<f32>,
}

/// The staged prefill kernel's query tile (rows of the matrix-unit
/// products).
const STAGED_QT: u32 = 32;

/// The flash prefill kernel's (queries, keys) per block and tile: four
/// warps of 16 query rows, 64-key tiles (H100: llama8b pp512 @ d4096
/// 4,289 -> 5,424 t/s against the staged kernel).
const FLASH_TILES: (u32, u32) = (64, 64);

/// Fewest keys one decode split handles (the kernel's SPLIT_MIN): splits
/// are multiples of it, so a short context uses few splits.
const SPLIT_MIN: u32 = 32;

/// Decode blocks per token the splits aim at (several per SM of a large
/// GPU), and the most splits per kv head (bounds attn_combine's loop).
const DECODE_BLOCKS: u32 = 512;
const MAX_SPLITS: u32 = 64;

/// attn_combine's block, at most: several groups of head_dim threads share
/// the splits ([`AttentionKernelSpec::combine_threads`]).
const COMBINE_THREADS: u32 = 512;

/// Most key splits of a prefill step (flash kernel), and the fewest keys
/// one split takes: a long context's few query tiles spread over the GPU,
/// a short one keeps one split (no partials to merge).
pub const MAX_PREFILL_SPLITS: u32 = 8;
const PREFILL_SPLIT_MIN_KEYS: u32 = 512;

/// Flash prefill blocks an SM holds at once (128 threads of ~250
/// registers: two), and how many blocks per such slot the splits aim at.
const FLASH_BLOCKS_PER_SM: u32 = 2;
const PREFILL_FILL: (u32, u32) = (3, 2);

/// Device addresses of one attention launch.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttentionArgs {
    /// Queries: row t, head h at `q + (t*ldq + h*head_dim)` floats (the q
    /// columns of the QKV matmul's output).
    pub q: DevicePtr,
    pub ldq: u32,
    /// The layer's KV cache ([`KvLayout::layer_bytes`]).
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
    /// Decode only: splits per token and kv head (the grid's x; any value
    /// from 1 to `MAX_SPLITS` covers every key, see
    /// [`AttentionKernelSpec::chunks_for`]).
    pub max_chunks: u32,
}

impl AttentionKernelSpec {
    /// The paged cache the kernels read.
    pub fn layout(&self) -> KvLayout {
        KvLayout {
            types: self.kv,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            page_size: self.page_size,
        }
    }

    /// The kernels of an IR attention op, with `page_size`-token KV pages
    /// of `kv`'s element types.
    pub fn of(a: &crate::ir::AttentionSpec, page_size: u32, kv: KvTypes) -> AttentionKernelSpec {
        AttentionKernelSpec {
            n_heads: a.n_heads,
            n_kv_heads: a.n_kv_heads,
            head_dim: a.head_dim,
            scale: a.scale,
            window: a.window,
            page_size,
            kv,
            softcap: a.softcap,
        }
    }

    /// Decode block threads (= keys per decode tile): at least 128, a
    /// multiple of head_dim (160 for 80, 192 for 96).
    pub fn chunk(&self) -> u32 {
        self.head_dim
            .max(128)
            .next_multiple_of(self.head_dim.max(1))
    }

    /// attn_combine's block: whole groups of head_dim threads, at most
    /// [`COMBINE_THREADS`].
    pub fn combine_threads(&self) -> u32 {
        COMBINE_THREADS / self.head_dim.max(1) * self.head_dim.max(1)
    }

    /// Whether `vendor` runs the flash prefill kernel (scores and outputs
    /// in registers, [`FLASH_TILES`]): NVIDIA up to head_dim 128. Others
    /// run the kernel that stages scores and P in shared memory
    /// ([`STAGED_QT`] queries, [`Self::staged_key_tile`] keys).
    pub fn flash_prefill(&self, vendor: Vendor) -> bool {
        vendor == Vendor::Cuda && self.head_dim <= 128
    }

    /// The staged prefill kernel's key tile: 32 keys, 16 for head_dim 256
    /// so that K, V^T, the scores and P stay within ~41 KB of shared memory.
    fn staged_key_tile(&self) -> u32 {
        if self.head_dim <= 128 {
            32
        } else {
            16
        }
    }

    /// Prefill grid rows and block threads on `vendor`: (queries per
    /// block, threads).
    pub fn prefill_block(&self, vendor: Vendor) -> (u32, u32) {
        if self.flash_prefill(vendor) {
            (FLASH_TILES.0, FLASH_TILES.0 / 16 * 32)
        } else {
            (STAGED_QT, 256)
        }
    }

    /// Decode splits for keys up to `max_kv_len` positions: enough for
    /// [`DECODE_BLOCKS`] blocks over the kv heads at long context, never
    /// more than splits of [`SPLIT_MIN`] keys fill. Fixed per context, so
    /// a captured graph holds; the kernel sizes the splits per token.
    pub fn chunks_for(&self, max_kv_len: u32) -> u32 {
        self.decode_chunks(max_kv_len, 1)
    }

    /// Decode splits per token for a step of `tokens` decode tokens (each
    /// of any sequence) over up to `max_kv_len` keys: the grid aims at
    /// [`DECODE_BLOCKS`] blocks in all, so many tokens take fewer, longer
    /// splits (the scratch stays about one token's at full split count).
    /// A function of the step's size and the plan's context only, so a
    /// captured graph of that size holds.
    pub fn decode_chunks(&self, max_kv_len: u32, tokens: u32) -> u32 {
        let blocks_per_split = self.n_kv_heads.max(1) * tokens.max(1);
        let target = (DECODE_BLOCKS / blocks_per_split).clamp(1, MAX_SPLITS);
        max_kv_len.div_ceil(SPLIT_MIN).clamp(1, target)
    }

    /// The most scratch bytes decode steps of 1 to `max_tokens` tokens
    /// over up to `max_kv_len` keys need ([`Self::decode_chunks`] splits).
    pub fn decode_scratch_bytes(&self, max_kv_len: u32, max_tokens: u32) -> usize {
        (1..=max_tokens.max(1))
            .map(|t| self.scratch_bytes(t, self.decode_chunks(max_kv_len, t)))
            .max()
            .unwrap_or(0)
    }

    /// Key splits of a prefill step of `tokens` tokens whose longest query
    /// sees `keys` keys, on a `vendor` GPU of `multiprocessors` SMs: with
    /// the flash kernel, where its query tiles × heads leave more than half
    /// of the SMs' block slots idle, enough splits to fill them one and a
    /// half times over (a long context at few tiles: long serial key
    /// loops), never splits under [`PREFILL_SPLIT_MIN_KEYS`] keys; else 1.
    /// (H100, 512 tokens at depth 4,096: qwen05b's 112 blocks in 4 splits
    /// +30 % pp512; Llama-3-8B's 256 blocks in 2 splits −3 %.)
    pub fn prefill_splits(
        &self,
        vendor: Vendor,
        tokens: u32,
        keys: u32,
        multiprocessors: u32,
    ) -> u32 {
        if !self.flash_prefill(vendor) {
            return 1;
        }
        let blocks = tokens.div_ceil(FLASH_TILES.0).max(1) * self.n_heads;
        let slots = multiprocessors.max(1) * FLASH_BLOCKS_PER_SM;
        if 2 * blocks > slots {
            return 1;
        }
        let fill = (slots * PREFILL_FILL.0).div_ceil(PREFILL_FILL.1 * blocks);
        fill.min(keys.div_ceil(PREFILL_SPLIT_MIN_KEYS))
            .clamp(1, MAX_PREFILL_SPLITS)
    }

    /// Scratch bytes a prefill of up to `tokens` tokens over up to
    /// `max_keys` keys may need for its split partials on `vendor`'s GPUs.
    pub fn prefill_scratch_bytes(&self, vendor: Vendor, tokens: u32, max_keys: u32) -> usize {
        if self.flash_prefill(vendor) && max_keys > PREFILL_SPLIT_MIN_KEYS {
            self.scratch_bytes(tokens, MAX_PREFILL_SPLITS)
        } else {
            0
        }
    }

    /// Scratch bytes decode needs for `tokens` tokens and `max_chunks`
    /// (and a prefill of `tokens` tokens in `max_chunks` splits).
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
        if let Some(c) = self.softcap {
            s += &format!("_cap{c}");
        }
        s + &self.layout().label()
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
        if self.softcap.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return bad(format!("soft-cap {:?}", self.softcap));
        }
        if self.n_heads / self.n_kv_heads > 16 {
            return bad(format!(
                "{} query heads per kv head (at most 16)",
                self.n_heads / self.n_kv_heads
            ));
        }
        self.layout().validate()
    }

    /// One source with the three entry points.
    pub fn source(&self) -> Result<KernelSource, CodegenError> {
        self.validate()?;
        let src = KernelSource::new(
            Template::Attention,
            self.label(),
            &["attn_decode", "attn_combine", "attn_prefill"],
        );
        let src = match self.softcap {
            Some(cap) => src.define_f32_bits("SOFTCAP_BITS", cap),
            None => src,
        };
        Ok(self
            .layout()
            .define(src)
            .define("HD", self.head_dim)
            .define("NH", self.n_heads)
            .define("NKV", self.n_kv_heads)
            .define_f32_bits("SCALE_BITS", self.scale)
            .define("WINDOW", self.window.unwrap_or(0))
            .define("CH", self.chunk())
            .define("SPLIT_MIN", SPLIT_MIN)
            .define("MAX_SPLITS", MAX_SPLITS)
            .define("COMBINE_THREADS", self.combine_threads())
            .define("QT", STAGED_QT)
            .define("KT", self.staged_key_tile())
            .define("FLASH_QT", FLASH_TILES.0)
            .define("FLASH_KT", FLASH_TILES.1))
    }

    /// Queues decode: partial splits, then their combination.
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
        if a.max_chunks > MAX_SPLITS {
            return Err(BackendError::Invalid(format!(
                "{} attention decode splits (at most {MAX_SPLITS})",
                a.max_chunks
            )));
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
            .u32(a.tokens)
            .u32(0);
        combine.launch(
            stream,
            LaunchDims::new([self.n_heads, a.tokens, 1], self.combine_threads()),
            &args,
        )
    }

    /// Queues the tiled prefill kernel over `splits` key splits
    /// ([`prefill_splits`](Self::prefill_splits)), and with more than one
    /// the merge of their partials (attn_combine).
    ///
    /// # Safety
    /// Pointers as docs/KERNELS.md states; with `splits` > 1, `a.scratch`
    /// of [`scratch_bytes`](Self::scratch_bytes)`(tokens, splits)`.
    pub unsafe fn launch_prefill(
        &self,
        prefill: &Kernel,
        combine: &Kernel,
        stream: &Stream,
        a: &AttentionArgs,
        splits: u32,
    ) -> Result<()> {
        if a.tokens == 0 {
            return Ok(());
        }
        let vendor = stream.gpu().vendor();
        if splits > 1 && !self.flash_prefill(vendor) || splits > MAX_PREFILL_SPLITS {
            return Err(BackendError::Invalid(format!(
                "{splits} attention prefill splits for this kernel"
            )));
        }
        let splits = splits.max(1);
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
            .u32(a.tokens)
            .ptr(a.scratch)
            .u32(splits);
        let (qt, threads) = self.prefill_block(vendor);
        let dims = LaunchDims::new([a.tokens.div_ceil(qt), self.n_heads, splits], threads);
        prefill.launch(stream, dims, &args)?;
        if splits == 1 {
            return Ok(());
        }
        let args = KernelArgs::new()
            .ptr(a.scratch)
            .u32(splits)
            .ptr(a.pos)
            .ptr(a.out)
            .u32(a.ldo)
            .u32(a.tokens)
            .u32(1);
        combine.launch(
            stream,
            LaunchDims::new([self.n_heads, a.tokens, 1], self.combine_threads()),
            &args,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n_heads: u32, n_kv_heads: u32) -> AttentionKernelSpec {
        AttentionKernelSpec {
            n_heads,
            n_kv_heads,
            head_dim: 128,
            scale: 1.0,
            window: None,
            page_size: 16,
            kv: KvTypes::default(),
            softcap: None,
        }
    }

    #[test]
    fn a_short_context_gets_one_split_per_split_min_keys() {
        assert_eq!(spec(32, 8).chunks_for(1), 1);
        assert_eq!(spec(32, 8).chunks_for(150), 150u32.div_ceil(SPLIT_MIN));
    }

    #[test]
    fn a_long_context_spreads_over_the_decode_blocks_at_most() {
        assert_eq!(spec(32, 8).chunks_for(4096) * 8, DECODE_BLOCKS);
        assert_eq!(spec(32, 32).chunks_for(4096) * 32, DECODE_BLOCKS);
    }

    #[test]
    fn many_decode_tokens_share_the_decode_blocks() {
        let s = spec(32, 8);
        assert_eq!(s.decode_chunks(4096, 1), s.chunks_for(4096));
        assert_eq!(s.decode_chunks(4096, 16) * 8 * 16, DECODE_BLOCKS);
        // Past a block per token and kv head, one split each.
        assert_eq!(s.decode_chunks(4096, 256), 1);
        // A short context never takes more splits than it has keys for.
        assert_eq!(s.decode_chunks(64, 2), 2);
        // The scratch of 256 tokens stays within a few single-token ones.
        let one = s.scratch_bytes(1, s.chunks_for(4096));
        let most = s.decode_scratch_bytes(4096, 256);
        assert_eq!(most, s.scratch_bytes(256, 1));
        assert!(most <= 4 * one, "{most} vs {one}");
    }

    #[test]
    fn few_kv_heads_stop_at_the_split_cap() {
        assert_eq!(spec(14, 2).chunks_for(131_072), MAX_SPLITS);
        assert_eq!(spec(8, 1).chunks_for(131_072), MAX_SPLITS);
    }

    #[test]
    fn every_head_dim_gets_whole_heads_per_decode_tile_and_combine_group() {
        for (hd, chunk, combine) in [
            (32, 128, 512),
            (64, 128, 512),
            (80, 160, 480),
            (96, 192, 480),
            (128, 128, 512),
            (256, 256, 512),
        ] {
            let s = AttentionKernelSpec {
                head_dim: hd,
                ..spec(8, 8)
            };
            assert_eq!((s.chunk(), s.combine_threads()), (chunk, combine), "{hd}");
            assert!(s.chunk().is_multiple_of(32) && s.chunk() <= 1024);
            let src = s.source().unwrap();
            assert_eq!(src.defines["CH"], chunk.to_string());
            assert_eq!(src.defines["COMBINE_THREADS"], combine.to_string());
        }
    }

    #[test]
    fn a_long_context_prefill_splits_its_keys_to_fill_the_gpu() {
        let qwen = AttentionKernelSpec {
            head_dim: 64,
            ..spec(14, 2)
        };
        // 512 tokens at depth 4,096 on 132 SMs: 8 x 14 = 112 blocks, 264
        // slots, 1.5 x 264 / 112 -> 4 splits; 9 splits of 512 keys would
        // be allowed.
        assert_eq!(qwen.prefill_splits(Vendor::Cuda, 512, 4608, 132), 4);
        // Llama-3-8B's 32 heads: 256 blocks fill most of the slots -> 1;
        // at 128 tokens, 64 blocks -> 7.
        assert_eq!(spec(32, 8).prefill_splits(Vendor::Cuda, 512, 4608, 132), 1);
        assert_eq!(spec(32, 8).prefill_splits(Vendor::Cuda, 128, 4608, 132), 7);
        // A short context keeps one split; so do AMD and head_dim 256
        // (the staged kernel).
        assert_eq!(qwen.prefill_splits(Vendor::Cuda, 512, 512, 132), 1);
        assert_eq!(qwen.prefill_splits(Vendor::Cuda, 64, 1024, 132), 2);
        assert_eq!(qwen.prefill_splits(Vendor::Hip, 512, 4608, 96), 1);
        let wide = AttentionKernelSpec {
            head_dim: 256,
            ..spec(8, 8)
        };
        assert_eq!(wide.prefill_splits(Vendor::Cuda, 512, 4608, 132), 1);
        // Never past the scratch's bound.
        assert_eq!(
            qwen.prefill_splits(Vendor::Cuda, 8, 131_072, 1000),
            MAX_PREFILL_SPLITS
        );
        assert_eq!(qwen.prefill_scratch_bytes(Vendor::Hip, 512, 4608), 0);
        assert_eq!(qwen.prefill_scratch_bytes(Vendor::Cuda, 512, 512), 0);
        assert_eq!(
            qwen.prefill_scratch_bytes(Vendor::Cuda, 512, 4608),
            qwen.scratch_bytes(512, MAX_PREFILL_SPLITS)
        );
    }

    #[test]
    fn nvidia_prefills_up_to_head_dim_128_with_the_flash_kernel() {
        let mut s = spec(32, 8);
        assert!(s.flash_prefill(Vendor::Cuda));
        assert_eq!(s.prefill_block(Vendor::Cuda), (64, 128));
        assert!(!s.flash_prefill(Vendor::Hip));
        assert_eq!(s.prefill_block(Vendor::Hip), (STAGED_QT, 256));
        s.head_dim = 256;
        assert!(!s.flash_prefill(Vendor::Cuda));
        assert_eq!(s.staged_key_tile(), 16);
        let src = s.source().unwrap();
        assert_eq!(src.defines["FLASH_QT"], "64");
        assert_eq!(src.defines["KT"], "16");
    }
}
