//! The KV store (kv_store.hip): a step's keys and values into the paged
//! cache of [`KvLayout`], rotated and quantized as the CPU cache stores
//! them. The f16 cache of a fused plan is written by the QKV matmul's
//! epilogue instead ([`KvLayout::written_by_epilogue`]).

use super::error::CodegenError;
use super::kv_layout::KvLayout;
use super::source::{KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream};

/// kv_store.hip's block.
const THREADS: u32 = 256;

/// One layer shape's store kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvStoreSpec {
    pub layout: KvLayout,
}

/// Device addresses of one KV store.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvStoreArgs {
    pub k: DevicePtr,
    pub ldk: u32,
    pub v: DevicePtr,
    pub ldv: u32,
    pub pos: DevicePtr,
    pub seq: DevicePtr,
    pub pages: DevicePtr,
    pub pages_per_seq: u32,
    /// The layer's cache ([`KvLayout::layer_bytes`]).
    pub kv: DevicePtr,
    pub tokens: u32,
}

impl KvStoreSpec {
    pub fn label(&self) -> String {
        let l = &self.layout;
        format!(
            "kv_store_d{}_h{}_p{}{}",
            l.kv_dim(),
            l.head_dim,
            l.page_size,
            l.label()
        )
    }

    pub fn source(&self) -> Result<KernelSource, CodegenError> {
        self.layout.validate()?;
        Ok(self.layout.define(KernelSource::new(
            Template::KvStore,
            self.label(),
            &["kv_store"],
        )))
    }

    /// Queues the store of `a.tokens` tokens' keys and values.
    ///
    /// # Safety
    /// Pointers as docs/KERNELS.md states: `k`, `v` rows of `kv_dim`
    /// floats, the page table's pages inside `kv`.
    pub unsafe fn launch(&self, kernel: &Kernel, stream: &Stream, a: &KvStoreArgs) -> Result<()> {
        if a.tokens == 0 {
            return Ok(());
        }
        let args = KernelArgs::new()
            .ptr(a.k)
            .u32(a.ldk)
            .ptr(a.v)
            .u32(a.ldv)
            .ptr(a.pos)
            .ptr(a.seq)
            .ptr(a.pages)
            .u32(a.pages_per_seq)
            .ptr(a.kv)
            .u32(a.tokens);
        kernel.launch(stream, LaunchDims::new([a.tokens, 1, 1], THREADS), &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::{KvType, KvTypes};

    #[test]
    fn the_label_names_the_types_and_the_source_defines_them() {
        let spec = KvStoreSpec {
            layout: KvLayout {
                types: KvTypes {
                    k: KvType::Q8_0,
                    v: KvType::Q4_0,
                },
                n_kv_heads: 2,
                head_dim: 64,
                page_size: 16,
            },
        };
        let src = spec.source().unwrap();
        assert_eq!(src.label, "kv_store_d128_h64_p16_kq8_0_vq4_0");
        assert_eq!(src.defines["KV_K_ROW"], "136");
        assert_eq!(src.defines["KV_V_ROW"], "72");
        assert!(src.text().contains("KvBlock<KVT_Q8_0>"));
    }
}
