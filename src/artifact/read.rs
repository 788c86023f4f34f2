//! Opening an artifact: the container is parsed (zero-copy, mapped), then
//! checked in the order that names a problem best: format version, file
//! length, then the checksums of the header, IR, plan and kernels. The
//! weights have two checksums: a fast XXH3 per weight that every load checks
//! ([`Artifact::check_weights_fast`], a few percent of a load), and the
//! SHA-256 that `--verify` checks ([`Artifact::verify_weights`]).

use std::path::Path;
use std::sync::Arc;

use super::checksum::{sha256_hex, xxh3_hex};
use super::error::{ArtifactError, Result};
use super::plan_record::PlanRecord;
use super::progress::{Progress, Unit};
use super::target::ArtifactTarget;
use super::{keys, FORMAT_VERSION};
use crate::exec::gpu_model::tune::MatMulTuning;
use crate::frontend::{ArchSpec, ModelConfig};
use crate::gguf::{GgufError, GgufFile, Metadata, TensorInfo, Value, ValueType};
use crate::ir::{parse, Graph};
use crate::passes::MemoryPlan;

/// An opened artifact whose header, IR, plan and kernels passed their checks.
pub struct Artifact {
    file: Arc<GgufFile>,
    pub version: u32,
    pub target: ArtifactTarget,
    pub plan: PlanRecord,
}

/// A stored kernel, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub struct StoredKernel<'a> {
    pub label: &'a str,
    pub entries: &'a str,
    pub source: &'a str,
    pub code: &'a [u8],
}

impl Artifact {
    /// Maps and checks the artifact at `path`.
    pub fn open(path: &Path) -> Result<Artifact> {
        let file = GgufFile::open(path).map_err(|source| ArtifactError::Container {
            path: path.display().to_string(),
            source,
        })?;
        Artifact::from_file(Arc::new(file))
    }

    /// Checks an opened file.
    pub fn from_file(file: Arc<GgufFile>) -> Result<Artifact> {
        let version = format_version(&file)?;
        check_length(&file)?;
        let (target, plan) = check_parts(&file)?;
        let artifact = Artifact {
            file,
            version,
            target,
            plan,
        };
        let kernels = artifact.kernels()?;
        let sum = super::kernels_digest(
            &kernels.iter().map(|k| k.label).collect::<Vec<_>>(),
            &kernels.iter().map(|k| k.entries).collect::<Vec<_>>(),
            &kernels.iter().map(|k| k.source).collect::<Vec<_>>(),
            kernels.iter().map(|k| k.code),
        );
        check_sum("kernels", artifact.get(keys::CHECKSUM_KERNELS)?, &sum)?;
        Ok(artifact)
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// A string-valued `rfc.*` key.
    pub fn get(&self, key: &str) -> Result<&str> {
        get_str(self.file.metadata(), key)
    }

    /// The recorded matmul variant tables (GPU targets; `None` for the CPU
    /// and for artifacts written before they were recorded).
    pub fn matmul_tuning(&self) -> Result<Option<MatMulTuning>> {
        if self.file.metadata().get(keys::MATMUL_TUNING).is_none() {
            return Ok(None);
        }
        serde_json::from_str(self.get(keys::MATMUL_TUNING)?)
            .map(Some)
            .map_err(|e| ArtifactError::field(keys::MATMUL_TUNING, e.to_string()))
    }

    /// The stored IR text (with arena ranges).
    pub fn ir_text(&self) -> Result<&str> {
        self.get(keys::IR)
    }

    /// The compiled graph and its memory plan, from the stored IR and plan.
    /// The graph must pass the IR verifier and print back to the stored
    /// text exactly (then the node numbers the plan uses name the same
    /// nodes), and the plan must fit it ([`super::plan_check`]).
    pub fn graph_and_plan(&self) -> Result<(Graph, MemoryPlan)> {
        let text = self.ir_text()?;
        let graph = parse::parse(text)?;
        crate::ir::verify::verify(&graph).map_err(ArtifactError::InvalidIr)?;
        let plan = self.plan.to_plan(&graph)?;
        if super::write::ir_text(&graph, &plan) != text {
            return Err(ArtifactError::Plan(
                "the IR does not print back to the stored text with this plan".into(),
            ));
        }
        super::plan_check::check_plan(&graph, &plan)?;
        Ok((graph, plan))
    }

    /// The model's hyperparameters as the frontend read them at compile
    /// time (the spec's metadata keys, plus what the graph builder found).
    pub fn model_config(&self) -> Result<ModelConfig> {
        let md = self.file.metadata();
        let spec = ArchSpec::builtin_named(self.get(keys::SPEC)?)?;
        let mut cfg = ModelConfig::from_gguf(&self.file, &spec)?;
        cfg.tied_output = md
            .get_bool(keys::TIED_OUTPUT)
            .map_err(|e| ArtifactError::field(keys::TIED_OUTPUT, e.to_string()))?;
        cfg.optional_tensors = md
            .get_str_array(keys::OPTIONAL_TENSORS)
            .map_err(|e| ArtifactError::field(keys::OPTIONAL_TENSORS, e.to_string()))?
            .into_iter()
            .map(String::from)
            .collect();
        Ok(cfg)
    }

    /// The stored kernels, with their code-object tensors.
    pub fn kernels(&self) -> Result<Vec<StoredKernel<'_>>> {
        let md = self.file.metadata();
        let list = |key: &str| string_list(md, key);
        let labels = list(keys::KERNEL_LABELS)?;
        let entries = list(keys::KERNEL_ENTRIES)?;
        let sources = list(keys::KERNEL_SOURCES)?;
        let codes: Vec<&TensorInfo> = self
            .file
            .tensors()
            .iter()
            .filter(|t| super::is_kernel_tensor(&t.name))
            .collect();
        let n = labels.len();
        if entries.len() != n || sources.len() != n || codes.len() != n {
            return Err(ArtifactError::field(
                keys::KERNEL_LABELS,
                format!(
                    "{n} labels, {} entry lists, {} sources and {} code objects",
                    entries.len(),
                    sources.len(),
                    codes.len()
                ),
            ));
        }
        Ok((0..n)
            .map(|i| StoredKernel {
                label: labels[i],
                entries: entries[i],
                source: sources[i],
                code: self.file.view(codes[i]).data,
            })
            .collect())
    }

    /// The weight tensors, in file order.
    pub fn weights(&self) -> impl Iterator<Item = &TensorInfo> {
        self.file
            .tensors()
            .iter()
            .filter(|t| !super::is_kernel_tensor(&t.name))
    }

    /// XXH3 of every weight (in parallel) against
    /// `rfc.checksum.weights_xxh3`; the first mismatch names its tensor.
    /// `Ok(false)`: the artifact predates these checksums (nothing checked).
    pub fn check_weights_fast(&self) -> Result<bool> {
        use rayon::prelude::*;
        let key = keys::CHECKSUM_WEIGHTS_FAST;
        if self.file.metadata().get(key).is_none() {
            return Ok(false);
        }
        let stored = string_list(self.file.metadata(), key)?;
        let weights: Vec<&TensorInfo> = self.weights().collect();
        if stored.len() != weights.len() {
            return Err(ArtifactError::field(
                key,
                format!("{} checksums for {} weights", stored.len(), weights.len()),
            ));
        }
        let t0 = std::time::Instant::now();
        let computed: Vec<String> = weights
            .par_iter()
            .map(|t| xxh3_hex(self.file.view(t).data))
            .collect();
        for ((t, want), got) in weights.iter().zip(&stored).zip(computed) {
            check_sum(&format!("weight {:?}", t.name), want, &got)?;
        }
        tracing::debug!(
            weights = weights.len(),
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "fast weight checksums verified"
        );
        Ok(true)
    }

    /// Hashes every weight and compares with `rfc.checksum.weights` (and
    /// the fast checksums, so that a damaged fast list is found too); the
    /// first mismatch names its tensor.
    pub fn verify_weights(&self, progress: &dyn Progress) -> Result<()> {
        use rayon::prelude::*;
        self.check_weights_fast()?;
        let key = keys::CHECKSUM_WEIGHTS;
        let stored = string_list(self.file.metadata(), key)?;
        let weights: Vec<&TensorInfo> = self.weights().collect();
        if stored.len() != weights.len() {
            return Err(ArtifactError::field(
                key,
                format!("{} checksums for {} weights", stored.len(), weights.len()),
            ));
        }
        let total = weights.iter().map(|t| t.size).sum();
        progress.begin("verifying weights", total, Unit::Bytes);
        let computed: Vec<String> = weights
            .par_iter()
            .map(|t| {
                let sum = sha256_hex(self.file.view(t).data);
                progress.advance(t.size);
                sum
            })
            .collect();
        progress.end();
        for ((t, want), got) in weights.iter().zip(&stored).zip(computed) {
            check_sum(&format!("weight {:?}", t.name), want, &got)?;
        }
        tracing::info!(weights = weights.len(), "weight checksums verified");
        Ok(())
    }
}

/// The header, IR and plan checksums; then the target and plan they cover.
fn check_parts(file: &GgufFile) -> Result<(ArtifactTarget, PlanRecord)> {
    let md = file.metadata();
    let stored = |key: &str| get_str(md, key);
    let header = super::header_digest(file.version(), md, file.tensors());
    check_sum("header", stored(keys::CHECKSUM_HEADER)?, &header)?;
    let ir = stored(keys::IR)?;
    check_sum("IR", stored(keys::CHECKSUM_IR)?, &super::ir_digest(ir))?;
    let plan = stored(keys::PLAN)?;
    let plan_sum = super::plan_digest(plan, stored(keys::LAUNCHES)?);
    check_sum("plan", stored(keys::CHECKSUM_PLAN)?, &plan_sum)?;
    let target = ArtifactTarget::parse(stored(keys::TARGET)?)
        .map_err(|e| ArtifactError::field(keys::TARGET, e.to_string()))?;
    Ok((target, PlanRecord::from_json(plan)?))
}

/// An array of strings, its element type included (an empty array of
/// another type would otherwise read as an empty list).
fn string_list<'a>(md: &'a Metadata, key: &str) -> Result<Vec<&'a str>> {
    match md.get(key) {
        Some(Value::Array(ValueType::String, _)) => md
            .get_str_array(key)
            .map_err(|e| ArtifactError::field(key, e.to_string())),
        Some(v) => Err(ArtifactError::field(
            key,
            format!(
                "expected an array of strings, found {}",
                v.type_description()
            ),
        )),
        None => Err(ArtifactError::field(key, "missing")),
    }
}

fn get_str<'a>(md: &'a Metadata, key: &str) -> Result<&'a str> {
    md.get_str(key).map_err(|e| match e {
        GgufError::MissingKey { .. } => ArtifactError::field(key, "missing"),
        e => ArtifactError::field(key, e.to_string()),
    })
}

/// `rfc.format_version`: present (else not an artifact) and supported.
fn format_version(file: &GgufFile) -> Result<u32> {
    let path = || {
        file.path()
            .map_or("(in memory)".into(), |p| p.display().to_string())
    };
    match file.metadata().get(keys::FORMAT_VERSION) {
        None => Err(ArtifactError::NotAnArtifact { path: path() }),
        Some(Value::U32(v)) if *v == FORMAT_VERSION => Ok(*v),
        Some(Value::U32(v)) => Err(ArtifactError::UnsupportedVersion {
            found: *v,
            supported: FORMAT_VERSION,
        }),
        Some(v) => Err(ArtifactError::field(
            keys::FORMAT_VERSION,
            format!("expected u32, found {}", v.type_description()),
        )),
    }
}

/// The writer pads the last tensor to the alignment: the file must end
/// exactly there (the parser only checks that each tensor fits).
fn check_length(file: &GgufFile) -> Result<()> {
    let align = file.alignment();
    let data_len = file
        .tensors()
        .iter()
        .map(|t| t.offset.saturating_add(t.size).div_ceil(align) * align)
        .max()
        .unwrap_or(0);
    let expected = file.data_offset() + data_len;
    let found = file.file_len();
    if found < expected {
        return Err(ArtifactError::Truncated { expected, found });
    }
    if found > expected {
        return Err(ArtifactError::TrailingBytes { expected, found });
    }
    Ok(())
}

fn check_sum(part: &str, stored: &str, computed: &str) -> Result<()> {
    if stored == computed {
        Ok(())
    } else {
        Err(ArtifactError::ChecksumMismatch {
            part: part.to_string(),
            stored: stored.to_string(),
            computed: computed.to_string(),
        })
    }
}
