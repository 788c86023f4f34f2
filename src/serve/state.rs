//! What every handler shares: the engine, the served model's names, the
//! API key, and whether the server is shutting down.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use super::errors::ApiError;
use crate::sched::{Engine, EngineStatus, Ready};
use crate::tokenizer::chat::ChatTemplate;

/// What the loader tells the server about the model beyond the tokenizer.
pub struct ModelInfo {
    /// The model's chat template (ChatML when it has none); an error when
    /// its template does not compile, which only chat requests see.
    pub template: Result<ChatTemplate, String>,
    /// Where it runs, e.g. `cpu (asked for)`.
    pub device: String,
}

pub type ServeEngine = Engine<ModelInfo>;

/// The names a request's `model` may use.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// The id reported everywhere (`--alias`, default the file stem).
    pub id: String,
    file_name: String,
    stem: String,
    /// When the server started (the model card's `created`).
    pub created: u64,
}

impl ServedModel {
    pub fn new(path: &Path, alias: Option<&str>, created: u64) -> Self {
        let file_name = path
            .file_name()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let stem = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        ServedModel {
            id: alias.map_or_else(|| stem.clone(), str::to_string),
            file_name,
            stem,
            created,
        }
    }

    /// Absent, the id, the file name or its stem all name this model.
    pub fn check(&self, requested: Option<&str>) -> Result<(), ApiError> {
        match requested {
            None => Ok(()),
            Some(m)
                if [&self.id, &self.file_name, &self.stem]
                    .iter()
                    .any(|n| *n == m) =>
            {
                Ok(())
            }
            Some(m) => Err(ApiError::model_not_found(m, &self.id)),
        }
    }
}

/// The server's shared state.
pub struct AppState {
    pub engine: Arc<ServeEngine>,
    pub model: ServedModel,
    /// Required as `Authorization: Bearer KEY` on every endpoint but
    /// `/health` when set.
    pub api_key: Option<String>,
    /// `system_fingerprint` of every response.
    pub fingerprint: String,
    /// Compiles `response_format`, `grammar` and tool-call constraints.
    pub grammars: super::structured::Grammars,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(engine: Arc<ServeEngine>, model: ServedModel, api_key: Option<String>) -> Self {
        AppState {
            engine,
            model,
            api_key,
            fingerprint: format!("rfc-{}", env!("CARGO_PKG_VERSION")),
            grammars: Default::default(),
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Relaxed)
    }

    /// The loaded model, or the 503 that says why there is none.
    pub fn ready(&self) -> Result<&Ready<ModelInfo>, ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the server is shutting down",
            ));
        }
        match self.engine.status() {
            EngineStatus::Ready(r) => Ok(r),
            EngineStatus::Loading => Err(ApiError::unavailable(
                "model_loading",
                "the model is still loading",
            )),
            EngineStatus::Failed(e) => Err(ApiError::unavailable(
                "model_failed",
                format!("the model failed to load: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_named_by_alias_file_name_or_stem() {
        let m = ServedModel::new(Path::new("/m/qwen.gguf"), Some("coder"), 0);
        assert_eq!(m.id, "coder");
        for ok in [None, Some("coder"), Some("qwen.gguf"), Some("qwen")] {
            assert!(m.check(ok).is_ok(), "{ok:?}");
        }
        let e = m.check(Some("gpt-4")).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        assert_eq!(e.detail.code.as_deref(), Some("model_not_found"));
    }

    #[test]
    fn the_id_defaults_to_the_file_stem() {
        assert_eq!(
            ServedModel::new(Path::new("a/tiny.gguf"), None, 0).id,
            "tiny"
        );
    }
}
