//! Everything that can be wrong with an artifact, each naming the part.

use std::path::PathBuf;

/// An error from compiling, opening or loading an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The container itself does not parse (truncated header, bad magic,
    /// a tensor past the end of the file, ...).
    #[error("artifact {path}: {source}")]
    Container {
        path: String,
        #[source]
        source: crate::gguf::GgufError,
    },
    #[error("{path} is a GGUF model, not a compiled artifact (no rfc.format_version): compile it with `rfc compile`")]
    NotAnArtifact { path: String },
    #[error("artifact format version {found} is not supported (this build reads version {supported}): recompile the model with this rfc")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("artifact is truncated: it should be {expected} bytes long but is {found}")]
    Truncated { expected: u64, found: u64 },
    #[error("artifact has {extra} bytes after its end ({expected} bytes expected, {found} found): the file is damaged", extra = found.saturating_sub(*expected))]
    TrailingBytes { expected: u64, found: u64 },
    #[error("artifact {part} checksum mismatch (stored {stored}, computed {computed}): the file is damaged, compile it again")]
    ChecksumMismatch {
        part: String,
        stored: String,
        computed: String,
    },
    #[error("artifact key {key}: {reason}")]
    BadField { key: String, reason: String },
    #[error("artifact was compiled for target {artifact}, not {wanted}: compile it with `rfc compile --target {wanted}`")]
    WrongTarget { artifact: String, wanted: String },
    #[error("artifact was compiled for {artifact}, but the device is {device}: compile it with `rfc compile --target {device}`")]
    WrongDevice { artifact: String, device: String },
    #[error("artifact for {artifact} cannot run on {asked}: {hint}")]
    NotForDevice {
        artifact: String,
        asked: String,
        hint: String,
    },
    #[error("artifact has no code object for kernel {label} (it was compiled by another rfc version: compile it again)")]
    MissingKernel { label: String },
    #[error("invalid compile options: {0}")]
    Options(String),
    #[error("unknown target {0:?} (expected cpu, sm_NN or gfxNNNN)")]
    UnknownTarget(String),
    #[error("target {target}: kernels not available in this build yet ({reason})")]
    KernelsUnavailable { target: String, reason: String },
    #[error("artifact IR (rfc.ir): {0}")]
    Ir(#[from] crate::ir::parse::ParseError),
    #[error("artifact IR (rfc.ir) is not a valid graph: {0}")]
    InvalidIr(crate::ir::verify::VerifyError),
    #[error("artifact plan (rfc.plan): {0}")]
    Plan(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Frontend(#[from] crate::frontend::FrontendError),
    #[error(transparent)]
    Pass(#[from] crate::passes::PassError),
    #[error(transparent)]
    Codegen(#[from] crate::codegen::CodegenError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
}

impl ArtifactError {
    pub(crate) fn field(key: &str, reason: impl Into<String>) -> Self {
        ArtifactError::BadField {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;
