//! Which spec a file is: by `general.architecture`, refined by names and
//! keys (most Mistral GGUFs say `llama`).

use std::path::Path;

use super::error::{FrontendError, Result};
use super::spec::ArchSpec;
use crate::gguf::GgufFile;

/// The chosen spec and a sentence saying why (for `rfc ir` / `rfc inspect`).
#[derive(Debug, Clone)]
pub struct Detected {
    pub spec: ArchSpec,
    pub reason: String,
}

/// Detects among the built-in specs.
pub fn detect(file: &GgufFile) -> Result<Detected> {
    detect_among(file, &ArchSpec::builtin())
}

/// The spec `spec_file` when given (`--spec FILE`: used whatever the file's
/// architecture), else the detected built-in one.
pub fn detect_or_load(file: &GgufFile, spec_file: Option<&Path>) -> Result<Detected> {
    let Some(path) = spec_file else {
        return detect(file);
    };
    let spec = ArchSpec::from_file(path)?;
    let arch = file.architecture().unwrap_or("(none)");
    let reason = format!("--spec {} (general.architecture = {arch})", path.display());
    Ok(chosen(&spec, reason))
}

/// Detects among `specs`: a spec that refines the file's architecture and
/// whose hint holds wins; otherwise the spec that lists the architecture.
pub fn detect_among(file: &GgufFile, specs: &[ArchSpec]) -> Result<Detected> {
    let md = file.metadata();
    let Some(arch) = file.architecture() else {
        return Err(FrontendError::NoArchitecture {
            known: known(specs),
        });
    };
    for spec in specs {
        let Some(refine) = spec
            .detect
            .refine
            .as_ref()
            .filter(|r| r.architecture == arch)
        else {
            continue;
        };
        for key in ["general.name", "general.basename"] {
            let Some(value) = md.get(key).and_then(|v| v.as_str()) else {
                continue;
            };
            let lower = value.to_lowercase();
            if let Some(hint) = refine
                .name_contains
                .iter()
                .find(|h| lower.contains(&h.to_lowercase()))
            {
                let reason = format!(
                    "general.architecture = {arch} and {key} = {value:?} mentions {hint:?}"
                );
                return Ok(chosen(spec, reason));
            }
        }
        for pattern in &refine.has_key {
            let key = pattern.replace("{arch}", arch);
            if md.get(&key).is_some() {
                let reason = format!("general.architecture = {arch} and the file has {key}");
                return Ok(chosen(spec, reason));
            }
        }
    }
    specs
        .iter()
        .find(|s| s.detect.architectures.iter().any(|a| a == arch))
        .map(|spec| chosen(spec, format!("general.architecture = {arch}")))
        .ok_or_else(|| FrontendError::UnknownArchitecture {
            arch: arch.into(),
            known: known(specs),
        })
}

fn chosen(spec: &ArchSpec, reason: String) -> Detected {
    tracing::debug!(spec = %spec.name, %reason, "architecture detected");
    Detected {
        spec: spec.clone(),
        reason,
    }
}

/// The architectures `specs` accept, for error messages.
fn known(specs: &[ArchSpec]) -> String {
    let mut v: Vec<&str> = specs
        .iter()
        .flat_map(|s| s.detect.architectures.iter().map(String::as_str))
        .collect();
    v.sort();
    v.dedup();
    v.join(", ")
}
