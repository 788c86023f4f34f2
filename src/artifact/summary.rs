//! What an artifact holds, for `rfc inspect`: its provenance, limits, plan,
//! weights, kernels and which checksums were checked.

use std::sync::Arc;

use serde_json::json;

use super::error::Result;
use super::keys;
use super::progress::Progress;
use super::read::Artifact;
use crate::gguf::GgufFile;

/// An artifact's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub format_version: u32,
    pub target: String,
    pub compiler: String,
    pub kernel_compiler: String,
    pub source_name: String,
    pub source_sha256: String,
    pub spec: String,
    pub weight_layout: String,
    pub max_batch_tokens: u64,
    pub max_logit_rows: u64,
    pub max_context: u64,
    pub page_size: u64,
    pub arena_bytes: u64,
    pub arena_lower_bound: u64,
    pub ir_nodes: usize,
    pub launches: usize,
    pub weights: usize,
    pub weight_bytes: u64,
    pub kernels: usize,
    pub kernel_bytes: u64,
    /// Whether every weight's checksum was checked (and matched).
    pub weights_verified: bool,
    /// GPU targets: where the matmul variants were timed, or that they
    /// are the stated defaults.
    pub matmul_variants: Option<String>,
}

/// Checks `file` as an artifact (weights too with `verify`) and summarizes it.
pub fn summarize(file: Arc<GgufFile>, verify: bool, progress: &dyn Progress) -> Result<Summary> {
    let a = Artifact::from_file(file)?;
    if verify {
        a.verify_weights(progress)?;
    }
    let launches: serde_json::Value = serde_json::from_str(a.get(keys::LAUNCHES)?)
        .map_err(|e| super::ArtifactError::field(keys::LAUNCHES, e.to_string()))?;
    let kernels = a.kernels()?;
    let p = &a.plan;
    Ok(Summary {
        format_version: a.version,
        target: a.target.to_string(),
        compiler: a.get(keys::COMPILER)?.into(),
        kernel_compiler: a.get(keys::KERNEL_COMPILER)?.into(),
        source_name: a.get(keys::SOURCE_NAME)?.into(),
        source_sha256: a.get(keys::SOURCE_SHA256)?.into(),
        spec: a.get(keys::SPEC)?.into(),
        weight_layout: a.get(keys::WEIGHT_LAYOUT)?.into(),
        max_batch_tokens: p.env.tokens,
        max_logit_rows: p.env.rows,
        max_context: p.env.pages * p.page_size,
        page_size: p.page_size,
        arena_bytes: p.arena_bytes,
        arena_lower_bound: p.lower_bound,
        ir_nodes: p.schedule.len(),
        launches: launches.as_array().map_or(0, Vec::len),
        weights: a.weights().count(),
        weight_bytes: a.weights().map(|t| t.size).sum(),
        kernels: kernels.len(),
        kernel_bytes: kernels.iter().map(|k| k.code.len() as u64).sum(),
        weights_verified: verify,
        matmul_variants: a.matmul_tuning()?.map(|t| match t.measured_on {
            Some(device) => format!("timed on {device} ({} matmuls)", t.tables.len()),
            None => "stated defaults, unmeasured".into(),
        }),
    })
}

/// What `rfc inspect` shows after the GGUF view: `None` for a plain GGUF
/// model (where `verify` is an error: it has no checksums), else the
/// checked artifact's summary, with progress bars while verifying.
pub fn for_inspect(
    file: &Arc<GgufFile>,
    path: &std::path::Path,
    verify: bool,
) -> Result<Option<Summary>> {
    if !super::is_artifact(file) {
        if verify {
            return Err(super::ArtifactError::NotAnArtifact {
                path: path.display().to_string(),
            });
        }
        return Ok(None);
    }
    summarize(file.clone(), verify, &super::Bars::new()).map(Some)
}

/// `rfc ir MODEL.rfc`: the stored final IR (with arena ranges) after a
/// line naming what it was compiled for. Only the final IR is stored, so
/// `after` must be `plan_memory` (the default) and there are no `--stats`.
pub fn stored_ir(file: GgufFile, after: &str, stats: bool) -> Result<String> {
    if after != "plan_memory" || stats {
        return Err(super::ArtifactError::field(
            keys::IR,
            "an artifact holds only the final IR (after plan_memory): use the GGUF model for --after or --stats",
        ));
    }
    let a = Artifact::from_file(Arc::new(file))?;
    let p = &a.plan;
    Ok(format!(
        "# artifact for {}: spec {}, compiled by {} from {}\n\
         # arena {} bytes for T={} (lower bound {}, naive {}, order {})\n{}",
        a.target,
        a.get(keys::SPEC)?,
        a.get(keys::COMPILER)?,
        a.get(keys::SOURCE_NAME)?,
        p.arena_bytes,
        p.env.tokens,
        p.lower_bound,
        p.naive_bytes,
        p.strategy,
        a.ir_text()?
    ))
}

impl Summary {
    /// The text section `rfc inspect` prints after the GGUF view.
    pub fn to_text(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let weights_check = if self.weights_verified {
            "verified"
        } else {
            "not checked (use --verify)"
        };
        let variants = self
            .matmul_variants
            .as_ref()
            .map_or(String::new(), |v| format!("  matmul variants  {v}\n"));
        format!(
            "artifact:\n  \
             format version   {}\n  \
             target           {}\n  \
             compiled by      {} (kernel compiler: {})\n  \
             source           {} (sha256 {})\n  \
             spec             {}\n  \
             limits           {} tokens/step, {} logit rows/step, context {} ({}-token pages)\n  \
             plan             {} IR nodes, {} launches/step, arena {} bytes ({:.2} MiB, lower bound {})\n  \
             weights          {} tensors, {} bytes ({:.1} MiB), layout {}\n  \
             kernels          {} code objects, {} bytes\n  \
             checksums        header, IR, plan, kernels: ok; weights: {weights_check}\n{variants}",
            self.format_version,
            self.target,
            self.compiler,
            self.kernel_compiler,
            self.source_name,
            self.source_sha256,
            self.spec,
            self.max_batch_tokens,
            self.max_logit_rows,
            self.max_context,
            self.page_size,
            self.ir_nodes,
            self.launches,
            self.arena_bytes,
            mib(self.arena_bytes),
            self.arena_lower_bound,
            self.weights,
            self.weight_bytes,
            mib(self.weight_bytes),
            self.weight_layout,
            self.kernels,
            self.kernel_bytes,
        )
    }

    /// The `artifact` object `rfc inspect --json` adds.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "format_version": self.format_version,
            "target": self.target,
            "compiler": self.compiler,
            "kernel_compiler": self.kernel_compiler,
            "source_name": self.source_name,
            "source_sha256": self.source_sha256,
            "spec": self.spec,
            "weight_layout": self.weight_layout,
            "max_batch_tokens": self.max_batch_tokens,
            "max_logit_rows": self.max_logit_rows,
            "max_context": self.max_context,
            "page_size": self.page_size,
            "arena_bytes": self.arena_bytes,
            "arena_lower_bound": self.arena_lower_bound,
            "ir_nodes": self.ir_nodes,
            "launches": self.launches,
            "weights": self.weights,
            "weight_bytes": self.weight_bytes,
            "kernels": self.kernels,
            "kernel_bytes": self.kernel_bytes,
            "weights_verified": self.weights_verified,
            "matmul_variants": self.matmul_variants,
        })
    }
}
