//! `rfc serve`: the OpenAI-compatible server (src/serve) over a model
//! loaded as `rfc run` loads it, compiled for `--parallel` sequences per
//! step. The port is bound first, so /health answers 503 while the model
//! loads; one line on stdout says when it is ready (docs/SERVING.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::CmdResult;
use rocmforge::exec::any_backend::AnyBackend;
use rocmforge::exec::cpu::KvTypes;
use rocmforge::frontend::ModelConfig;
use rocmforge::gguf::GgufFile;
use rocmforge::load::{LoadOptions, PAGE_SIZE};
use rocmforge::sched::{Engine, EngineStatus, Loaded, Ready, SchedulerConfig};
use rocmforge::serve::{AppState, ModelInfo, ServeOptions, ServedModel};
use rocmforge::tokenizer::chat::ChatTemplate;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model (a GGUF file or an artifact from `rfc compile`).
    pub model: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Sequences generated at once (continuous batching); more wait in the queue.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub parallel: u64,
    /// Context of each sequence in tokens (prompt and output; capped by the model's).
    #[arg(short = 'c', long = "ctx", default_value_t = 4096)]
    pub context: usize,
    /// Tokens per step at most (prefill chunks and decodes together).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_tokens: u64,
    /// KV-cache pages of 16 tokens shared by all sequences (default: every
    /// sequence its whole context). Fewer pages hold fewer tokens in flight;
    /// sequences are preempted and recomputed when they run out.
    #[arg(long, conflicts_with = "kv_memory", value_parser = clap::value_parser!(u64).range(1..))]
    pub kv_pages: Option<u64>,
    /// The KV cache's size in bytes instead of pages, e.g. 512M or 2G.
    #[arg(long, value_parser = parse_size)]
    pub kv_memory: Option<u64>,
    /// Require `Authorization: Bearer KEY` (every endpoint but /health).
    #[arg(long, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// Read the API key from a file (its first line).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Requests waiting for a slot before new ones get 429.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// Do not share the KV pages of common prompt prefixes between requests.
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// Largest request body, e.g. 8M (larger: 413).
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    pub max_body: u64,
    /// Seconds running requests may finish after SIGINT/SIGTERM before they are cancelled.
    #[arg(long, default_value_t = 10.0)]
    pub shutdown_timeout: f64,
    /// The model's id in the API (default: the file's stem).
    #[arg(long)]
    pub alias: Option<String>,
    /// CPU threads (default: all cores; at most the machine's CPUs).
    #[arg(short = 't', long, value_parser = super::threads::parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub cache_type: super::cache_type_args::CacheTypeArgs,
    #[command(flatten)]
    pub device: super::device::DeviceArgs,
}

pub fn run(args: ServeArgs) -> CmdResult {
    super::threads::set_threads(args.threads);
    if !(args.shutdown_timeout.is_finite() && args.shutdown_timeout >= 0.0) {
        return Err("--shutdown-timeout must be a number of seconds, at least 0".into());
    }
    let api_key = api_key(&args)?;
    // The HTTP side only parses, tokenizes and relays: two workers are
    // plenty, and leave the cores to the step loop.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rfc-http")
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, api_key))
}

async fn serve(args: ServeArgs, api_key: Option<String>) -> CmdResult {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let parallel = args.parallel as usize;
    let sched = SchedulerConfig {
        prefix_cache: !args.no_prefix_cache,
        max_queue: args.max_queue,
        max_running: parallel,
        // The pool itself is sized by LoadOptions::kv_pages.
        ..Default::default()
    };
    let load = loader(&args)?;
    let engine = Arc::new(Engine::spawn(sched, load));
    let served = ServedModel::new(
        &args.model,
        args.alias.as_deref(),
        rocmforge::serve::ids::unix_now(),
    );
    let state = Arc::new(AppState::new(engine.clone(), served, api_key));
    let opts = ServeOptions {
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        shutdown_timeout: Duration::from_secs_f64(args.shutdown_timeout),
    };
    let mut server = tokio::spawn(rocmforge::serve::serve(listener, state.clone(), opts));
    loop {
        match engine.status() {
            EngineStatus::Ready(ready) => {
                announce(&args, addr, &state.model.id, ready);
                break;
            }
            EngineStatus::Failed(e) => {
                let e = format!("the model did not load: {e}");
                // The engine's thread waits for its channel to close,
                // which dropping the last handle would wait for: keep it.
                std::mem::forget(engine);
                return Err(e.into());
            }
            EngineStatus::Loading => {}
        }
        if server.is_finished() {
            // Stopped while loading: leave the load to the process exit.
            std::mem::forget(engine);
            return Ok((&mut server).await??);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server.await??)
}

/// The one stdout line that says the server is ready, and on stderr what
/// the model's limits cut from what was asked.
fn announce(args: &ServeArgs, addr: SocketAddr, id: &str, ready: &Ready<ModelInfo>) {
    let l = ready.limits;
    let parallel = (args.parallel as usize)
        .min(l.max_seqs)
        .min(l.max_rows)
        .max(1);
    let mut cuts = Vec::new();
    if parallel < args.parallel as usize {
        cuts.push(format!("parallel {parallel} (asked {})", args.parallel));
    }
    if ready.context < args.context {
        cuts.push(format!(
            "context {} (asked {})",
            ready.context, args.context
        ));
    }
    if !cuts.is_empty() {
        eprintln!(
            "rfc serve: serving within the model's limits ({} tokens of KV pages, plan for {} sequences of {} tokens): {}",
            l.n_pages * l.page_size,
            l.max_seqs,
            l.context(),
            cuts.join(", ")
        );
    }
    println!(
        "rfc serve: listening on http://{addr} (model {id}, device {}, parallel {parallel}, context {}, kv pages {})",
        ready.info.device, ready.context, l.n_pages
    );
}

/// The key of `--api-key` or `--api-key-file`.
fn api_key(args: &ServeArgs) -> Result<Option<String>, BoxError> {
    let key = match (&args.api_key, &args.api_key_file) {
        (Some(k), _) => k.trim().to_string(),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read the API key file {}: {e}", f.display()))?;
            text.lines().next().unwrap_or("").trim().to_string()
        }
        (None, None) => return Ok(None),
    };
    if key.is_empty() {
        return Err("the API key is empty".into());
    }
    Ok(Some(key))
}

/// What runs on the engine's thread: the model loaded for the device, with
/// one sequence slot and one logit row per `--parallel`.
fn loader(
    args: &ServeArgs,
) -> Result<
    impl FnOnce() -> Result<Loaded<AnyBackend, ModelInfo>, BoxError> + Send + 'static,
    BoxError,
> {
    let parallel = args.parallel as usize;
    let kv_pages = match (args.kv_pages, args.kv_memory) {
        (Some(p), _) => Some(usize::try_from(p)?),
        (None, Some(bytes)) => Some(pages_for_memory(
            &args.model,
            bytes,
            args.cache_type.types()?,
        )?),
        (None, None) => None,
    };
    let opts = LoadOptions {
        max_tokens: args.batch_tokens as usize,
        max_rows: parallel,
        context: args.context,
        kv_types: args.cache_type.types()?,
        max_seqs: parallel,
        kv_pages,
        ..Default::default()
    };
    let device = args.device.clone();
    let path = args.model.clone();
    Ok(move || {
        let model = device.load(&path, &opts)?;
        let template = ChatTemplate::from_gguf(&model.file).map_err(|e| e.to_string());
        if let Err(e) = &template {
            tracing::warn!("chat requests will fail: {e}");
        }
        let info = ModelInfo {
            template,
            device: model.session.backend().describe(),
        };
        let mut backend = model.session.into_backend();
        if let Some(g) = backend.gpu_model() {
            // Captured now, not as each batch size first comes: the
            // memory a server holds stops growing once it is ready.
            let t0 = std::time::Instant::now();
            let n = g.capture_decode_steps(parallel as u32)?;
            tracing::info!(
                graphs = n,
                ms = t0.elapsed().as_millis() as u64,
                "captured the decode steps"
            );
        }
        Ok(Loaded {
            backend,
            tokenizer: Arc::new(model.tokenizer),
            info,
        })
    })
}

/// `--kv-memory`: the pages that fit in `bytes`, from the model's KV bytes
/// per token (layers × KV heads × head dim, K and V each in its type).
fn pages_for_memory(path: &Path, bytes: u64, kv: KvTypes) -> Result<usize, BoxError> {
    let cfg = model_config(path)
        .map_err(|e| format!("--kv-memory: cannot read the model's shape: {e}"))?;
    kv.fit(cfg.head_dim)?;
    let per_token = kv.bytes_per_token(cfg.n_layer, cfg.n_kv_heads, cfg.head_dim) as u64;
    let per_page = per_token * PAGE_SIZE as u64;
    let pages = bytes / per_page.max(1);
    if pages == 0 {
        return Err(format!(
            "--kv-memory {bytes} bytes holds no page: one page of {PAGE_SIZE} tokens takes {per_page} bytes"
        )
        .into());
    }
    Ok(usize::try_from(pages)?)
}

fn model_config(path: &Path) -> Result<ModelConfig, BoxError> {
    let file = GgufFile::open(path)?;
    if rocmforge::artifact::is_artifact(&file) {
        return Ok(rocmforge::artifact::Artifact::open(path)?.model_config()?);
    }
    let detected = rocmforge::frontend::detect(&file)?;
    Ok(ModelConfig::from_gguf(&file, &detected.spec)?)
}

/// `512M`, `2G`, `1.5GiB`, `8MB`, `4096`: bytes, with binary multiples.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512M, 2G, 4096)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => return Err(format!("{s:?}: unknown unit {u:?} (K, M, G or T)")),
    };
    let bytes = n * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?} is not a usable size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("8mb"), Ok(8 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("0").is_err());
    }
}
