//! Everything that can be wrong with a GGUF file, each naming where.

use std::path::PathBuf;

use crate::quant::GgmlType;

/// An error from reading a GGUF file. Offsets are absolute byte offsets in the
/// file unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    NotAnOutput {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("file ends at byte {file_len} while reading {what} at offset {offset} ({needed} bytes needed)")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported GGUF version {version} (supported: 2 and 3){hint}")]
    UnsupportedVersion { version: u32, hint: &'static str },
    #[error("{what} count {count} at offset {offset} is larger than the file could hold")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        offset: u64,
    },
    #[error("metadata key {key:?}: arrays nested deeper than {max} levels at offset {offset}")]
    NestingTooDeep {
        key: String,
        max: usize,
        offset: u64,
    },
    #[error("metadata key {key:?}: unknown value type {type_id} at offset {offset}")]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: u64,
    },
    #[error("tensor {tensor:?}: unknown tensor type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },
    #[error("{what} at offset {offset} is not valid UTF-8")]
    NotUtf8 { what: String, offset: u64 },
    #[error("metadata key {key:?}: bool byte {byte} at offset {offset} is neither 0 nor 1")]
    BadBool { key: String, byte: u8, offset: u64 },
    #[error("metadata key {key:?} appears twice (second at offset {offset})")]
    DuplicateKey { key: String, offset: u64 },
    #[error("tensor name {name:?} appears twice")]
    DuplicateTensor { name: String },
    #[error("tensor {tensor:?}: data [{offset}, {offset}+{size}) lies past the end of the data section ({data_len} bytes)")]
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        size: u64,
        data_len: u64,
    },
    #[error("tensor {tensor:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("general.alignment = {value} is not a non-zero power of two")]
    BadAlignment { value: u64 },
    #[error("tensor {tensor:?}: dims {dims:?} overflow the element count")]
    ShapeOverflow { tensor: String, dims: Vec<u64> },
    #[error("tensor {tensor:?}: {n_dims} dims, at most 4 are allowed")]
    TooManyDims { tensor: String, n_dims: u32 },
    #[error("tensor {tensor:?}: row length {row_len} is not a multiple of the {ty} block size {block_len}")]
    RowNotBlockMultiple {
        tensor: String,
        ty: GgmlType,
        row_len: u64,
        block_len: usize,
    },
    #[error("metadata key {key:?} is missing")]
    MissingKey { key: String },
    #[error("metadata key {key:?}: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("tensor {name:?} is not in the file")]
    MissingTensor { name: String },
    #[error("tensor {tensor:?}: type {ty} is listed but not supported for computation")]
    UnsupportedType { tensor: String, ty: GgmlType },
    #[error("GGUF writer: {0}")]
    Write(String),
    #[error("GGUF writer: cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;
