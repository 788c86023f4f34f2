//! `rfc compile` for a GPU that is present: the artifact's matmul variant
//! tables timed on that GPU and recorded in the artifact, so that a load on
//! a device of the same name takes them instead of timing again
//! (exec/gpu_model/tune.rs). Where no GPU of the target is here, the
//! artifact keeps the stated defaults, recorded as unmeasured.

use std::path::Path;
use std::sync::Arc;

use super::gpu_artifact::load_gpu_artifact;
use super::model::LoadError;
use super::options::LoadOptions;
use crate::artifact::progress::Silent;
use crate::artifact::target::ArtifactTarget;
use crate::artifact::write::temp_path;
use crate::artifact::{keys, reseal, Artifact, ArtifactError};
use crate::backend::Gpu;
use crate::exec::any_backend::AnyBackend;
use crate::exec::gpu_model::tune;
use crate::gguf::{GgufFile, Value};

/// Times the matmul variants of the GPU artifact at `path` on the first
/// GPU of its target's vendor, if that GPU is of the artifact's target,
/// and reseals the artifact in place with them. Returns the device's name,
/// or `None` where there is no such GPU (or `RFC_MATMUL_TUNE=0`).
pub fn tune_artifact(path: &Path) -> Result<Option<String>, LoadError> {
    let file = Arc::new(GgufFile::open(path)?);
    let artifact = Artifact::from_file(file.clone())?;
    let ArtifactTarget::Gpu(target) = &artifact.target else {
        return Ok(None);
    };
    if !tune::enabled() {
        return Ok(None);
    }
    let gpu = match Gpu::open(target.vendor(), 0) {
        Ok(g) => g,
        Err(e) => {
            tracing::info!(error = %e, "no GPU to time the matmul variants on: stated defaults recorded");
            return Ok(None);
        }
    };
    if artifact.target.require_device(gpu.info()).is_err() {
        tracing::info!(device = %gpu.info().name, "the GPU here is not the artifact's target: stated defaults recorded");
        return Ok(None);
    }
    let loaded = load_gpu_artifact(file.clone(), &LoadOptions::default(), &gpu, false, &Silent)?;
    let AnyBackend::Gpu(model) = loaded.session.into_backend() else {
        return Ok(None);
    };
    let tuning = model.matmul_tuning().clone();
    drop(model);
    let Some(device) = tuning.measured_on.clone() else {
        return Ok(None);
    };
    let json = serde_json::to_string(&tuning).expect("plain JSON");
    let bytes = reseal(&file, |entries| {
        entries.retain(|(k, _)| k != keys::MATMUL_TUNING);
        entries.push((keys::MATMUL_TUNING.to_string(), Value::String(json)));
    })?;
    drop(artifact);
    drop(file);
    let tmp = temp_path(path);
    let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ArtifactError::Write {
            path: path.to_path_buf(),
            source,
        }
        .into());
    }
    Ok(Some(device))
}
