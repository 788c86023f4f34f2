//! Everything that can stop a GGUF file from becoming a graph, each naming
//! the key, tensor or spec line at fault.

use std::path::PathBuf;

use crate::gguf::GgufError;
use crate::ir::verify::VerifyError;

/// An error from reading an architecture spec or building a model's graph.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unknown architecture {arch:?} (general.architecture); known: {known}")]
    UnknownArchitecture { arch: String, known: String },
    #[error("the file has no general.architecture key; known architectures: {known}")]
    NoArchitecture { known: String },
    #[error("required tensor {name:?} ({alias}) is not in the file")]
    MissingTensor { name: String, alias: String },
    #[error("tensor {name:?}: shape {found:?} (rows first), expected {expected:?} from the hparams ({rule})")]
    TensorShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
        rule: String,
    },
    #[error("metadata key {key:?}: {message}")]
    BadHParam { key: String, message: String },
    #[error("spec {spec:?}: {message}")]
    Spec { spec: String, message: String },
    #[error("cannot read spec file {path}: {source}")]
    SpecFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the graph built by spec {spec:?} is invalid: {source}")]
    Invalid {
        spec: String,
        #[source]
        source: VerifyError,
    },
}

pub type Result<T, E = FrontendError> = std::result::Result<T, E>;

impl FrontendError {
    pub(crate) fn spec(spec: &str, message: impl Into<String>) -> Self {
        FrontendError::Spec {
            spec: spec.into(),
            message: message.into(),
        }
    }
}
