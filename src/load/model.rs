//! A loaded model and what can stop one from loading.

use std::sync::Arc;
use std::time::Duration;

use crate::exec::cpu_model::CpuModel;
use crate::exec::session::{Session, StepBackend};
use crate::frontend::ModelConfig;
use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

/// What can stop a model from loading.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Frontend(#[from] crate::frontend::FrontendError),
    #[error(transparent)]
    Pass(#[from] crate::passes::PassError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error(transparent)]
    Artifact(#[from] crate::artifact::ArtifactError),
}

/// A model on a backend (the CPU unless named) with its tokenizer.
pub struct LoadedModel<B: StepBackend = CpuModel> {
    pub file: Arc<GgufFile>,
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub session: Session<B>,
    pub load_time: Duration,
}
