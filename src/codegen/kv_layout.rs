//! The GPU's paged KV cache of one layer, in the element types of its keys
//! and values (the CPU backend's [`KvTypes`]: f16, f32, bf16, or a
//! 32-element block type laid out byte for byte as ggml's).
//!
//! A page is one contiguous run: its `page_size` key rows, then its
//! `page_size` value rows; a row holds one token's keys (or values) of
//! every kv head, `kv_dim` elements in the type's own bytes. Splitting a
//! page by halves rather than interleaving K and V per token keeps every
//! float row 16-byte aligned behind block rows of any length (a Q8_0 row
//! of 128 elements is 136 bytes), and the pool costs exactly the bytes
//! the types take, no padding (`KvTypes::bytes_per_token`).
//!
//! Block-typed rows are stored rotated by the same Walsh–Hadamard
//! transform as the CPU's cache (`exec::cpu::hadamard`), so the two
//! backends quantize a row to the same blocks.

use super::error::{unsupported, CodegenError};
use super::source::KernelSource;
use crate::exec::cpu::{KvType, KvTypes};

/// Byte alignment of each layer's cache in the pool.
const LAYER_ALIGN: usize = 256;

/// The shape and element types of one layer's paged cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    pub types: KvTypes,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    /// Tokens per page.
    pub page_size: u32,
}

impl KvLayout {
    /// Elements of one token's keys (or values): every kv head.
    pub fn kv_dim(&self) -> u32 {
        self.n_kv_heads * self.head_dim
    }

    /// Bytes of one token's keys.
    pub fn key_row_bytes(&self) -> usize {
        self.types.k.bytes_of(self.kv_dim() as usize)
    }

    /// Bytes of one token's values.
    pub fn value_row_bytes(&self) -> usize {
        self.types.v.bytes_of(self.kv_dim() as usize)
    }

    /// Bytes of one page: its key rows, then its value rows.
    pub fn page_bytes(&self) -> usize {
        self.page_size as usize * (self.key_row_bytes() + self.value_row_bytes())
    }

    /// Bytes one layer's pool of `n_pages` pages takes (aligned so that
    /// the next layer's starts on a 256-byte boundary).
    pub fn layer_bytes(&self, n_pages: usize) -> usize {
        (n_pages * self.page_bytes()).next_multiple_of(LAYER_ALIGN)
    }

    /// Whether the QKV matmul's epilogue may write the cache element by
    /// element: only an f16 cache (a block is quantized whole, after the
    /// row's rotation, by the kv_store kernel).
    pub fn written_by_epilogue(&self) -> bool {
        self.types == KvTypes::both(KvType::F16)
    }

    /// Walsh–Hadamard rotation sizes of the stored keys and values, as the
    /// CPU cache applies them.
    pub fn key_rotation(&self) -> Option<u32> {
        crate::exec::cpu::hadamard::key_rotation(self.types.k, self.head_dim as usize)
            .map(|n| n as u32)
    }

    pub fn value_rotation(&self) -> Option<u32> {
        crate::exec::cpu::hadamard::value_rotation(self.types.v, self.head_dim as usize)
            .map(|n| n as u32)
    }

    /// The cache types the kernels take, for heads of `head_dim`: whole
    /// blocks per head, and every float row 16-byte aligned in its page.
    pub fn validate(&self) -> Result<(), CodegenError> {
        let bad = |r: String| Err(unsupported("KV cache", r));
        if let Err(e) = self.types.fit(self.head_dim as usize) {
            return bad(e.to_string());
        }
        for (what, bytes) in [
            ("key", self.key_row_bytes()),
            ("value", self.value_row_bytes()),
        ] {
            if !(self.page_size as usize * bytes).is_multiple_of(16) {
                return bad(format!(
                    "{what} rows of {bytes} bytes: {} of them do not end on a 16-byte boundary",
                    self.page_size
                ));
            }
        }
        if let Some(n) = self.key_rotation().or(self.value_rotation()) {
            // The rotation runs on one warp per head, head_dim / 32
            // elements a lane (kv_cache.h's kv_hadamard_warp).
            if !matches!(self.head_dim, 64 | 128 | 256) {
                return bad(format!(
                    "a {n}-element rotation in heads of {}",
                    self.head_dim
                ));
            }
        }
        Ok(())
    }

    /// The label part naming the types (empty for the f16 cache, so its
    /// kernels keep their names).
    pub fn label(&self) -> String {
        if self.types == KvTypes::both(KvType::F16) {
            String::new()
        } else {
            format!("_k{}_v{}", self.types.k, self.types.v)
        }
    }

    /// kv_cache.h's defines: element types (ggml ids), row bytes, and the
    /// rotations with their exact scales.
    pub fn define(&self, src: KernelSource) -> KernelSource {
        let rot = |n: Option<u32>| n.unwrap_or(0);
        // The CPU's scale, computed as it computes it (hadamard::rotate).
        let scale = |n: Option<u32>| n.map_or(1.0, |n| 1.0 / (n as f32).sqrt());
        src.define("KV_DIM", self.kv_dim())
            .define("PAGE_SIZE", self.page_size)
            .define("KV_K_TYPE", self.types.k.ggml_type().id())
            .define("KV_V_TYPE", self.types.v.ggml_type().id())
            .define("KV_K_ROW", self.key_row_bytes())
            .define("KV_V_ROW", self.value_row_bytes())
            .define("K_ROT", rot(self.key_rotation()))
            .define("V_ROT", rot(self.value_rotation()))
            .define_f32_bits("K_ROT_SCALE_BITS", scale(self.key_rotation()))
            .define_f32_bits("V_ROT_SCALE_BITS", scale(self.value_rotation()))
    }

    /// Byte offsets of token `slot` of `page`'s keys and values.
    pub fn row_offsets(&self, page: usize, slot: usize) -> (usize, usize) {
        let base = page * self.page_bytes();
        let keys = self.page_size as usize * self.key_row_bytes();
        (
            base + slot * self.key_row_bytes(),
            base + keys + slot * self.value_row_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(k: KvType, v: KvType, n_kv_heads: u32, head_dim: u32) -> KvLayout {
        KvLayout {
            types: KvTypes { k, v },
            n_kv_heads,
            head_dim,
            page_size: 16,
        }
    }

    #[test]
    fn a_page_holds_exactly_the_bytes_per_token_of_its_types() {
        // Qwen2.5-0.5B: 2 kv heads of 64.
        for k in KvType::ALL {
            for v in KvType::ALL {
                let l = layout(k, v, 2, 64);
                let per_token = l.types.bytes_per_token(1, 2, 64);
                assert_eq!(l.page_bytes(), 16 * per_token, "{k}/{v}");
            }
        }
        let f16 = layout(KvType::F16, KvType::F16, 2, 64);
        assert_eq!(f16.page_bytes(), 16 * 2 * 128 * 2);
        // 34 bytes per 32 elements: 136 per row; q4_0 18 per 32: 72.
        let q = layout(KvType::Q8_0, KvType::Q4_0, 2, 64);
        assert_eq!((q.key_row_bytes(), q.value_row_bytes()), (136, 72));
        assert_eq!(q.page_bytes(), 16 * (136 + 72));
        // 8.5 and 4.5 bits against f16's 16.
        assert_eq!(f16.page_bytes() * 13, q.page_bytes() * 32);
    }

    #[test]
    fn a_page_is_its_key_rows_then_its_value_rows() {
        let l = layout(KvType::Q8_0, KvType::F16, 2, 64);
        assert_eq!(l.row_offsets(0, 0), (0, 16 * 136));
        assert_eq!(l.row_offsets(0, 3), (3 * 136, 16 * 136 + 3 * 256));
        let page = l.page_bytes();
        assert_eq!(
            l.row_offsets(5, 1),
            (5 * page + 136, 5 * page + 16 * 136 + 256)
        );
        // Every value row of f16 starts 16-byte aligned behind Q8_0 keys.
        for slot in 0..16 {
            assert_eq!(l.row_offsets(7, slot).1 % 16, 0);
        }
    }

    #[test]
    fn layers_start_on_256_byte_boundaries() {
        let l = layout(KvType::Q4_0, KvType::Q4_0, 1, 32);
        assert_eq!(l.page_bytes(), 16 * 36);
        assert_eq!(l.layer_bytes(3), (3 * 16 * 36usize).next_multiple_of(256));
        assert_eq!(l.layer_bytes(0), 0);
    }

    #[test]
    fn only_the_f16_cache_is_written_by_the_qkv_epilogue() {
        assert!(layout(KvType::F16, KvType::F16, 2, 64).written_by_epilogue());
        assert!(!layout(KvType::F16, KvType::Q8_0, 2, 64).written_by_epilogue());
        assert!(!layout(KvType::F32, KvType::F32, 2, 64).written_by_epilogue());
    }

    #[test]
    fn rotations_follow_the_cpu_cache() {
        let l = layout(KvType::Q8_0, KvType::Q4_0, 8, 128);
        assert_eq!(
            (l.key_rotation(), l.value_rotation()),
            (Some(128), Some(64))
        );
        let src = l.define(KernelSource::new(
            super::super::source::Template::Attention,
            "t",
            &[],
        ));
        assert_eq!(src.defines["K_ROT"], "128");
        assert_eq!(src.defines["V_ROT"], "64");
        assert_eq!(src.defines["KV_K_TYPE"], "8");
        assert_eq!(src.defines["KV_V_TYPE"], "2");
        assert_eq!(
            src.defines["K_ROT_SCALE_BITS"],
            format!("0x{:08x}u", (1.0f32 / 128f32.sqrt()).to_bits())
        );
        // No rotation: floats, and heads that are not whole 64s.
        let l = layout(KvType::Q8_0, KvType::F16, 2, 96);
        assert_eq!((l.key_rotation(), l.value_rotation()), (None, None));
        assert!(l.validate().is_ok());
        assert_eq!(l.label(), "_kq8_0_vf16");
        assert_eq!(layout(KvType::F16, KvType::F16, 2, 64).label(), "");
    }

    #[test]
    fn block_types_need_whole_blocks_per_head() {
        let e = layout(KvType::Q4_0, KvType::F16, 2, 80)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("head_dim"), "{e}");
        assert!(layout(KvType::F16, KvType::F32, 2, 80).validate().is_ok());
    }
}
