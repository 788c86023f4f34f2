//! Whole-tensor conversions between f32 and any supported ggml type.

use super::blocks::{
    dequantize_row, BlockIQ1M, BlockIQ1S, BlockIQ2S, BlockIQ2XS, BlockIQ2XXS, BlockIQ3S,
    BlockIQ3XXS, BlockIQ4NL, BlockIQ4XS, BlockMXFP4, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0,
    BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1,
    BlockTQ1_0, BlockTQ2_0, QuantBlock, QuantizeBlock,
};
use super::{GgmlType, QuantError};
use half::{bf16, f16, slice::HalfFloatSliceExt};

/// Decodes `bytes` (whole blocks of `ty`) into `out`, one f32 per element.
///
/// `out.len()` must be the element count the bytes hold. Types without a
/// dequantizer (the integer types, F64) give [`QuantError::Unsupported`].
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    use GgmlType as T;
    let f = match ty {
        T::F32 => dequantize_bytes::<f32>,
        T::F16 => dequantize_f16_bytes,
        T::BF16 => dequantize_bytes::<bf16>,
        T::Q4_0 => dequantize_bytes::<BlockQ4_0>,
        T::Q4_1 => dequantize_bytes::<BlockQ4_1>,
        T::Q5_0 => dequantize_bytes::<BlockQ5_0>,
        T::Q5_1 => dequantize_bytes::<BlockQ5_1>,
        T::Q8_0 => dequantize_bytes::<BlockQ8_0>,
        T::Q8_1 => dequantize_bytes::<BlockQ8_1>,
        T::Q2_K => dequantize_bytes::<BlockQ2K>,
        T::Q3_K => dequantize_bytes::<BlockQ3K>,
        T::Q4_K => dequantize_bytes::<BlockQ4K>,
        T::Q5_K => dequantize_bytes::<BlockQ5K>,
        T::Q6_K => dequantize_bytes::<BlockQ6K>,
        T::Q8_K => dequantize_bytes::<BlockQ8K>,
        T::IQ4_NL => dequantize_bytes::<BlockIQ4NL>,
        T::IQ4_XS => dequantize_bytes::<BlockIQ4XS>,
        T::TQ1_0 => dequantize_bytes::<BlockTQ1_0>,
        T::TQ2_0 => dequantize_bytes::<BlockTQ2_0>,
        T::MXFP4 => dequantize_bytes::<BlockMXFP4>,
        T::IQ2_XXS => dequantize_bytes::<BlockIQ2XXS>,
        T::IQ2_XS => dequantize_bytes::<BlockIQ2XS>,
        T::IQ2_S => dequantize_bytes::<BlockIQ2S>,
        T::IQ3_XXS => dequantize_bytes::<BlockIQ3XXS>,
        T::IQ3_S => dequantize_bytes::<BlockIQ3S>,
        T::IQ1_S => dequantize_bytes::<BlockIQ1S>,
        T::IQ1_M => dequantize_bytes::<BlockIQ1M>,
        _ => return Err(QuantError::Unsupported(ty)),
    };
    f(bytes, out)
}

/// Encodes `x` as `ty` and appends the blocks' bytes to `out`.
///
/// `x.len()` must be a multiple of the type's block length.
pub fn quantize(ty: GgmlType, x: &[f32], out: &mut Vec<u8>) -> Result<(), QuantError> {
    use GgmlType as T;
    let f = match ty {
        T::F32 => quantize_bytes::<f32>,
        T::F16 => quantize_bytes::<f16>,
        T::BF16 => quantize_bytes::<bf16>,
        T::Q4_0 => quantize_bytes::<BlockQ4_0>,
        T::Q4_1 => quantize_bytes::<BlockQ4_1>,
        T::Q5_0 => quantize_bytes::<BlockQ5_0>,
        T::Q5_1 => quantize_bytes::<BlockQ5_1>,
        T::Q8_0 => quantize_bytes::<BlockQ8_0>,
        T::Q8_1 => quantize_bytes::<BlockQ8_1>,
        T::Q2_K => quantize_bytes::<BlockQ2K>,
        T::Q3_K => quantize_bytes::<BlockQ3K>,
        T::Q4_K => quantize_bytes::<BlockQ4K>,
        T::Q5_K => quantize_bytes::<BlockQ5K>,
        T::Q6_K => quantize_bytes::<BlockQ6K>,
        T::Q8_K => quantize_bytes::<BlockQ8K>,
        T::IQ4_NL => quantize_bytes::<BlockIQ4NL>,
        T::IQ4_XS => quantize_bytes::<BlockIQ4XS>,
        T::TQ1_0 => quantize_bytes::<BlockTQ1_0>,
        T::TQ2_0 => quantize_bytes::<BlockTQ2_0>,
        T::MXFP4 => quantize_bytes::<BlockMXFP4>,
        _ if ty.is_supported() => return Err(QuantError::NoQuantizer(ty)),
        _ => return Err(QuantError::Unsupported(ty)),
    };
    f(x, out)
}

fn dequantize_bytes<B: QuantBlock>(bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let size = std::mem::size_of::<B>();
    let length_error = || QuantError::Length {
        ty: B::TYPE,
        bytes: bytes.len(),
        elements: out.len(),
    };
    if !bytes.len().is_multiple_of(size) || bytes.len() / size * B::LEN != out.len() {
        return Err(length_error());
    }
    match bytemuck::try_cast_slice::<u8, B>(bytes) {
        Ok(blocks) => dequantize_row(blocks, out),
        // Unaligned bytes (e.g. a sub-slice of a mapping): read a copy per block.
        Err(_) => {
            for (raw, out) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(B::LEN)) {
                bytemuck::pod_read_unaligned::<B>(raw).dequantize_into(out);
            }
        }
    }
    Ok(())
}

/// F16 through half's slice conversion, which uses F16C where the CPU has it.
fn dequantize_f16_bytes(bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    match bytemuck::try_cast_slice::<u8, f16>(bytes) {
        Ok(h) if h.len() == out.len() => {
            h.convert_to_f32_slice(out);
            Ok(())
        }
        _ => dequantize_bytes::<f16>(bytes, out),
    }
}

fn quantize_bytes<B: QuantizeBlock>(x: &[f32], out: &mut Vec<u8>) -> Result<(), QuantError> {
    if !x.len().is_multiple_of(B::LEN) {
        return Err(QuantError::PartialBlock {
            ty: B::TYPE,
            elements: x.len(),
        });
    }
    out.reserve(x.len() / B::LEN * std::mem::size_of::<B>());
    for chunk in x.chunks_exact(B::LEN) {
        out.extend_from_slice(bytemuck::bytes_of(&B::quantize(chunk)));
    }
    Ok(())
}
