//! The paged KV cache: keys and values each in its own element type —
//! f16 (llama.cpp's default), f32, bf16, or a 32-element block format
//! (q8_0, q4_0, q5_1, iq4_nl, laid out byte for byte as ggml's, so a row
//! quantizes as llama.cpp's cache does) — in fixed-size pages addressed
//! through per-sequence page tables.
//!
//! Layout, for K and for V separately: `[layer][page][slot][kv_head][head_dim]`,
//! so one token's heads are contiguous and a page is one contiguous run.
//! Token `t` of sequence `s` at position `p` lives in page
//! `page_table[s * pages_per_seq + p / page_size]`, slot `p % page_size`.
//! A block type needs `head_dim` to be a multiple of 32, so every block
//! lies inside one head. Rows of a block type are stored rotated by a
//! Walsh–Hadamard matrix where llama.cpp rotates them ([`super::hadamard`]);
//! [`KvCache::k_row`] and [`KvCache::v_row`] undo it.

use half::{bf16, f16};

use super::error::KernelError;
use super::simd::SimdPath;
use crate::quant::blocks::{
    BlockIQ4NL, BlockQ4_0, BlockQ5_1, BlockQ8_0, QuantBlock, QuantizeBlock,
};
use crate::quant::GgmlType;

#[derive(Debug)]
pub struct KvCache {
    n_layers: usize,
    n_kv_heads: usize,
    head_dim: usize,
    page_size: usize,
    n_pages: usize,
    k: Plane,
    v: Plane,
    /// Walsh–Hadamard rotation sizes of keys and values (block types only).
    k_rot: Option<usize>,
    v_rot: Option<usize>,
    /// One row, rotated before it is quantized (no allocation per token).
    scratch: Vec<f32>,
}

/// The element type of the keys or of the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvType {
    /// Half the memory; attention then rounds q (for keys) and the softmax
    /// weights (for values) to f16 too, as ggml does with an f16 cache.
    #[default]
    F16,
    /// Exact: what float-weight models need to match an f32 reference.
    F32,
    /// f16's size with f32's range; q is rounded to bf16 (ggml's dot type).
    Bf16,
    /// 8.5 bits per value; keys are scored against q in Q8_0 (as ggml).
    Q8_0,
    /// 4.5 bits per value; keys are scored against q in Q8_0 (as ggml).
    Q4_0,
    /// 6 bits per value.
    Q5_1,
    /// 4.5 bits per value, non-linear levels.
    IQ4NL,
}

impl KvType {
    /// Every type, in the order the CLI lists them.
    pub const ALL: [KvType; 7] = [
        KvType::F32,
        KvType::F16,
        KvType::Bf16,
        KvType::Q8_0,
        KvType::Q4_0,
        KvType::Q5_1,
        KvType::IQ4NL,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The name the CLI and llama.cpp use (`-ctk q8_0`).
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Bf16 => "bf16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
            KvType::Q5_1 => "q5_1",
            KvType::IQ4NL => "iq4_nl",
        }
    }

    /// The ggml type of the stored elements.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            KvType::F16 => GgmlType::F16,
            KvType::F32 => GgmlType::F32,
            KvType::Bf16 => GgmlType::BF16,
            KvType::Q8_0 => GgmlType::Q8_0,
            KvType::Q4_0 => GgmlType::Q4_0,
            KvType::Q5_1 => GgmlType::Q5_1,
            KvType::IQ4NL => GgmlType::IQ4_NL,
        }
    }

    /// Elements per block (1 for the float types).
    pub fn block_len(self) -> usize {
        self.ggml_type().block_len()
    }

    /// Bytes of `n` elements (`n` a multiple of [`block_len`](Self::block_len)).
    pub fn bytes_of(self, n: usize) -> usize {
        let t = self.ggml_type();
        n / t.block_len() * t.block_bytes()
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The element types of the keys and of the values (they may differ, as
/// llama.cpp's `-ctk` and `-ctv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KvTypes {
    pub k: KvType,
    pub v: KvType,
}

impl KvTypes {
    /// Keys and values of one type.
    pub fn both(ty: KvType) -> Self {
        KvTypes { k: ty, v: ty }
    }

    /// Bytes one token takes in the cache: K and V of every layer and kv
    /// head (`head_dim` a multiple of both types' block length).
    pub fn bytes_per_token(self, n_layers: usize, n_kv_heads: usize, head_dim: usize) -> usize {
        let row = n_kv_heads * head_dim;
        n_layers * (self.k.bytes_of(row) + self.v.bytes_of(row))
    }

    /// Whether both types fit a head of `head_dim` elements (block types
    /// need whole blocks per head).
    pub fn fit(self, head_dim: usize) -> Result<(), KernelError> {
        for ty in [self.k, self.v] {
            if !head_dim.is_multiple_of(ty.block_len()) {
                return Err(KernelError::RaggedRow {
                    what: "KV cache heads (head_dim; this model takes the f16, f32 or bf16 cache)",
                    ty: ty.ggml_type(),
                    cols: head_dim,
                    block: ty.block_len(),
                });
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for KvTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.k == self.v {
            write!(f, "{}", self.k)
        } else {
            write!(f, "K {} / V {}", self.k, self.v)
        }
    }
}

/// The keys (or values) of every layer, in one element type.
#[derive(Debug)]
enum Plane {
    F16(Vec<f16>),
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    Q8_0(Vec<BlockQ8_0>),
    Q4_0(Vec<BlockQ4_0>),
    Q5_1(Vec<BlockQ5_1>),
    IQ4NL(Vec<BlockIQ4NL>),
}

/// Consecutive rows of keys or values, in the cache's element type.
/// Indices are in elements; a block type's start is block-aligned.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KvRun<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
    Q8_0(&'a [BlockQ8_0]),
    Q4_0(&'a [BlockQ4_0]),
    Q5_1(&'a [BlockQ5_1]),
    IQ4NL(&'a [BlockIQ4NL]),
}

/// Decodes the blocks that hold elements `[at, at + out.len())`.
#[inline(always)]
fn blocks_to_f32<B: QuantBlock>(blocks: &[B], at: usize, out: &mut [f32]) {
    let first = at / B::LEN;
    for (b, o) in blocks[first..].iter().zip(out.chunks_exact_mut(B::LEN)) {
        b.dequantize_into(o);
    }
}

/// Encodes `x` into consecutive blocks.
#[inline(always)]
fn blocks_from_f32<B: QuantizeBlock>(x: &[f32], out: &mut [B]) {
    for (o, x) in out.iter_mut().zip(x.chunks_exact(B::LEN)) {
        *o = B::quantize(x);
    }
}

impl<'a> KvRun<'a> {
    /// The elements' bytes as stored (ggml's block layouts).
    pub(crate) fn bytes(self) -> &'a [u8] {
        match self {
            KvRun::F16(x) => bytemuck::cast_slice(x),
            KvRun::F32(x) => bytemuck::cast_slice(x),
            KvRun::Bf16(x) => bytemuck::cast_slice(x),
            KvRun::Q8_0(x) => bytemuck::cast_slice(x),
            KvRun::Q4_0(x) => bytemuck::cast_slice(x),
            KvRun::Q5_1(x) => bytemuck::cast_slice(x),
            KvRun::IQ4NL(x) => bytemuck::cast_slice(x),
        }
    }

    /// Elements `[at, at + out.len())` as f32 (for a block type, `at` and
    /// `out.len()` are whole blocks).
    #[inline(always)]
    pub(crate) fn to_f32(self, path: SimdPath, at: usize, out: &mut [f32]) {
        match self {
            KvRun::F16(h) => super::f16::to_f32(path, &h[at..at + out.len()], out),
            KvRun::F32(f) => out.copy_from_slice(&f[at..at + out.len()]),
            KvRun::Bf16(b) => blocks_to_f32(b, at, out),
            KvRun::Q8_0(b) => blocks_to_f32(b, at, out),
            KvRun::Q4_0(b) => blocks_to_f32(b, at, out),
            KvRun::Q5_1(b) => blocks_to_f32(b, at, out),
            KvRun::IQ4NL(b) => blocks_to_f32(b, at, out),
        }
    }
}

impl Plane {
    fn zeroed(ty: KvType, n: usize) -> Plane {
        match ty {
            KvType::F16 => Plane::F16(vec![f16::ZERO; n]),
            KvType::F32 => Plane::F32(vec![0.0; n]),
            KvType::Bf16 => Plane::Bf16(vec![bf16::ZERO; n]),
            KvType::Q8_0 => Plane::Q8_0(vec![bytemuck::Zeroable::zeroed(); n / 32]),
            KvType::Q4_0 => Plane::Q4_0(vec![bytemuck::Zeroable::zeroed(); n / 32]),
            KvType::Q5_1 => Plane::Q5_1(vec![bytemuck::Zeroable::zeroed(); n / 32]),
            KvType::IQ4NL => Plane::IQ4NL(vec![bytemuck::Zeroable::zeroed(); n / 32]),
        }
    }

    fn ty(&self) -> KvType {
        match self {
            Plane::F16(_) => KvType::F16,
            Plane::F32(_) => KvType::F32,
            Plane::Bf16(_) => KvType::Bf16,
            Plane::Q8_0(_) => KvType::Q8_0,
            Plane::Q4_0(_) => KvType::Q4_0,
            Plane::Q5_1(_) => KvType::Q5_1,
            Plane::IQ4NL(_) => KvType::IQ4NL,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Plane::F16(x) => std::mem::size_of_val(x.as_slice()),
            Plane::F32(x) => std::mem::size_of_val(x.as_slice()),
            Plane::Bf16(x) => std::mem::size_of_val(x.as_slice()),
            Plane::Q8_0(x) => std::mem::size_of_val(x.as_slice()),
            Plane::Q4_0(x) => std::mem::size_of_val(x.as_slice()),
            Plane::Q5_1(x) => std::mem::size_of_val(x.as_slice()),
            Plane::IQ4NL(x) => std::mem::size_of_val(x.as_slice()),
        }
    }

    /// Stores `row` at element `o` (block-aligned for a block type).
    fn write(&mut self, path: SimdPath, o: usize, row: &[f32]) {
        let n = row.len();
        match self {
            Plane::F16(x) => super::f16::from_f32(path, row, &mut x[o..o + n]),
            Plane::F32(x) => x[o..o + n].copy_from_slice(row),
            Plane::Bf16(x) => blocks_from_f32(row, &mut x[o..o + n]),
            Plane::Q8_0(x) => blocks_from_f32(row, &mut x[o / 32..(o + n) / 32]),
            Plane::Q4_0(x) => blocks_from_f32(row, &mut x[o / 32..(o + n) / 32]),
            Plane::Q5_1(x) => blocks_from_f32(row, &mut x[o / 32..(o + n) / 32]),
            Plane::IQ4NL(x) => blocks_from_f32(row, &mut x[o / 32..(o + n) / 32]),
        }
    }

    /// Elements `[o, o + n)`, whole blocks for a block type.
    fn run(&self, o: usize, n: usize) -> KvRun<'_> {
        let (b0, b1) = (o / 32, (o + n) / 32);
        match self {
            Plane::F16(x) => KvRun::F16(&x[o..o + n]),
            Plane::F32(x) => KvRun::F32(&x[o..o + n]),
            Plane::Bf16(x) => KvRun::Bf16(&x[o..o + n]),
            Plane::Q8_0(x) => KvRun::Q8_0(&x[b0..b1]),
            Plane::Q4_0(x) => KvRun::Q4_0(&x[b0..b1]),
            Plane::Q5_1(x) => KvRun::Q5_1(&x[b0..b1]),
            Plane::IQ4NL(x) => KvRun::IQ4NL(&x[b0..b1]),
        }
    }
}

/// Where one token's keys and values are: page and slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvSlot {
    pub page: usize,
    pub slot: usize,
}

impl KvCache {
    /// A zeroed f16 cache of `n_pages` pages of `page_size` tokens per layer.
    pub fn new(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        page_size: usize,
        n_pages: usize,
    ) -> Self {
        Self::with_types(
            n_layers,
            n_kv_heads,
            head_dim,
            page_size,
            n_pages,
            KvTypes::default(),
        )
        .expect("an f16 cache fits any head_dim")
    }

    /// A zeroed cache holding keys and values of `ty`.
    pub fn with_type(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        page_size: usize,
        n_pages: usize,
        ty: KvType,
    ) -> Result<Self, KernelError> {
        Self::with_types(
            n_layers,
            n_kv_heads,
            head_dim,
            page_size,
            n_pages,
            KvTypes::both(ty),
        )
    }

    /// A zeroed cache holding keys of `types.k` and values of `types.v`;
    /// refused where a block type does not divide `head_dim`.
    pub fn with_types(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        page_size: usize,
        n_pages: usize,
        types: KvTypes,
    ) -> Result<Self, KernelError> {
        types.fit(head_dim)?;
        let n = n_layers * n_pages * page_size * n_kv_heads * head_dim;
        Ok(KvCache {
            n_layers,
            n_kv_heads,
            head_dim,
            page_size,
            n_pages,
            k: Plane::zeroed(types.k, n),
            v: Plane::zeroed(types.v, n),
            k_rot: super::hadamard::key_rotation(types.k, head_dim),
            v_rot: super::hadamard::value_rotation(types.v, head_dim),
            scratch: Vec::with_capacity(n_kv_heads * head_dim),
        })
    }

    /// The size of the Walsh–Hadamard rotation the keys are stored under
    /// (q must be rotated alike before it meets them), if any.
    pub fn key_rotation(&self) -> Option<usize> {
        self.k_rot
    }

    /// The rotation the values are stored under (a weighted sum of them is
    /// rotated back by the same), if any.
    pub fn value_rotation(&self) -> Option<usize> {
        self.v_rot
    }

    /// The element types of keys and values.
    pub fn kv_types(&self) -> KvTypes {
        KvTypes {
            k: self.k.ty(),
            v: self.v.ty(),
        }
    }

    pub fn n_layers(&self) -> usize {
        self.n_layers
    }
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
    pub fn page_size(&self) -> usize {
        self.page_size
    }
    pub fn n_pages(&self) -> usize {
        self.n_pages
    }

    /// Elements of one token's keys (all kv heads).
    pub fn row_len(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Bytes of K and V together.
    pub fn bytes(&self) -> usize {
        self.k.bytes() + self.v.bytes()
    }

    fn offset(&self, layer: usize, page: usize, slot: usize) -> usize {
        ((layer * self.n_pages + page) * self.page_size + slot) * self.row_len()
    }

    fn check_cell(&self, layer: usize, page: usize, slot: usize) -> Result<(), KernelError> {
        let range = |what, index: usize, len| {
            if index < len {
                Ok(())
            } else {
                Err(KernelError::OutOfRange {
                    what,
                    index: index as i64,
                    len,
                })
            }
        };
        range("kv cache layer", layer, self.n_layers)?;
        range("kv cache page", page, self.n_pages)?;
        range("kv cache slot", slot, self.page_size)
    }

    /// Stores one token's keys and values (`n_kv_heads * head_dim` each).
    pub fn write(
        &mut self,
        layer: usize,
        k_row: &[f32],
        v_row: &[f32],
        page: usize,
        slot: usize,
    ) -> Result<(), KernelError> {
        self.check_cell(layer, page, slot)?;
        super::acts::check_len("kv cache key row", k_row.len(), self.row_len())?;
        super::acts::check_len("kv cache value row", v_row.len(), self.row_len())?;
        let (o, path) = (self.offset(layer, page, slot), SimdPath::detect());
        for (plane, rot, row) in [
            (&mut self.k, self.k_rot, k_row),
            (&mut self.v, self.v_rot, v_row),
        ] {
            match rot {
                Some(n) => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(row);
                    super::hadamard::rotate(&mut self.scratch, n);
                    plane.write(path, o, &self.scratch);
                }
                None => plane.write(path, o, row),
            }
        }
        Ok(())
    }

    /// Stores the keys and values of a step's tokens (`[T, n_kv_heads *
    /// head_dim]` each) at their sequences' positions.
    #[allow(clippy::too_many_arguments)]
    pub fn write_tokens(
        &mut self,
        layer: usize,
        k: &[f32],
        v: &[f32],
        positions: &[i32],
        seq_ids: &[i32],
        page_table: &[i32],
        pages_per_seq: usize,
    ) -> Result<(), KernelError> {
        let n = self.row_len();
        super::acts::check_len("kv cache keys", k.len(), positions.len() * n)?;
        super::acts::check_len("kv cache values", v.len(), positions.len() * n)?;
        super::acts::check_len("kv cache seq_ids", seq_ids.len(), positions.len())?;
        for (t, (&pos, &seq)) in positions.iter().zip(seq_ids).enumerate() {
            let at = self.locate(page_table, pages_per_seq, seq, pos)?;
            self.write(
                layer,
                &k[t * n..(t + 1) * n],
                &v[t * n..(t + 1) * n],
                at.page,
                at.slot,
            )?;
        }
        Ok(())
    }

    /// Resolves `(seq, pos)` through the page table, checking every index.
    pub fn locate(
        &self,
        page_table: &[i32],
        pages_per_seq: usize,
        seq: i32,
        pos: i32,
    ) -> Result<KvSlot, KernelError> {
        let n_seqs = page_table.len() / pages_per_seq.max(1);
        if seq < 0 || seq as usize >= n_seqs {
            return Err(KernelError::OutOfRange {
                what: "sequence id",
                index: seq as i64,
                len: n_seqs,
            });
        }
        let page_index = if pos < 0 {
            usize::MAX
        } else {
            pos as usize / self.page_size
        };
        if page_index >= pages_per_seq {
            let len = pages_per_seq * self.page_size;
            return Err(KernelError::OutOfRange {
                what: "position (beyond the sequence's pages)",
                index: pos as i64,
                len,
            });
        }
        let page = page_table[seq as usize * pages_per_seq + page_index];
        if page < 0 || page as usize >= self.n_pages {
            return Err(KernelError::OutOfRange {
                what: "page table entry",
                index: page as i64,
                len: self.n_pages,
            });
        }
        Ok(KvSlot {
            page: page as usize,
            slot: pos as usize % self.page_size,
        })
    }

    /// One token's keys, all kv heads, as f32 (rotated back where stored
    /// rotated).
    pub fn k_row(&self, layer: usize, page: usize, slot: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.row_len()];
        self.k_run(layer, page, slot, 1)
            .to_f32(SimdPath::detect(), 0, &mut out);
        if let Some(n) = self.k_rot {
            super::hadamard::rotate(&mut out, n);
        }
        out
    }

    /// One token's values, all kv heads, as f32 (rotated back likewise).
    pub fn v_row(&self, layer: usize, page: usize, slot: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.row_len()];
        self.v_run(layer, page, slot, 1)
            .to_f32(SimdPath::detect(), 0, &mut out);
        if let Some(n) = self.v_rot {
            super::hadamard::rotate(&mut out, n);
        }
        out
    }

    /// One token's keys (all kv heads) as stored: rotated where the type
    /// is, in the type's bytes (what the GPU's cache holds for it too).
    pub fn key_bytes(&self, layer: usize, page: usize, slot: usize) -> Result<&[u8], KernelError> {
        self.check_cell(layer, page, slot)?;
        Ok(self.k_run(layer, page, slot, 1).bytes())
    }

    /// One token's values as stored, as [`key_bytes`](Self::key_bytes).
    pub fn value_bytes(
        &self,
        layer: usize,
        page: usize,
        slot: usize,
    ) -> Result<&[u8], KernelError> {
        self.check_cell(layer, page, slot)?;
        Ok(self.v_run(layer, page, slot, 1).bytes())
    }

    /// Keys of `len` consecutive slots from `slot` of a page (`len * row_len`).
    pub(crate) fn k_run(&self, layer: usize, page: usize, slot: usize, len: usize) -> KvRun<'_> {
        self.k
            .run(self.offset(layer, page, slot), len * self.row_len())
    }

    /// Values of `len` consecutive slots, as [`k_run`](Self::k_run).
    pub(crate) fn v_run(&self, layer: usize, page: usize, slot: usize, len: usize) -> KvRun<'_> {
        self.v
            .run(self.offset(layer, page, slot), len * self.row_len())
    }
}
