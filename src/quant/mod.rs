//! Block quantization formats: plain block structs, reference dequantizers
//! to f32, and quantizers from f32.
//!
//! [`dequantize`] and [`quantize`] convert whole tensors given their
//! [`GgmlType`]; [`blocks`] holds the typed block structs for kernels that
//! work block by block. docs/QUANT.md tabulates the formats and how each is
//! verified.

pub mod blocks;
mod convert;
pub mod error;
mod fit;
pub mod ggml_type;
pub mod round;

pub use convert::{dequantize, quantize};
pub use error::QuantError;
pub use ggml_type::GgmlType;
