//! Block quantization formats: plain block structs, reference dequantizers
//! to f32, and quantizers from f32.

pub mod ggml_type;

pub use ggml_type::GgmlType;
