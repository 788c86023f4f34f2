//! `rfc run`: generate text from a prompt (raw, or through the model's chat
//! template), streaming only the generated text to stdout.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::CmdResult;
use rocmforge::artifact::progress::Bars;
use rocmforge::exec::any_backend::AnyBackend;
use rocmforge::gguf::GgufFile;
use rocmforge::grammar::{GrammarCompiler, GrammarSource};
use rocmforge::load::LoadOptions;
use rocmforge::sampler::{ranges, SamplerConfig};
use rocmforge::sched::{
    generate_with_progress, FinishReason, GenRequest, GenerateStats, Metrics, Scheduler,
    SchedulerConfig,
};
use rocmforge::tokenizer::chat::{ChatMessage, ChatTemplate};
use rocmforge::tokenizer::Tokenizer;

type LoadedModel = rocmforge::load::LoadedModel<AnyBackend>;

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
    /// Tokens to generate at most (at least 1).
    #[arg(short = 'n', long = "n-predict", default_value_t = 128, value_parser = parse_n_predict, allow_negative_numbers = true)]
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
    /// CPU threads (default: all cores; at most the machine's CPUs).
    #[arg(short = 't', long, value_parser = super::threads::parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Artifacts: check every weight against its SHA-256 first (every load
    /// checks a fast checksum anyway).
    #[arg(long, conflicts_with = "no_verify")]
    pub verify: bool,
    /// Artifacts: skip the fast weight checksums every load checks.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub cache_type: super::cache_type_args::CacheTypeArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub grammar: super::grammar_args::GrammarArgs,
    #[command(flatten)]
    pub device: super::device::DeviceArgs,
}

/// Sampling flags shared by the commands that generate. Values outside
/// their range are refused with the server's words (`sampler::ranges`).
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Temperature, 0 to 2; 0 means greedy.
    #[arg(long = "temp", default_value_t = 0.8, value_parser = parse_temperature, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Keep the most likely tokens up to this total probability, in (0, 1] (1 = off).
    #[arg(long, default_value_t = 0.95, value_parser = parse_top_p, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens less likely than this times the most likely, 0 to 1 (0 = off).
    #[arg(long, default_value_t = 0.05, value_parser = parse_min_p, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Penalty for tokens among the last --repeat-last-n, above 0 (1 = off).
    #[arg(long, default_value_t = 1.0, value_parser = parse_repeat_penalty, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at (0 = off).
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Subtracted once from each token present in the window, -2 to 2 (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = parse_presence_penalty, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtracted per occurrence of a token in the window, -2 to 2 (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = parse_frequency_penalty, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Random seed (same seed, same text).
    #[arg(long, default_value_t = 0xC0FFEE)]
    pub seed: u64,
}

/// `-n`: a whole number of at least 1 (a negative one gets this message,
/// not clap's tip about values that start with '-').
fn parse_n_predict(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "n_predict = {s} is out of range: it must be a whole number of at least 1"
        )),
    }
}

fn ranged_flag(range: &ranges::Range, param: &str, s: &str) -> Result<f32, String> {
    range
        .parse(param, s)
        .map(|v| v as f32)
        .map_err(|e| e.to_string())
}

fn parse_temperature(s: &str) -> Result<f32, String> {
    ranged_flag(&ranges::TEMPERATURE, "temperature", s)
}
fn parse_top_p(s: &str) -> Result<f32, String> {
    ranged_flag(&ranges::TOP_P, "top_p", s)
}
fn parse_min_p(s: &str) -> Result<f32, String> {
    ranged_flag(&ranges::MIN_P, "min_p", s)
}
fn parse_repeat_penalty(s: &str) -> Result<f32, String> {
    ranged_flag(&ranges::REPEAT_PENALTY, "repeat_penalty", s)
}
fn parse_presence_penalty(s: &str) -> Result<f32, String> {
    ranged_flag(&ranges::ADDITIVE_PENALTY, "presence_penalty", s)
}
fn parse_frequency_penalty(s: &str) -> Result<f32, String> {
    ranged_flag(&ranges::ADDITIVE_PENALTY, "frequency_penalty", s)
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
            logit_bias: Vec::new(),
            seed: self.seed,
        }
    }
}

pub fn run(args: RunArgs) -> CmdResult {
    super::threads::set_threads(args.threads);
    let kv_types = args.cache_type.types()?;
    let prompt = read_prompt(&args)?;
    // A bad grammar is reported before the model loads.
    let grammar = args.grammar.source()?;
    let opts = LoadOptions {
        context: args.context,
        kv_types,
        skip_weight_check: args.no_verify,
        ..Default::default()
    };
    if args.no_verify {
        eprintln!("note: --no-verify: the weights' checksums are not checked");
    }
    let gpu_artifact = matches!(
        rocmforge::artifact::peek_target(&args.model),
        Some(rocmforge::artifact::ArtifactTarget::Gpu(_))
    );
    let model = if args.verify && !gpu_artifact {
        let m = rocmforge::load::load_cpu_verified(&args.model, &opts)?;
        rocmforge::load::on_cpu(m, "a verified artifact runs on the CPU".into())
    } else if args.verify {
        args.device.load_with(&args.model, &opts, true)?
    } else {
        args.device.load(&args.model, &opts)?
    };
    let mut runner = Runner::new(model, grammar)?;
    if args.interactive {
        return interactive(&args, &mut runner);
    }
    let prompt = prompt.ok_or("give a prompt with -p or -f (or use -i)")?;
    let text = if args.chat {
        runner.render_chat(args.system.as_deref(), &[], &prompt)?
    } else {
        prompt
    };
    let ids = runner.tokenize_prompt(&text, args.chat)?;
    let stats = runner.generate_to_stdout(ids, &args, 0)?;
    runner.report(&stats);
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

/// A loaded model behind the scheduler the server uses too, with one
/// sequence at a time.
struct Runner {
    file: Arc<GgufFile>,
    tokenizer: Arc<Tokenizer>,
    sched: Scheduler<AnyBackend>,
    load_time: Duration,
    /// The output constraint and its compiler (built once per model).
    grammar: Option<(GrammarSource, GrammarCompiler)>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

impl Runner {
    fn new(model: LoadedModel, grammar: Option<GrammarSource>) -> Result<Self, Error> {
        let tokenizer = Arc::new(model.tokenizer);
        let sched = Scheduler::new(
            model.session.into_backend(),
            tokenizer.clone(),
            SchedulerConfig::default(),
            Arc::new(Metrics::default()),
        );
        let grammar = match grammar {
            Some(src) => {
                let compiler = GrammarCompiler::new(tokenizer.clone(), sched.vocab())?;
                compiler.compile(&src)?;
                Some((src, compiler))
            }
            None => None,
        };
        Ok(Runner {
            file: model.file,
            tokenizer,
            sched,
            load_time: model.load_time,
            grammar,
        })
    }

    /// Raw prompts are tokenized as text; a rendered chat template carries
    /// special tokens, which are parsed.
    fn tokenize_prompt(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, Error> {
        let ids = self
            .tokenizer
            .encode(text, self.tokenizer.add_bos(), parse_special)?;
        if ids.is_empty() {
            return Err("the prompt is empty: it gives no tokens".into());
        }
        let context = self.sched.context();
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
        &self,
        system: Option<&str>,
        history: &[ChatMessage],
        user: &str,
    ) -> Result<String, Error> {
        let template = ChatTemplate::from_gguf(&self.file)?;
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(ChatMessage::new("system", s));
        }
        messages.extend_from_slice(history);
        messages.push(ChatMessage::new("user", user));
        Ok(template.render(&messages, true)?)
    }

    /// Generates after `ids`, streaming the text to stdout (and into
    /// `reply`); a closed stdout ends generation quietly. `turn` varies the
    /// seed between the turns of a chat.
    fn generate_to_stdout(
        &mut self,
        ids: Vec<u32>,
        args: &RunArgs,
        turn: u64,
    ) -> Result<GenerateStats, Error> {
        self.generate_into(ids, args, turn, &mut String::new())
    }

    fn generate_into(
        &mut self,
        ids: Vec<u32>,
        args: &RunArgs,
        turn: u64,
        reply: &mut String,
    ) -> Result<GenerateStats, Error> {
        let mut req = GenRequest::new(ids, args.n_predict.max(1));
        req.sampling = args.sampling.config();
        req.sampling.seed = req.sampling.seed.wrapping_add(turn);
        req.stops = args.stops.clone();
        if let Some((src, compiler)) = &self.grammar {
            req.constraint = Some(compiler.compile(src)?);
        }
        let mut out = std::io::stdout().lock();
        let mut write_err = None;
        let bars = Bars::new();
        let stats = generate_with_progress(
            &mut self.sched,
            req,
            |text| {
                reply.push_str(text);
                match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                    Ok(()) => true,
                    Err(e) => {
                        write_err = Some(e);
                        false
                    }
                }
            },
            &bars,
        )?;
        match write_err {
            // The reader went away (`rfc run | head`): nothing to report.
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            Some(e) => return Err(e.into()),
            None => {}
        }
        writeln!(out)?;
        self.notice_if_context_full(&stats, args);
        Ok(stats)
    }

    /// Generation that ended at the context, not at -n or a stop, is cut
    /// mid-text: one line says so and what to raise.
    fn notice_if_context_full(&self, stats: &GenerateStats, args: &RunArgs) {
        let context = self.sched.context();
        let full = stats.prompt_tokens + stats.generated_tokens >= context;
        if stats.finish == Some(FinishReason::Length)
            && stats.generated_tokens < args.n_predict
            && full
        {
            eprintln!(
                "note: generation stopped after {} tokens: the context of {context} tokens is full \
                 (raise --ctx; an artifact: recompile with a larger --max-context)",
                stats.generated_tokens
            );
        }
    }

    fn report(&self, stats: &GenerateStats) {
        eprintln!(
            "load: {:.2} s | prompt: {} tokens, {:.1} tokens/s | generation: {} tokens, {:.1} tokens/s",
            self.load_time.as_secs_f64(),
            stats.prompt_tokens,
            stats.prompt_tokens_per_s(),
            stats.generated_tokens,
            stats.generate_tokens_per_s()
        );
    }
}

/// A chat on stdin/stdout: each turn is rendered with the whole history
/// (always consistent with the template); the prefix cache keeps the pages
/// of the turns before, so only the new text is computed.
fn interactive(args: &RunArgs, runner: &mut Runner) -> CmdResult {
    let mut history: Vec<ChatMessage> = Vec::new();
    let stdin = std::io::stdin();
    eprintln!("interactive chat: type a message, an empty line or EOF ends");
    for (turn, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            break;
        }
        let text = runner.render_chat(args.system.as_deref(), &history, &line)?;
        let ids = runner.tokenize_prompt(&text, true)?;
        let mut reply = String::new();
        let stats = runner.generate_into(ids, args, turn as u64, &mut reply)?;
        runner.report(&stats);
        history.push(ChatMessage::new("user", &line));
        history.push(ChatMessage::new("assistant", &reply));
    }
    Ok(())
}
