//! A copy of a weight matrix with eight rows interleaved four bytes at a
//! time, made once at load for the AVX2 kernels of 32-element block types
//! (Q4_0, Q5_0, Q8_0).
//!
//! In GGUF order a decode product spends most of its instructions per
//! block and row on unpacking (the fifth bits of Q5_0 are spread with a
//! shuffle, a mask and a compare), converting one f16 scale and reducing
//! lanes: on a 2-core AVX2 machine Q5_0 ran at ~9 GB/s a core, below what
//! memory gives. Interleaved, one 256-bit vector holds four consecutive
//! elements of each of eight rows, so 32-bit lane `r` is row `r`: the
//! activations' four bytes are broadcast, a block's integer dot of eight
//! rows needs no reduction, the eight scales convert in one instruction,
//! and the fifth bits come from one vector with a shift and a mask. The
//! copy has the same size as the original.
//!
//! Layout: groups of eight rows, each a run of `cols / 32` group-blocks:
//! - bytes 0..16: the eight rows' f16 scales, row 0 first;
//! - the elements, as vectors of 32 bytes. Element `e` (0..32) of row `r`
//!   belongs to vector `j = e / 4`, byte `4r + e % 4`:
//!   - Q8_0: eight such vectors of signed bytes;
//!   - Q4_0 and Q5_0: four vectors of nibbles, vector `v` holding `j = 2v`
//!     in its low nibbles and `j = 2v + 1` in its high ones;
//!   - Q5_0 then one vector of fifth bits: bit `j` of byte `4r + i` is
//!     the fifth bit of element `4j + i`.
//!
//! Rows past the last whole group stay in the original only.

use rayon::prelude::*;

use super::weights::WeightMatrix;
use crate::quant::GgmlType;

/// Rows per group.
pub const GROUP_ROWS: usize = 8;

/// The interleaved copy of a matrix's whole groups of rows.
#[derive(Debug)]
pub struct InterleavedRows {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl InterleavedRows {
    /// Whether `ty` has an interleaved layout.
    pub fn supports(ty: GgmlType) -> bool {
        matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0)
    }

    /// The interleaved copy of `w`, or `None` where the type has no layout,
    /// the matrix has no whole group, or its bytes are not whole rows.
    pub fn build(w: &WeightMatrix) -> Option<InterleavedRows> {
        let groups = w.rows / GROUP_ROWS;
        if !Self::supports(w.ty) || groups == 0 || w.validate("interleave").is_err() {
            return None;
        }
        let bb = w.ty.block_bytes();
        let group_bytes = GROUP_ROWS * w.row_bytes();
        let mut data = vec![0u8; groups * group_bytes];
        data.par_chunks_mut(group_bytes)
            .enumerate()
            .for_each(|(g, dst)| {
                let rows: [&[u8]; GROUP_ROWS] = std::array::from_fn(|r| w.row(g * GROUP_ROWS + r));
                for (b, out) in dst.chunks_exact_mut(GROUP_ROWS * bb).enumerate() {
                    let blocks = rows.map(|row| &row[b * bb..(b + 1) * bb]);
                    interleave_block(w.ty, blocks, out);
                }
            });
        Some(InterleavedRows {
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
            data,
        })
    }

    /// Whole groups of rows held.
    pub fn groups(&self) -> usize {
        self.rows / GROUP_ROWS
    }

    /// Whether this is the copy of a matrix of `w`'s type and shape.
    pub fn fits(&self, w: &WeightMatrix) -> bool {
        self.ty == w.ty && self.rows == w.rows && self.cols == w.cols
    }

    /// Bytes of one group-block.
    pub fn block_bytes(&self) -> usize {
        GROUP_ROWS * self.ty.block_bytes()
    }

    /// Group `g`'s bytes (its `cols / 32` group-blocks).
    #[inline]
    pub fn group(&self, g: usize) -> &[u8] {
        let n = self.cols / 32 * self.block_bytes();
        &self.data[g * n..(g + 1) * n]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Writes one group-block (see the module's layout) from eight rows'
/// blocks of the same column range, four bytes at a time (load time
/// matters: the real model's copies are 319 MB).
fn interleave_block(ty: GgmlType, blocks: [&[u8]; GROUP_ROWS], out: &mut [u8]) {
    match ty {
        GgmlType::Q8_0 => interleave::<34>(blocks, out, |b, put| {
            for j in 0..8 {
                put(j, word(b, 2 + 4 * j));
            }
        }),
        GgmlType::Q4_0 => interleave::<18>(blocks, out, |b, put| nibbles(b, 2, put)),
        GgmlType::Q5_0 => interleave::<22>(blocks, out, |b, put| {
            nibbles(b, 6, &mut *put);
            // Byte i gathers bits i, i+4, …, i+28 of the block's fifth bits.
            let high = word(b, 2);
            let bytes: [u8; 4] = std::array::from_fn(|i| {
                let t = high >> i & 0x1111_1111;
                let t = (t | t >> 3) & 0x0303_0303;
                let t = (t | t >> 6) & 0x000f_000f;
                ((t | t >> 12) & 0xff) as u8
            });
            put(4, u32::from_le_bytes(bytes));
        }),
        _ => unreachable!("checked by InterleavedRows::supports"),
    }
}

/// The little-endian word at `b[at..at + 4]`.
#[inline(always)]
fn word<const B: usize>(b: &[u8; B], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Copies the eight scales and has `row` write each row's element
/// vectors: `put(vector, word)` stores its four bytes of that vector.
#[inline(always)]
fn interleave<const B: usize>(
    blocks: [&[u8]; GROUP_ROWS],
    out: &mut [u8],
    row: impl Fn(&[u8; B], &mut dyn FnMut(usize, u32)),
) {
    let (scales, elements) = out.split_at_mut(2 * GROUP_ROWS);
    for (r, b) in blocks.into_iter().enumerate() {
        let b: &[u8; B] = b.try_into().expect("whole blocks");
        scales[2 * r..2 * r + 2].copy_from_slice(&b[..2]);
        row(b, &mut |vector, v| {
            elements[32 * vector + 4 * r..][..4].copy_from_slice(&v.to_le_bytes())
        });
    }
}

/// The four nibble vectors' words of a Q4_0 / Q5_0 block whose nibbles
/// start at `qs`: elements 0..16 are the low nibbles, 16..32 the high
/// ones; vector v holds elements 8v..8v+4 (low) and 8v+4..8v+8 (high).
#[inline(always)]
fn nibbles<const B: usize>(b: &[u8; B], qs: usize, put: &mut dyn FnMut(usize, u32)) {
    let m = 0x0f0f_0f0f;
    for v in 0..4 {
        let at = qs + 8 * (v % 2);
        let (lo, hi) = (word(b, at), word(b, at + 4));
        put(
            v,
            match v {
                0 | 1 => (lo & m) | (hi & m) << 4,
                _ => (lo >> 4 & m) | (hi & !m),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;

    /// Element `e` of row `r` in group-block `blk`, read back through the
    /// layout as the module documents it (independently of the writer).
    fn read_back(ty: GgmlType, blk: &[u8], r: usize, e: usize) -> f32 {
        let d = half::f16::from_le_bytes([blk[2 * r], blk[2 * r + 1]]).to_f32();
        let (j, i) = (e / 4, e % 4);
        let at = 16 + 4 * r + i;
        match ty {
            GgmlType::Q8_0 => d * blk[at + 32 * j] as i8 as f32,
            _ => {
                let byte = blk[at + 32 * (j / 2)];
                let nibble = if j % 2 == 0 { byte & 0x0f } else { byte >> 4 };
                let (fifth, offset) = match ty {
                    GgmlType::Q5_0 => ((blk[at + 128] >> j & 1) << 4, 16.0),
                    _ => (0, 8.0),
                };
                d * ((nibble | fifth) as f32 - offset)
            }
        }
    }

    #[test]
    fn every_element_reads_back_as_the_original_dequantizes_it() {
        let (rows, cols) = (19, 96);
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let values: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * (1 + i % 5) as f32)
                .collect();
            let mut bytes = Vec::new();
            quant::quantize(ty, &values, &mut bytes).unwrap();
            let mut want = vec![0f32; rows * cols];
            quant::dequantize(ty, &bytes, &mut want).unwrap();
            let w = WeightMatrix::new(ty, &bytes, rows, cols);
            let il = InterleavedRows::build(&w).unwrap();
            assert_eq!(il.groups(), 2);
            assert!(il.fits(&w));
            assert_eq!(il.bytes(), 16 * w.row_bytes());
            for g in 0..il.groups() {
                for (b, blk) in il.group(g).chunks_exact(il.block_bytes()).enumerate() {
                    for r in 0..GROUP_ROWS {
                        for e in 0..32 {
                            let at = (g * GROUP_ROWS + r) * cols + 32 * b + e;
                            assert_eq!(read_back(ty, blk, r, e), want[at], "{ty} row {r} e {e}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matrices_without_a_whole_group_or_layout_get_no_copy() {
        let bytes = vec![0u8; 7 * 22];
        assert!(
            InterleavedRows::build(&WeightMatrix::new(GgmlType::Q5_0, &bytes, 7, 32)).is_none()
        );
        let k = vec![0u8; 8 * 144];
        assert!(InterleavedRows::build(&WeightMatrix::new(GgmlType::Q4_K, &k, 8, 256)).is_none());
        // Truncated bytes are refused, not read past.
        assert!(InterleavedRows::build(&WeightMatrix::new(
            GgmlType::Q8_0,
            &k[..8 * 34 - 1],
            8,
            32
        ))
        .is_none());
    }
}
