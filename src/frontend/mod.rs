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

/// [`build_graph`] for sequences of at most `context` positions (a
/// loader's context setting; the file's own `context_length` caps it).
/// The context matters only to LongRoPE, whose factor set depends on it.
pub fn build_graph_for(
    file: &GgufFile,
    context: usize,
) -> Result<(ModelConfig, Graph), FrontendError> {
    let detected = detect(file)?;
    build_graph_in(file, &detected.spec, Some(context))
}

/// Builds the graph of `file` with a given spec (`--spec FILE`), checks
/// every tensor it uses against the hparams, and verifies the result.
pub fn build_graph_with(
    file: &GgufFile,
    spec: &ArchSpec,
) -> Result<(ModelConfig, Graph), FrontendError> {
    build_graph_in(file, spec, None)
}

/// [`build_graph_with`] for sequences of at most `context` positions
/// (`None`: the file's `context_length`, as llama.cpp's default).
pub fn build_graph_in(
    file: &GgufFile,
    spec: &ArchSpec,
    context: Option<usize>,
) -> Result<(ModelConfig, Graph), FrontendError> {
    let mut cfg = ModelConfig::from_gguf(file, spec)?;
    if let Some(c) = context.filter(|&c| c > 0) {
        cfg.seq_context = c.min(cfg.context_length);
    }
    let graph = builder::build(file, spec, &mut cfg)?;
    crate::ir::verify::verify(&graph).map_err(|source| FrontendError::Invalid {
        spec: spec.name.clone(),
        source,
    })?;
    Ok((cfg, graph))
}
