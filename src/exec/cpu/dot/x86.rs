//! x86-64 tile kernels (AVX2, AVX-512 VNNI), chosen at run time.

use super::TileKernel;
use crate::exec::cpu::simd::SimdPath;
use crate::quant::GgmlType;

/// The specialised kernel for `ty` on `path`, if there is one.
pub(super) fn tile_kernel(ty: GgmlType, path: SimdPath) -> Option<TileKernel> {
    let _ = (ty, path);
    None
}
