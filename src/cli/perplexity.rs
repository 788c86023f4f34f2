//! `rfc perplexity`: perplexity as llama-perplexity computes it — chunks of
//! `ctx` tokens from an empty cache, scoring the second half of each chunk.

use std::path::PathBuf;

use clap::Args;

use super::CmdResult;
use rocmforge::exec::session::StepBackend;
use rocmforge::load::LoadOptions;

#[derive(Debug, Args)]
pub struct PerplexityArgs {
    /// The model (a GGUF file or an artifact from `rfc compile`).
    pub model: PathBuf,
    /// The text to score (UTF-8).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx", default_value_t = 512)]
    pub ctx: usize,
    #[command(flatten)]
    pub cache_type: super::cache_type_args::CacheTypeArgs,
    /// Score at most this many chunks (at least 1).
    #[arg(long, value_parser = super::threads::parse_at_least_one, allow_negative_numbers = true)]
    pub chunks: Option<usize>,
    /// CPU threads (default: all cores; at most the machine's CPUs).
    #[arg(short = 't', long, value_parser = super::threads::parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: super::device::DeviceArgs,
}

pub fn run(args: PerplexityArgs) -> CmdResult {
    super::threads::set_threads(args.threads);
    if args.ctx < 4 {
        return Err("--ctx must be at least 4".into());
    }
    let kv_types = args.cache_type.types()?;
    let bytes = std::fs::read(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", args.file.display()))?;
    let opts = LoadOptions {
        max_tokens: args.ctx.min(512),
        max_rows: args.ctx.min(512),
        context: args.ctx,
        kv_types,
        ..Default::default()
    };
    let mut model = args.device.load(&args.model, &opts)?;
    // An artifact compiled for fewer logit rows would score one token per
    // step through the decode kernels: slower, and not the same numbers.
    let rows = model.session.backend().limits().max_rows;
    if rows < opts.max_rows {
        return Err(format!(
            "this artifact computes {rows} logit row(s) per step; perplexity with --ctx {} needs {}: \
             recompile it with `rfc compile --max-logit-rows {}` (and --max-batch-tokens at least as large), or score the GGUF",
            args.ctx, opts.max_rows, opts.max_rows
        )
        .into());
    }
    let add_bos = model.tokenizer.add_bos();
    let tokens = model.tokenizer.encode(&text, add_bos, false)?;
    let mut n_chunks = tokens.len() / args.ctx;
    if let Some(c) = args.chunks {
        n_chunks = n_chunks.min(c);
    }
    if n_chunks == 0 {
        return Err(format!(
            "the text has {} tokens, fewer than one chunk of {}",
            tokens.len(),
            args.ctx
        )
        .into());
    }
    eprintln!(
        "perplexity: {} tokens, {n_chunks} chunks of {}",
        tokens.len(),
        args.ctx
    );
    let (mut nll, mut count) = (0f64, 0usize);
    let first = args.ctx / 2;
    for c in 0..n_chunks {
        let mut chunk = tokens[c * args.ctx..(c + 1) * args.ctx].to_vec();
        if add_bos {
            if let Some(bos) = model.tokenizer.bos() {
                chunk[0] = bos;
            }
        }
        model.session.reset();
        let next = &tokens[c * args.ctx..(c + 1) * args.ctx];
        model.session.eval(&chunk, true, |pos, logits| {
            if pos >= first && pos + 1 < args.ctx {
                nll += neg_log_softmax(logits, next[pos + 1] as usize);
                count += 1;
            }
        })?;
        eprintln!("[{}] {:.4}", c + 1, (nll / count as f64).exp());
    }
    println!("PPL = {:.4}", (nll / count as f64).exp());
    Ok(())
}

/// `-log softmax(logits)[target]`, in f64.
fn neg_log_softmax(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    sum.ln() + max - logits[target] as f64
}
