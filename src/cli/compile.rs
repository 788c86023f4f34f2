//! `rfc compile MODEL.gguf --target gfx1100 --emit-kernels DIR
//! [--cache-type-k q8_0 --cache-type-v q4_0]`: writes every specialized
//! kernel source the model's compiled plan needs (DIR/<label>.hip) for a
//! KV cache of those types, for offline compile checks
//! (scripts/ci-gfx1100.sh).
//!
//! `rfc compile MODEL.gguf -o MODEL.rfc --target cpu|gfx1100|sm_90
//! [--max-context N] [--max-batch-tokens T]`: writes a self-contained
//! artifact (docs/ARTIFACT.md) that `rfc run`, `bench`, `inspect` and `ir` take.

use std::path::PathBuf;

use rocmforge::artifact;
use rocmforge::codegen::plan::{kernel_sources, PlanOptions};
use rocmforge::codegen::Target;
use rocmforge::frontend;
use rocmforge::gguf::GgufFile;
use rocmforge::ir::DimEnv;
use rocmforge::passes;

use super::CmdResult;

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("what")
        .required(true)
        .multiple(true)
        .args(["output", "emit_kernels"])
))]
pub struct CompileArgs {
    /// The GGUF model.
    pub model: PathBuf,
    /// What to compile for: cpu, or a GPU architecture (gfx1100, sm_90, ...).
    /// Default: this machine's GPU, else cpu.
    #[arg(long)]
    pub target: Option<String>,
    /// Write each specialized kernel source into this directory (GPU targets).
    #[arg(long, value_name = "DIR")]
    pub emit_kernels: Option<PathBuf>,
    /// Write the compiled artifact to this file.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Artifact: context length in tokens (capped by the model's).
    #[arg(long, default_value_t = 4096)]
    pub max_context: usize,
    /// Artifact: tokens per step (prefill chunk).
    #[arg(long, default_value_t = 512)]
    pub max_batch_tokens: usize,
    /// Artifact: logit rows per step (1 for generation; the batch for perplexity).
    #[arg(long, default_value_t = 1)]
    pub max_logit_rows: usize,
    /// Tokens per KV-cache page.
    #[arg(long, default_value_t = 16)]
    pub page_size: u32,
    /// Artifact: sequences per step (the parallel slots of `rfc serve`;
    /// give --max-logit-rows as many to sample each of them every step).
    #[arg(long, default_value_t = 1)]
    pub max_seqs: usize,
    /// Artifact: KV-cache pages a load makes by default (16 tokens each;
    /// `rfc run/serve --kv-pages` overrides). Default: every sequence its
    /// whole context.
    #[arg(long)]
    pub kv_pages: Option<usize>,
    /// --emit-kernels: the KV cache types the kernels are for (an
    /// artifact's are chosen when it runs; a GPU artifact's are f16).
    #[command(flatten)]
    pub cache_type: super::cache_type_args::CacheTypeArgs,
}

pub fn run(args: CompileArgs) -> CmdResult {
    let target = match &args.target {
        Some(t) => artifact::ArtifactTarget::parse(t)?,
        None => machine_target(),
    };
    let kv_types = args.cache_type.types()?;
    if let Some(out) = &args.output {
        if kv_types != Default::default() {
            return Err(format!(
                "--cache-type {kv_types} chooses the kernels --emit-kernels writes; an \
                 artifact's KV cache types are chosen when it runs (a GPU artifact's are f16)"
            )
            .into());
        }
        write_artifact(&args, &target, out)?;
    }
    let Some(emit_kernels) = &args.emit_kernels else {
        return Ok(());
    };
    let artifact::ArtifactTarget::Gpu(target) = target else {
        return Err(
            "--emit-kernels writes GPU kernel sources: give a GPU --target (gfx1100, sm_90, ...)"
                .into(),
        );
    };
    let file = GgufFile::open(&args.model)?;
    let (_, graph) = frontend::build_graph(&file)?;
    let compiled = passes::compile(graph, DimEnv::default())?;
    let opts = PlanOptions {
        kv: kv_types,
        ..PlanOptions::for_target(args.page_size, &target)
    };
    let sources = kernel_sources(&compiled.graph, &opts)?;
    std::fs::create_dir_all(emit_kernels)?;
    for (label, src) in &sources {
        let path = emit_kernels.join(format!("{label}.hip"));
        std::fs::write(&path, src.text())?;
    }
    println!(
        "wrote {} kernel sources for {target} to {}",
        sources.len(),
        emit_kernels.display()
    );
    Ok(())
}

/// Without `--target`: the first GPU that opens (NVIDIA, then AMD), else
/// the CPU; one line says which and why.
fn machine_target() -> artifact::ArtifactTarget {
    use rocmforge::backend::{Gpu, Vendor};
    let mut why = Vec::new();
    for vendor in [Vendor::Cuda, Vendor::Hip] {
        match Gpu::open(vendor, 0) {
            Ok(gpu) => {
                let t = Target::of(gpu.info());
                eprintln!("target: {t} ({}; --target names another)", gpu.info().name);
                return artifact::ArtifactTarget::Gpu(t);
            }
            Err(e) => why.push(format!("{vendor}: {}", first_clause(&e.to_string()))),
        }
    }
    eprintln!(
        "target: cpu (no GPU here: {}; --target names a GPU)",
        why.join("; ")
    );
    artifact::ArtifactTarget::Cpu
}

fn first_clause(s: &str) -> &str {
    s.split(" (tried ").next().unwrap_or(s)
}

/// `-o FILE`: the artifact, with progress bars on stderr.
fn write_artifact(
    args: &CompileArgs,
    target: &artifact::ArtifactTarget,
    out: &std::path::Path,
) -> CmdResult {
    let opts = artifact::CompileOptions {
        target: target.clone(),
        max_context: args.max_context,
        max_batch_tokens: args.max_batch_tokens,
        max_logit_rows: args.max_logit_rows,
        page_size: args.page_size as usize,
        max_seqs: args.max_seqs,
        kv_pages: args.kv_pages,
    };
    let r = artifact::compile_artifact(&args.model, out, &opts, &artifact::Bars::new())?;
    let timed = rocmforge::load::tune_artifact(out)?;
    eprintln!(
        "wrote {} ({} bytes: {} weights, {} kernels, arena {} bytes) for {} in {:.2} s",
        r.path.display(),
        r.file_bytes,
        r.weights,
        r.kernels,
        r.arena_bytes,
        opts.target,
        r.elapsed.as_secs_f64()
    );
    if let artifact::ArtifactTarget::Gpu(_) = opts.target {
        match timed {
            Some(device) => eprintln!("matmul variants timed on {device} and recorded"),
            None => eprintln!(
                "matmul variants: the stated defaults, recorded as unmeasured (no {} GPU here)",
                opts.target
            ),
        }
    }
    Ok(())
}
