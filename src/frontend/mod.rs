//! The frontend: a GGUF file and an architecture spec (ir_specs/) become the
//! hyperparameters ([`ModelConfig`]) and the canonical unfused [`Graph`].
//!
//! Architectures are data: the specs say which metadata keys hold the
//! hparams, which tensors exist (with their shapes in terms of the hparams),
//! and how a decoder block is wired, in a small statement language
//! ([`wiring`]). Adding an architecture that reuses existing ops is a spec
//! file and a test (docs/ARCHITECTURE.md walks through one).

pub mod builder;
pub mod config;
pub mod constants;
pub mod detect;
pub mod diagnose;
pub mod error;
pub mod spec;
pub mod synthetic;
pub mod wiring;

pub use config::ModelConfig;
pub use detect::{detect, detect_among, detect_or_load, Detected};
pub use error::FrontendError;
pub use spec::ArchSpec;

use crate::gguf::GgufFile;
use crate::ir::Graph;

/// Detects the architecture among the built-in specs and builds the graph.
pub fn build_graph(file: &GgufFile) -> Result<(ModelConfig, Graph), FrontendError> {
    let detected = detect(file)?;
    build_graph_with(file, &detected.spec)
}

/// Builds the graph of `file` with a given spec (`--spec FILE`), checks
/// every tensor it uses against the hparams, and verifies the result.
pub fn build_graph_with(
    file: &GgufFile,
    spec: &ArchSpec,
) -> Result<(ModelConfig, Graph), FrontendError> {
    let mut cfg = ModelConfig::from_gguf(file, spec)?;
    let graph = builder::build(file, spec, &mut cfg)?;
    crate::ir::verify::verify(&graph).map_err(|source| FrontendError::Invalid {
        spec: spec.name.clone(),
        source,
    })?;
    Ok((cfg, graph))
}
