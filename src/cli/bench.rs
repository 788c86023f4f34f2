//! `rfc bench`: prefill and decode speed, median over repeats, like llama-bench.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::CmdResult;
use rocmforge::exec::any_backend::AnyBackend;
use rocmforge::exec::kv_pages::PAGE_SIZE;
use rocmforge::exec::session::StepBackend;
use rocmforge::load::{LoadOptions, LoadedModel};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The model (a GGUF file or an artifact from `rfc compile`).
    pub model: PathBuf,
    /// Prompt tokens for the prefill test (pp).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    pub n_prompt: usize,
    /// Tokens for the decode test (tg).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    pub n_gen: usize,
    /// Context already in the cache before each test (llama-bench's
    /// `-d`): decode and prefill are timed at this depth. It is filled in
    /// steps of up to 512 tokens, untimed.
    #[arg(short = 'd', long, default_value_t = 0)]
    pub depth: usize,
    /// Timed repeats (after one warm-up), at least 1.
    #[arg(short = 'r', long, default_value_t = 3, value_parser = super::threads::parse_at_least_one, allow_negative_numbers = true)]
    pub repeats: usize,
    /// CPU threads (default: all cores; at most the machine's CPUs).
    #[arg(short = 't', long, value_parser = super::threads::parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: super::device::DeviceArgs,
    #[command(flatten)]
    pub cache_type: super::cache_type_args::CacheTypeArgs,
    #[arg(long)]
    pub json: bool,
    /// Sequences decoding together (comma-separated batch sizes, like
    /// llama-batched-bench's -npl): aggregate and per-sequence tokens/s,
    /// and the time of a mixed step (the N decodes and one prefill chunk of
    /// the rest of --batch-tokens). With -d each prompt is DEPTH tokens
    /// longer.
    #[arg(long, value_delimiter = ',')]
    pub parallel: Vec<usize>,
    /// With --parallel: tokens per step (prefill chunks and decodes together).
    #[arg(long, default_value_t = 512)]
    pub batch_tokens: usize,
    /// With --parallel on a GPU: sample from the device's top candidates
    /// (true, the default) or from whole logit rows (false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub device_top: bool,
    /// With --parallel on a GPU: after each batch size, the device time of
    /// one step of that many decodes, kernel by kernel.
    #[arg(long)]
    pub profile: bool,
}

pub fn run(args: BenchArgs) -> CmdResult {
    super::threads::set_threads(args.threads);
    if args.n_prompt == 0 && args.n_gen == 0 && args.parallel.is_empty() {
        return Err(
            "nothing to measure: -p (prompt tokens) and -n (generated tokens) are both 0".into(),
        );
    }
    if !args.parallel.is_empty() {
        return super::bench_parallel::run(&args);
    }
    let opts = LoadOptions {
        // The depth is filled in steps of up to 512 tokens.
        max_tokens: args
            .n_prompt
            .max(if args.depth > 0 { 512 } else { 1 })
            .min(512),
        max_rows: 1,
        context: args.depth + args.n_prompt.max(args.n_gen) + 1,
        kv_types: args.cache_type.types()?,
        ..Default::default()
    };
    let mut model = args.device.load(&args.model, &opts)?;
    let load_s = model.load_time.as_secs_f64();
    let kernels = super::device::kernel_origin(&mut model);
    let roofline = decode_roofline(&mut model, &args);
    // The GPU's pool as allocated (pages in the cache's types).
    let gpu_kv = model
        .session
        .backend_mut()
        .gpu_model()
        .map(|g| (g.footprint().kv_cache, g.limits().n_pages));
    let vocab = model.config.vocab as u32;
    // Fixed pseudo-random tokens: the speed does not depend on their values.
    let tokens = |n: usize, salt: u32| -> Vec<u32> {
        (0..n as u32)
            .map(|i| (i.wrapping_add(salt).wrapping_mul(2654435761) >> 7) % vocab)
            .collect()
    };
    let prompt = tokens(args.n_prompt, 0);
    let context = tokens(args.depth, 1 << 20);
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for rep in 0..=args.repeats {
        let s = &mut model.session;
        s.reset();
        if !context.is_empty() {
            s.eval_last(&context)?;
        }
        let t0 = Instant::now();
        if args.n_prompt > 0 {
            s.eval_last(&prompt)?;
        }
        let prefill = t0.elapsed().as_secs_f64();
        s.reset();
        // Decode from the given depth (an empty cache by default), as
        // llama-bench's tg test does.
        if !context.is_empty() {
            s.eval_last(&context)?;
        }
        let t1 = Instant::now();
        let mut logits = Vec::new();
        for i in 0..args.n_gen {
            s.eval_last_into(&[(i as u32 * 7919) % vocab], &mut logits)?;
        }
        let decode = t1.elapsed().as_secs_f64();
        if rep > 0 {
            pp.push(args.n_prompt as f64 / prefill);
            tg.push(args.n_gen as f64 / decode);
        }
    }
    let (pp_med, tg_med) = (median(&mut pp), median(&mut tg));
    let threads = rayon::current_num_threads();
    let backend = model.session.backend().kind();
    let kv_types = opts.kv_types;
    let c = &model.config;
    let kv_bytes_per_token = kv_types.bytes_per_token(c.n_layer, c.n_kv_heads, c.head_dim);
    if args.json {
        let j = serde_json::json!({
            "model": args.model.display().to_string(),
            "backend": backend,
            "threads": threads,
            "n_prompt": args.n_prompt,
            "n_gen": args.n_gen,
            "depth": args.depth,
            "repeats": args.repeats,
            "prefill_tokens_per_s": pp_med,
            "decode_tokens_per_s": tg_med,
            "prefill_runs": pp,
            "decode_runs": tg,
            "load_s": load_s,
            "kv_cache_type_k": kv_types.k.name(),
            "kv_cache_type_v": kv_types.v.name(),
            "kv_bytes_per_token": kv_bytes_per_token,
            "gpu_kv_pool_bytes": gpu_kv.map(|k| k.0),
            "gpu_kv_pool_pages": gpu_kv.map(|k| k.1),
            "kernels": kernels,
            "runtime_compiler_loaded": rtc_loaded(),
            "runtime_compiler_mapped": super::device::rtc_library_mapped(),
            "decode_bytes_per_token": roofline.map(|r| r.bytes_per_token),
            "peak_bandwidth_bytes_per_s": roofline.map(|r| r.peak_bandwidth),
            "decode_roofline_tokens_per_s": roofline.map(|r| r.tokens_per_s()),
            "decode_roofline_fraction": roofline.map(|r| tg_med / r.tokens_per_s()),
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!("| model | backend | threads | test | t/s | roofline |");
        println!("|---|---|---|---|---|---|");
        let name = args
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let at = if args.depth > 0 {
            format!(" @ d{}", args.depth)
        } else {
            String::new()
        };
        // A test of 0 tokens measures nothing: no row of zeros.
        if args.n_prompt > 0 {
            println!(
                "| {name} | {backend} | {threads} | pp{}{at} | {pp_med:.2} | - |",
                args.n_prompt
            );
        }
        let share = match roofline {
            Some(r) => format!(
                "{:.1} % of {:.0}",
                100.0 * tg_med / r.tokens_per_s(),
                r.tokens_per_s()
            ),
            None => "-".into(),
        };
        if args.n_gen > 0 {
            println!(
                "| {name} | {backend} | {threads} | tg{}{at} | {tg_med:.2} | {share} |",
                args.n_gen
            );
        }
        println!("\nKV cache: {kv_types}, {kv_bytes_per_token} bytes per token");
        if let Some((bytes, pages)) = gpu_kv {
            println!("GPU KV pool: {bytes} bytes, {pages} pages of {PAGE_SIZE} tokens");
        }
    }
    Ok(())
}

/// The decode roofline: the bytes a token must read (every weight it
/// multiplies, one embedding row, and the KV cache at the test's mean
/// context) over the device's peak memory bandwidth.
#[derive(Debug, Clone, Copy)]
struct Roofline {
    bytes_per_token: f64,
    peak_bandwidth: f64,
}

impl Roofline {
    fn tokens_per_s(&self) -> f64 {
        self.peak_bandwidth / self.bytes_per_token
    }
}

/// `None` on the CPU, for a driver without the memory clock, or for a
/// file whose graph the frontend cannot rebuild.
fn decode_roofline(model: &mut LoadedModel<AnyBackend>, args: &BenchArgs) -> Option<Roofline> {
    let peak = model
        .session
        .backend_mut()
        .gpu_model()?
        .gpu()
        .info()
        .peak_bandwidth?;
    let detected = rocmforge::frontend::detect_or_load(&model.file, None).ok()?;
    let (_, graph) = rocmforge::frontend::build_graph_with(&model.file, &detected.spec).ok()?;
    let weights = rocmforge::passes::stats::weight_bytes_per_token(&graph) as f64;
    let c = &model.config;
    let kv_per_position =
        args.cache_type
            .types()
            .ok()?
            .bytes_per_token(c.n_layer, c.n_kv_heads, c.head_dim) as f64;
    let mean_context = args.depth as f64 + (args.n_gen as f64 + 1.0) / 2.0;
    Some(Roofline {
        bytes_per_token: weights + kv_per_position * mean_context,
        peak_bandwidth: peak,
    })
}

/// Whether this process opened a runtime kernel compiler (NVRTC/hiprtc).
fn rtc_loaded() -> bool {
    use rocmforge::backend::{RtcApi, Vendor};
    RtcApi::is_loaded(Vendor::Cuda) || RtcApi::is_loaded(Vendor::Hip)
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
