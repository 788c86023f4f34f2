//! The `rfc` command line: argument parsing and user-facing output.
//!
//! Each subcommand is one variant of [`Command`] whose args struct lives in
//! its own file here, plus one arm in [`main`]'s match.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod batch_check;
mod bench;
mod bench_parallel;
mod bench_profile;
mod cache_type_args;
mod compile;
mod device;
mod gpu_check;
mod gpu_selftest;
mod grammar_args;
mod inspect;
mod interrupt;
mod ir;
mod perplexity;
mod run;
mod serve;
mod synth;
mod threads;
mod tokenize;

/// What a subcommand returns: any error, printed with its chain of causes.
pub type CmdResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(
    name = "rfc",
    version,
    about = "ROCmForge: a compiler-style LLM inference runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a GGUF file's or artifact's header: metadata, tensor table and totals.
    Inspect(inspect::InspectArgs),
    /// Generate text from a prompt.
    Run(run::RunArgs),
    /// Serve the model over an OpenAI-compatible HTTP API (docs/SERVING.md).
    Serve(serve::ServeArgs),
    /// Measure prefill and decode speed.
    Bench(bench::BenchArgs),
    /// Perplexity of a text, as llama-perplexity computes it.
    Perplexity(perplexity::PerplexityArgs),
    /// Print a model's IR after a pass, or what each pass changes (--stats).
    Ir(ir::IrArgs),
    /// Make a GGUF model with random weights: real-shaped presets, a copied layout, or a tiny test model.
    Synth(synth::SynthArgs),
    /// Print the token ids (and pieces) of a text under a model's tokenizer.
    Tokenize(tokenize::TokenizeArgs),
    /// Compile a GGUF model into an artifact for cpu or a GPU (-o FILE), or write its GPU kernel sources (--emit-kernels DIR).
    Compile(compile::CompileArgs),
    /// Run every GPU kernel against the CPU backend on random inputs (developer check).
    #[command(hide = true)]
    GpuSelftest(gpu_selftest::GpuSelftestArgs),
    /// Batched requests against the same requests alone, through the scheduler (developer check).
    #[command(hide = true)]
    BatchCheck(batch_check::BatchCheckArgs),
    /// Run a whole model on the GPU against the CPU backend (developer check).
    #[command(hide = true)]
    GpuCheck(gpu_check::GpuCheckArgs),
}

pub fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        interrupt::clean_up_on_signal();
    }
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Ir(args) => ir::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Compile(args) => compile::run(args),
        Command::GpuSelftest(args) => gpu_selftest::run(args),
        Command::GpuCheck(args) => gpu_check::run(args),
        Command::BatchCheck(args) => batch_check::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings), in
/// colour only on a terminal (escape codes are noise in a log file).
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}

/// `outer: cause: root cause`, skipping a cause whose text the message
/// before it already ends with (many errors format their source inline).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}
