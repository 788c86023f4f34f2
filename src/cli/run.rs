//! `rfc run`: generate text from a prompt (raw, or through the model's chat
//! template), streaming only the generated text to stdout.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Args;

use super::CmdResult;
use rocmforge::exec::any_backend::{self, AnyBackend};
use rocmforge::exec::generate::{generate, GenerateStats};
use rocmforge::exec::load::LoadOptions;
use rocmforge::sampler::{Sampler, SamplerConfig};
use rocmforge::tokenizer::chat::{ChatMessage, ChatTemplate};

type LoadedModel = rocmforge::exec::load::LoadedModel<AnyBackend>;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model (a GGUF file or an artifact from `rfc compile`).
    pub model: PathBuf,
    /// The prompt, as raw text (no chat template, no BOS unless the model asks for one).
    #[arg(short = 'p', long)]
    pub prompt: Option<String>,
    /// Read the prompt from a file (UTF-8).
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    pub prompt_file: Option<PathBuf>,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n_predict: usize,
    /// Render the prompt as a user message through the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// Interactive chat: read user turns from stdin.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// System message for --chat / -i.
    #[arg(long)]
    pub system: Option<String>,
    /// Stop when the generated text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stops: Vec<String>,
    /// Context length (tokens; capped by the model's).
    #[arg(short = 'c', long = "ctx", default_value_t = 4096)]
    pub context: usize,
    /// CPU threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Artifacts: check every weight against its stored checksum first.
    #[arg(long)]
    pub verify: bool,
    /// KV cache element type: f16 (llama.cpp's default) or f32 (exact).
    #[arg(long = "cache-type", default_value = "f16", value_parser = super::run::parse_kv_type)]
    pub cache_type: rocmforge::exec::cpu::KvType,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub device: super::device::DeviceArgs,
}

/// Sampling flags shared by the commands that generate.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalty for tokens among the last --repeat-last-n (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Random seed (same seed, same text).
    #[arg(long, default_value_t = 0xC0FFEE)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn config(&self) -> SamplerConfig {
        SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            penalty_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
        }
    }
}

/// `--cache-type`: f16 or f32.
pub fn parse_kv_type(s: &str) -> Result<rocmforge::exec::cpu::KvType, String> {
    rocmforge::exec::cpu::KvType::parse(s)
        .ok_or_else(|| format!("unknown cache type {s:?} (f16 or f32)"))
}

/// Sets the size of the CPU thread pool, once, before any work.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        // An error only means the pool was already built; keep that one.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
}

pub fn run(args: RunArgs) -> CmdResult {
    set_threads(args.threads);
    let prompt = read_prompt(&args)?;
    let opts = LoadOptions {
        context: args.context,
        kv_type: args.cache_type,
        ..Default::default()
    };
    let gpu_artifact = matches!(
        rocmforge::artifact::peek_target(&args.model),
        Some(rocmforge::artifact::ArtifactTarget::Gpu(_))
    );
    let mut model = if args.verify && !gpu_artifact {
        let m = rocmforge::artifact::load_cpu_verified(&args.model, &opts)?;
        any_backend::on_cpu(m, "a verified artifact runs on the CPU".into())
    } else if args.verify {
        args.device.load_with(&args.model, &opts, true)?
    } else {
        args.device.load(&args.model, &opts)?
    };
    let mut sampler = Sampler::new(args.sampling.config());
    if args.interactive {
        return interactive(&args, &mut model, &mut sampler);
    }
    let prompt = prompt.ok_or("give a prompt with -p or -f (or use -i)")?;
    let text = if args.chat {
        render_chat(&model, args.system.as_deref(), &[], &prompt)?
    } else {
        prompt
    };
    let ids = tokenize_prompt(&model, &text, args.chat)?;
    let stats = generate_to_stdout(&mut model, &mut sampler, &ids, &args)?;
    report(&model, &stats);
    Ok(())
}

fn read_prompt(args: &RunArgs) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
    match (&args.prompt, &args.prompt_file) {
        (Some(p), _) => Ok(Some(p.clone())),
        (None, Some(f)) => {
            let bytes = std::fs::read(f)
                .map_err(|e| format!("cannot read prompt file {}: {e}", f.display()))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                format!(
                    "prompt file {} is not UTF-8 (invalid byte at offset {})",
                    f.display(),
                    e.utf8_error().valid_up_to()
                )
            })?;
            Ok(Some(text))
        }
        (None, None) => Ok(None),
    }
}

/// Raw prompts are tokenized as text; a rendered chat template carries
/// special tokens, which are parsed.
fn tokenize_prompt(
    model: &LoadedModel,
    text: &str,
    parse_special: bool,
) -> Result<Vec<u32>, Box<dyn std::error::Error + Send + Sync>> {
    let ids = model
        .tokenizer
        .encode(text, model.tokenizer.add_bos(), parse_special)?;
    if ids.is_empty() {
        return Err("the prompt is empty: it gives no tokens".into());
    }
    let context = model.session.context();
    if ids.len() >= context {
        return Err(format!(
            "the prompt has {} tokens, more than the context of {context} allows (use --ctx)",
            ids.len()
        )
        .into());
    }
    Ok(ids)
}

fn render_chat(
    model: &LoadedModel,
    system: Option<&str>,
    history: &[ChatMessage],
    user: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let template = ChatTemplate::from_gguf(&model.file)?;
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(ChatMessage::new("system", s));
    }
    messages.extend_from_slice(history);
    messages.push(ChatMessage::new("user", user));
    Ok(template.render(&messages, true)?)
}

fn generate_to_stdout(
    model: &mut LoadedModel,
    sampler: &mut Sampler,
    ids: &[u32],
    args: &RunArgs,
) -> Result<GenerateStats, Box<dyn std::error::Error + Send + Sync>> {
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    let stats = generate(
        &mut model.session,
        &model.tokenizer,
        sampler,
        ids,
        args.n_predict,
        &args.stops,
        |text| {
            if write_err.is_none() {
                if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                    write_err = Some(e);
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    writeln!(out)?;
    Ok(stats)
}

fn report(model: &LoadedModel, stats: &GenerateStats) {
    eprintln!(
        "load: {:.2} s | prompt: {} tokens, {:.1} tokens/s | generation: {} tokens, {:.1} tokens/s",
        model.load_time.as_secs_f64(),
        stats.prompt_tokens,
        stats.prompt_tokens_per_s(),
        stats.generated_tokens,
        stats.generate_tokens_per_s()
    );
}

/// A chat on stdin/stdout: each turn is rendered with the whole history and
/// the cache is rebuilt for it (simple and always consistent with the template).
fn interactive(args: &RunArgs, model: &mut LoadedModel, sampler: &mut Sampler) -> CmdResult {
    let mut history: Vec<ChatMessage> = Vec::new();
    let stdin = std::io::stdin();
    eprintln!("interactive chat: type a message, an empty line or EOF ends");
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            break;
        }
        let text = render_chat(model, args.system.as_deref(), &history, &line)?;
        let ids = tokenize_prompt(model, &text, true)?;
        model.session.reset();
        let mut reply = String::new();
        let stats = generate(
            &mut model.session,
            &model.tokenizer,
            sampler,
            &ids,
            args.n_predict,
            &args.stops,
            |t| {
                reply.push_str(t);
                print!("{t}");
                let _ = std::io::stdout().flush();
            },
        )?;
        println!();
        report(model, &stats);
        history.push(ChatMessage::new("user", &line));
        history.push(ChatMessage::new("assistant", &reply));
    }
    Ok(())
}
