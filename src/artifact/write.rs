//! `rfc compile`: a GGUF model through the frontend, the passes and (for a
//! GPU target) code generation, written as one artifact.
//!
//! The file is written under a temporary name beside the output and renamed
//! into place once complete and synced, so a failed or interrupted compile
//! never leaves a truncated artifact under the real name ([`super::partial`]:
//! removed on error or signal, magic written last).

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::checksum::{sha256_hex, sha256_hex_chunked, xxh3_hex};
use super::error::{ArtifactError, Result};
use super::kernels::{compile_kernels, node_kernels, KernelObject};
use super::partial::{self, MagicLast, PartialFile};
use super::plan_record::PlanRecord;
use super::progress::{Progress, Unit};
use super::target::ArtifactTarget;
use super::{keys, ALIGNMENT, FORMAT_VERSION, GGUF_VERSION};
use crate::codegen::plan::PlanOptions;
use crate::exec::gpu_model::tune::MatMulTuning;
use crate::frontend::{self, ModelConfig};
use crate::gguf::{GgufFile, GgufWriter, TensorInfo, Value};
use crate::ir::{text, DimEnv, Graph, Op};
use crate::passes::{self, Compiled, MemoryPlan};
use crate::quant::GgmlType;

/// What an artifact is compiled for.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    pub target: ArtifactTarget,
    /// Context length (tokens; capped by the model's own).
    pub max_context: usize,
    /// Tokens per step (prefill chunk).
    pub max_batch_tokens: usize,
    /// Logit rows per step: 1 for generation, the batch for perplexity.
    pub max_logit_rows: usize,
    /// Tokens per KV-cache page.
    pub page_size: usize,
    /// Sequences per step (a server's parallel slots).
    pub max_seqs: usize,
    /// KV pages a load of the artifact makes by default (None: every
    /// sequence its whole context).
    pub kv_pages: Option<usize>,
}

impl Default for CompileOptions {
    /// What `rfc run MODEL.gguf` compiles for (`load`'s defaults).
    fn default() -> Self {
        CompileOptions {
            target: ArtifactTarget::Cpu,
            max_context: 4096,
            max_batch_tokens: 512,
            max_logit_rows: 1,
            page_size: crate::exec::kv_pages::PAGE_SIZE,
            max_seqs: 1,
            kv_pages: None,
        }
    }
}

impl CompileOptions {
    /// Every limit is at least 1 (the plan's caps are checked on its record).
    fn validate(&self) -> Result<()> {
        let limits = [
            ("--max-context", self.max_context),
            ("--max-batch-tokens", self.max_batch_tokens),
            ("--max-logit-rows", self.max_logit_rows),
            ("--page-size", self.page_size),
            ("--max-seqs", self.max_seqs),
        ];
        match limits.iter().find(|(_, v)| *v == 0) {
            Some((flag, _)) => Err(ArtifactError::Options(format!("{flag} must be at least 1"))),
            None => Ok(()),
        }
    }

    /// The plan's limits on a model whose own context is `model_ctx`.
    pub fn env(&self, model_ctx: usize) -> DimEnv {
        let context = match model_ctx {
            0 => self.max_context,
            n => self.max_context.min(n),
        };
        let page = self.page_size.max(1);
        let pages = context.div_ceil(page) as u64;
        DimEnv {
            tokens: self.max_batch_tokens as u64,
            rows: self.max_logit_rows as u64,
            seqs: self.max_seqs as u64,
            pages,
            kv_len: pages * page as u64,
        }
    }
}

/// What a compile wrote.
#[derive(Debug, Clone)]
pub struct CompileReport {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub weights: usize,
    pub weight_bytes: u64,
    pub kernels: usize,
    pub arena_bytes: u64,
    pub source_sha256: String,
    pub elapsed: Duration,
}

/// The parts of an artifact before they are laid out.
struct Parts {
    config: ModelConfig,
    compiled: Compiled,
    ir: String,
    plan: String,
    launches: String,
    kernels: Vec<KernelObject>,
    kernel_compiler: String,
    weights: Vec<TensorInfo>,
}

/// Compiles the GGUF model `model` into the artifact `out`.
pub fn compile_artifact(
    model: &Path,
    out: &Path,
    opts: &CompileOptions,
    progress: &dyn Progress,
) -> Result<CompileReport> {
    let t0 = Instant::now();
    // Refused before the long work, and checked again before the rename.
    refuse_special_output(out)?;
    let source = GgufFile::open(model)?;
    if super::is_artifact(&source) {
        return Err(ArtifactError::field(
            keys::FORMAT_VERSION,
            format!(
                "{} is already an artifact: compile the GGUF model",
                model.display()
            ),
        ));
    }
    progress.begin("hashing source", source.file_len(), Unit::Bytes);
    let source_sha256 = sha256_hex_chunked(source.bytes(), |n| progress.advance(n));
    progress.end();
    let parts = build_parts(&source, opts, progress)?;
    let writer = layout(&source, model, &source_sha256, opts, &parts, progress)?;
    write_atomically(&writer, &source, &parts, out, progress)?;
    let report = CompileReport {
        path: out.to_path_buf(),
        file_bytes: writer.file_len(),
        weights: parts.weights.len(),
        weight_bytes: parts.weights.iter().map(|t| t.size).sum(),
        kernels: parts.kernels.len(),
        arena_bytes: parts.compiled.plan.arena_bytes,
        source_sha256,
        elapsed: t0.elapsed(),
    };
    tracing::info!(
        path = %out.display(),
        bytes = report.file_bytes,
        ms = report.elapsed.as_millis() as u64,
        "artifact written"
    );
    Ok(report)
}

/// Frontend, passes, kernels, and the text of every stored part.
fn build_parts(source: &GgufFile, opts: &CompileOptions, progress: &dyn Progress) -> Result<Parts> {
    opts.validate()?;
    let t = Instant::now();
    let (config, graph) = frontend::build_graph_for(source, opts.max_context)?;
    let compiled = passes::compile(graph, opts.env(config.context_length))?;
    tracing::info!(ms = t.elapsed().as_millis() as u64, "graph compiled");
    let page_size = opts.page_size as u32;
    let (kernels, kernel_compiler) = match &opts.target {
        ArtifactTarget::Cpu => (Vec::new(), "none".to_string()),
        ArtifactTarget::Gpu(t) => compile_kernels(&compiled.graph, t, page_size, progress)?,
    };
    let g = &compiled.graph;
    let mut record = PlanRecord::new(g, &compiled.plan, opts.page_size as u64);
    record.kv_pages = opts.kv_pages.map(|p| p as u64);
    // Never write what the reader would refuse.
    record.check_limits()?;
    let launches = launch_schedule(g, &compiled.plan, &opts.target, page_size)?;
    Ok(Parts {
        ir: ir_text(g, &compiled.plan),
        plan: record.to_json(),
        launches: launches.to_string(),
        weights: graph_weights(source, g, &compiled.plan)?,
        kernels,
        kernel_compiler,
        config,
        compiled,
    })
}

/// The final IR as `rfc ir MODEL.gguf` prints it: with arena ranges.
pub(crate) fn ir_text(g: &Graph, plan: &MemoryPlan) -> String {
    text::print_with_placement(g, |id| {
        plan.slot_of(id).map(|s| s.offset..s.offset + s.bytes)
    })
}

/// Every node that runs, in schedule order: its IR number, op and name,
/// and on a GPU target the kernels it launches.
fn launch_schedule(
    g: &Graph,
    plan: &MemoryPlan,
    target: &ArtifactTarget,
    page_size: u32,
) -> Result<serde_json::Value> {
    let ids = text::text_ids(g);
    let mut steps = Vec::new();
    for &id in &plan.schedule {
        let node = g.node(id);
        if matches!(
            node.op,
            Op::Input(_) | Op::Weight { .. } | Op::KvCache { .. } | Op::Slice { .. }
        ) {
            continue;
        }
        let mut step = json!({ "node": ids[&id], "op": node.op.kind(), "name": node.name });
        if let ArtifactTarget::Gpu(t) = target {
            let opts = PlanOptions::for_target(page_size, t);
            step["kernels"] = json!(node_kernels(g, id, &opts)?);
        }
        steps.push(step);
    }
    Ok(serde_json::Value::Array(steps))
}

/// The source's tensor infos of every weight the graph reads, in schedule
/// order (each once).
fn graph_weights(source: &GgufFile, g: &Graph, plan: &MemoryPlan) -> Result<Vec<TensorInfo>> {
    let mut out: Vec<TensorInfo> = Vec::new();
    for &id in &plan.schedule {
        let Op::Weight { name } = &g.node(id).op else {
            continue;
        };
        if out.iter().any(|t| &t.name == name) {
            continue;
        }
        let info = source
            .tensor_info(name)
            .ok_or_else(|| crate::gguf::GgufError::MissingTensor { name: name.clone() })?;
        out.push(info.clone());
    }
    Ok(out)
}

/// The writer with every key and tensor declared, checksums included.
fn layout(
    source: &GgufFile,
    model: &Path,
    source_sha256: &str,
    opts: &CompileOptions,
    p: &Parts,
    progress: &dyn Progress,
) -> Result<GgufWriter> {
    let mut w = GgufWriter::new();
    w.set_version(GGUF_VERSION)?;
    // Alignment, version and target first: `peek_target` reads only these.
    w.set_alignment(ALIGNMENT)?
        .add_metadata(keys::FORMAT_VERSION, Value::U32(FORMAT_VERSION))?
        .add_metadata(keys::TARGET, opts.target.to_string().as_str())?;
    for (k, v) in source.metadata().iter() {
        if k != "general.alignment" && !k.starts_with("rfc.") {
            w.add_metadata(k, v.clone())?;
        }
    }
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned());
    let labels: Vec<&str> = p.kernels.iter().map(|k| k.label.as_str()).collect();
    let entries: Vec<&str> = p.kernels.iter().map(|k| k.entries.as_str()).collect();
    let sources: Vec<&str> = p.kernels.iter().map(|k| k.source.as_str()).collect();
    let optional: Vec<&str> = p
        .config
        .optional_tensors
        .iter()
        .map(String::as_str)
        .collect();
    let compiler = format!("rocmforge {}", env!("CARGO_PKG_VERSION"));
    w.add_metadata(keys::COMPILER, compiler.as_str())?
        .add_metadata(keys::KERNEL_COMPILER, p.kernel_compiler.as_str())?
        .add_metadata(keys::SOURCE_NAME, name.unwrap_or_default().as_str())?
        .add_metadata(keys::SOURCE_SHA256, source_sha256)?
        .add_metadata(keys::SPEC, p.config.arch.as_str())?
        .add_metadata(keys::TIED_OUTPUT, Value::Bool(p.config.tied_output))?
        .add_metadata(keys::OPTIONAL_TENSORS, optional)?
        .add_metadata(keys::WEIGHT_LAYOUT, "gguf")?
        .add_metadata(keys::IR, p.ir.as_str())?
        .add_metadata(keys::PLAN, p.plan.as_str())?
        .add_metadata(keys::LAUNCHES, p.launches.as_str())?
        .add_metadata(keys::KERNEL_LABELS, labels)?
        .add_metadata(keys::KERNEL_ENTRIES, entries)?
        .add_metadata(keys::KERNEL_SOURCES, sources)?;
    if let ArtifactTarget::Gpu(_) = opts.target {
        // Stated defaults, unmeasured, until `rfc compile` times them on
        // the target's GPU (load::tune_artifact) and reseals.
        let unmeasured = serde_json::to_string(&MatMulTuning::default()).expect("plain JSON");
        w.add_metadata(keys::MATMUL_TUNING, unmeasured.as_str())?;
    }
    for t in &p.weights {
        w.declare_tensor(&t.name, &t.dims, t.ty)?;
    }
    for (i, k) in p.kernels.iter().enumerate() {
        w.declare_tensor(
            &super::kernel_tensor_name(i),
            &[k.code.len() as u64],
            GgmlType::I8,
        )?;
    }
    let (sha, fast) = weight_checksums(source, &p.weights, progress);
    let codes: Vec<&[u8]> = p.kernels.iter().map(|k| k.code.as_slice()).collect();
    let sums = vec![
        (keys::CHECKSUM_WEIGHTS, sha.into()),
        (keys::CHECKSUM_WEIGHTS_FAST, fast.into()),
    ];
    add_checksums(&mut w, &codes, sums)?;
    Ok(w)
}

/// Adds `rfc.checksum.*` for what `w` holds (every key and tensor must be
/// declared): the header, IR, plan and kernel digests, and `weights` (the
/// per-weight checksum lists, SHA-256 and XXH3, in table order).
fn add_checksums(w: &mut GgufWriter, codes: &[&[u8]], weights: Vec<(&str, Value)>) -> Result<()> {
    let md = w.metadata();
    let text = |key: &str| {
        md.get_str(key)
            .map_err(|e| ArtifactError::field(key, e.to_string()))
    };
    let list = |key: &str| {
        md.get_str_array(key)
            .map_err(|e| ArtifactError::field(key, e.to_string()))
    };
    let ir = super::ir_digest(text(keys::IR)?);
    let plan = super::plan_digest(text(keys::PLAN)?, text(keys::LAUNCHES)?);
    let kernels = super::kernels_digest(
        &list(keys::KERNEL_LABELS)?,
        &list(keys::KERNEL_ENTRIES)?,
        &list(keys::KERNEL_SOURCES)?,
        codes.iter().copied(),
    );
    let header = super::header_digest(GGUF_VERSION, md, w.tensors());
    w.add_metadata(keys::CHECKSUM_HEADER, header.as_str())?
        .add_metadata(keys::CHECKSUM_IR, ir.as_str())?
        .add_metadata(keys::CHECKSUM_PLAN, plan.as_str())?
        .add_metadata(keys::CHECKSUM_KERNELS, kernels.as_str())?;
    for (key, sums) in weights {
        w.add_metadata(key, sums)?;
    }
    Ok(())
}

/// The artifact `file` rewritten with its metadata edited by `edit` and its
/// header, IR, plan and kernel checksums computed afresh (the weights and
/// their checksums are copied as they are). For tools that amend an
/// artifact, and for tests that need a well-sealed artifact with odd content.
pub fn reseal(file: &GgufFile, edit: impl FnOnce(&mut Vec<(String, Value)>)) -> Result<Vec<u8>> {
    let md = file.metadata();
    let weight_sums: Vec<(&str, Value)> = [keys::CHECKSUM_WEIGHTS, keys::CHECKSUM_WEIGHTS_FAST]
        .into_iter()
        .filter_map(|k| md.get(k).map(|v| (k, v.clone())))
        .collect();
    let mut entries: Vec<(String, Value)> = md
        .iter()
        .filter(|(k, _)| !k.starts_with(keys::CHECKSUM_PREFIX))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    edit(&mut entries);
    let mut w = GgufWriter::new();
    w.set_version(GGUF_VERSION)?;
    for (k, v) in entries {
        w.add_metadata(&k, v)?;
    }
    for t in file.tensors() {
        w.declare_tensor(&t.name, &t.dims, t.ty)?;
    }
    let codes: Vec<&[u8]> = file
        .tensors()
        .iter()
        .filter(|t| super::is_kernel_tensor(&t.name))
        .map(|t| file.view(t).data)
        .collect();
    add_checksums(&mut w, &codes, weight_sums)?;
    let mut stream = w.begin(Vec::with_capacity(file.file_len() as usize))?;
    for t in file.tensors() {
        stream.write_tensor(&t.name, file.view(t).data)?;
    }
    Ok(stream.finish()?)
}

/// SHA-256 and XXH3 of each weight's bytes (in parallel: this reads every
/// weight).
fn weight_checksums(
    source: &GgufFile,
    weights: &[TensorInfo],
    progress: &dyn Progress,
) -> (Vec<String>, Vec<String>) {
    use rayon::prelude::*;
    let total = weights.iter().map(|t| t.size).sum();
    progress.begin("hashing weights", total, Unit::Bytes);
    let sums = weights
        .par_iter()
        .map(|t| {
            let bytes = tensor_bytes(source, t);
            let sums = (sha256_hex(bytes), xxh3_hex(bytes));
            progress.advance(t.size);
            sums
        })
        .unzip();
    progress.end();
    sums
}

fn tensor_bytes<'a>(file: &'a GgufFile, t: &TensorInfo) -> &'a [u8] {
    let start = (file.data_offset() + t.offset) as usize;
    &file.bytes()[start..start + t.size as usize]
}

/// Streams the file to a temporary name beside `out`, syncs, renames.
fn write_atomically(
    w: &GgufWriter,
    source: &GgufFile,
    p: &Parts,
    out: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let tmp = PartialFile::new(temp_path(out), &partial::IN_PROGRESS);
    // Errors name the output the user gave, not the temporary name.
    let named = |e: ArtifactError| match e {
        ArtifactError::Write { source, .. } => ArtifactError::Write {
            path: out.to_path_buf(),
            source,
        },
        e => e,
    };
    write_to(w, source, p, tmp.path(), progress).map_err(named)?;
    refuse_special_output(out)?;
    // On any error before this, dropping `tmp` removes the file.
    tmp.commit(out).map_err(|e| ArtifactError::Write {
        path: out.to_path_buf(),
        source: e,
    })
}

/// An existing directory, FIFO or device under the output name is refused:
/// the rename would replace it.
fn refuse_special_output(out: &Path) -> Result<()> {
    crate::gguf::file_kind::require_writable_output(out).map_err(|e| ArtifactError::Write {
        path: out.to_path_buf(),
        source: e,
    })
}

/// Where an artifact is written before it is renamed to `out`.
pub fn temp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "artifact".into());
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn write_to(
    w: &GgufWriter,
    source: &GgufFile,
    p: &Parts,
    path: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let io = |e: std::io::Error| ArtifactError::Write {
        path: path.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let out = BufWriter::with_capacity(1 << 20, MagicLast::new(file));
    let mut stream = w.begin(out)?;
    progress.begin("writing", w.file_len(), Unit::Bytes);
    for t in &p.weights {
        stream.write_tensor(&t.name, tensor_bytes(source, t))?;
        progress.advance(t.size);
    }
    for (i, k) in p.kernels.iter().enumerate() {
        stream.write_tensor(&super::kernel_tensor_name(i), &k.code)?;
        progress.advance(k.code.len() as u64);
    }
    let buffered = stream.finish()?;
    progress.end();
    let mut file = buffered
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .into_inner();
    partial::seal(&mut file).map_err(io)
}
