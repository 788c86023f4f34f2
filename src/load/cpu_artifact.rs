//! An artifact to a model ready to generate on the CPU: the stored IR is
//! parsed, the stored plan mapped onto it, and the executor reads the
//! weights in place from the mapped artifact. No frontend graph build, no
//! pass and no kernel compiler runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::model::{LoadError, LoadedModel};
use super::options::{kv_pool_pages, LoadOptions};
use crate::artifact::progress::{Bars, Progress};
use crate::artifact::{Artifact, ArtifactError};
use crate::exec::cpu_model::CpuModel;
use crate::exec::session::Session;
use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

/// Loads the artifact `file` for the CPU; with `verify`, every weight's
/// checksum is checked first. The plan's limits are fixed at compile
/// time: `opts` asking for more is logged, and the plan's limits hold.
pub fn load_cpu_artifact(
    file: Arc<GgufFile>,
    opts: &LoadOptions,
    verify: bool,
    progress: &dyn Progress,
) -> Result<LoadedModel, LoadError> {
    let t0 = Instant::now();
    let lap = |what: &str, since: Instant| {
        tracing::debug!(ms = since.elapsed().as_secs_f64() * 1e3, "{what}");
        Instant::now()
    };
    let artifact = Artifact::from_file(file.clone())?;
    artifact.target.require_cpu()?;
    check_weights(&artifact, opts, verify, progress)?;
    let t = lap("artifact checked", t0);
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let t = lap("tokenizer built", t);
    let config = artifact.model_config()?;
    let (graph, plan) = artifact.graph_and_plan()?;
    let t = lap("IR parsed and plan restored", t);
    warn_if_limited(opts, config.context_length, &artifact);
    let page_size = artifact.plan.page_size as usize;
    let pool = kv_pool_pages(
        opts.kv_pages.or(artifact.plan.kv_pages.map(|p| p as usize)),
        &plan.env,
    );
    let model =
        CpuModel::new(file.clone(), graph, plan, page_size)?.with_kv(opts.kv_types, pool)?;
    lap("executor ready", t);
    tracing::info!(ms = t0.elapsed().as_millis() as u64, "artifact loaded");
    Ok(LoadedModel {
        file,
        config,
        tokenizer,
        session: Session::new(model),
        load_time: t0.elapsed(),
    })
}

/// Opens `path`, which must be an artifact, checks every weight's checksum
/// and loads it (`rfc run --verify`), drawing progress on stderr.
pub fn load_cpu_verified(path: &Path, opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let file = Arc::new(GgufFile::open(path)?);
    if !crate::artifact::is_artifact(&file) {
        return Err(ArtifactError::NotAnArtifact {
            path: path.display().to_string(),
        }
        .into());
    }
    load_cpu_artifact(file, opts, true, &Bars::new())
}

/// The weights against their checksums: SHA-256 with `verify`, else the
/// fast XXH3 unless `opts` skips it. A flipped byte in a weight thus stops
/// every load, not only `--verify`.
pub(super) fn check_weights(
    artifact: &Artifact,
    opts: &LoadOptions,
    verify: bool,
    progress: &dyn Progress,
) -> Result<(), ArtifactError> {
    if verify {
        return artifact.verify_weights(progress);
    }
    if opts.skip_weight_check {
        return Ok(());
    }
    if !artifact.check_weights_fast()? {
        tracing::warn!(
            "this artifact predates fast weight checksums: its weights are checked only with --verify (recompile it to check them on every load)"
        );
    }
    Ok(())
}

pub(super) fn warn_if_limited(opts: &LoadOptions, model_ctx: usize, artifact: &Artifact) {
    let p = &artifact.plan;
    let context = (p.env.pages * p.page_size) as usize;
    let asked_context = match model_ctx {
        0 => opts.context,
        n => opts.context.min(n),
    };
    let asks = [
        ("context", asked_context, context, "--max-context"),
        (
            "tokens per step",
            opts.max_tokens,
            p.env.tokens as usize,
            "--max-batch-tokens",
        ),
        (
            "logit rows per step",
            opts.max_rows,
            p.env.rows as usize,
            "--max-logit-rows",
        ),
        (
            "sequences per step",
            opts.max_seqs,
            p.env.seqs as usize,
            "--max-seqs",
        ),
    ];
    for (what, asked, compiled, flag) in asks {
        if asked > compiled {
            tracing::warn!(
                "{what}: {asked} asked, the artifact was compiled for {compiled}, which holds (recompile with `rfc compile {flag} {asked}` for more)"
            );
        }
    }
}
