//! Why a synthetic model could not be made, naming the tensor, key or
//! setting at fault.

use std::path::PathBuf;

use crate::gguf::GgufError;
use crate::quant::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Random data of this type cannot be made.
    #[error("cannot make random {ty} data: {why}")]
    Type { ty: GgmlType, why: &'static str },
    /// A tensor's random data could not be made.
    #[error("tensor {name:?}: {source}")]
    Tensor {
        name: String,
        #[source]
        source: Box<SynthError>,
    },
    /// The model's settings are inconsistent (heads not dividing the width, a
    /// row length that is not whole blocks, ...).
    #[error("invalid model settings: {0}")]
    Settings(String),
    /// The layout JSON is not what `rfc inspect --json --full` prints.
    #[error("layout {path}: {why}")]
    Layout { path: PathBuf, why: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

impl SynthError {
    /// Wraps an error in the name of the tensor being made.
    pub fn in_tensor(self, name: &str) -> Self {
        SynthError::Tensor {
            name: name.into(),
            source: Box::new(self),
        }
    }
}
