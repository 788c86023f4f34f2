//! GGUF files: parsing (mmap, zero-copy tensor views), typed metadata, and
//! writing (for synthetic models and artifacts).

pub mod error;
pub mod file;
pub mod file_kind;
pub mod metadata;
pub mod parse;
pub mod tensor;
pub mod value;
pub mod writer;

pub use error::GgufError;
pub use file::GgufFile;
pub use metadata::Metadata;
pub use tensor::{TensorInfo, TensorView};
pub use value::{Value, ValueElement, ValueType};
pub use writer::{GgufWriter, TensorDataWriter};
