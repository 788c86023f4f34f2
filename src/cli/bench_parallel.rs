//! `rfc bench --parallel N[,N…]`: N sequences through the scheduler the
//! server uses, as llama-batched-bench measures them: N prompts of
//! `-p` tokens submitted together, then `-n` tokens each (end of
//! generation ignored, greedy). Reported per N: the prompt phase (until
//! every sequence has its first token; early sequences may decode in the
//! meantime, as in a server), the decode phase (every sequence decoding
//! together, one token each per step: the aggregate decode rate), and the
//! whole. Medians over the repeats after one warm-up. With `-d D` each
//! prompt is D + p tokens (the prompt phase includes the D), so that the
//! decode phase runs at depth D + p.. D + p + n.
//!
//! Then, per N, the mixed step a server's steps look like: N sequences
//! decoding, one step of their N decodes alone, then one step that also
//! takes a new request's prompt of the remaining tokens up to the step
//! limit (`--batch-tokens` − N) as one prefill chunk.

use std::sync::{mpsc, Arc};
use std::time::Instant;

use rocmforge::exec::session::StepBackend;
use rocmforge::load::LoadOptions;
use rocmforge::sampler::SamplerConfig;
use rocmforge::sched::{Event, GenRequest, Metrics, Scheduler, SchedulerConfig};

use super::bench::{median, BenchArgs};
use super::CmdResult;

/// One batch size's medians.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    parallel: usize,
    prompt_tokens: usize,
    generated_tokens: usize,
    prompt_s: f64,
    prompt_tokens_per_s: f64,
    decode_s: f64,
    decode_tokens_per_s: f64,
    decode_tokens_per_s_per_seq: f64,
    total_s: f64,
    total_tokens_per_s: f64,
    steps: u64,
    /// One step of the N decodes alone, and one with a prefill chunk
    /// beside them (`mixed_step_tokens` tokens in all), milliseconds.
    decode_step_ms: f64,
    mixed_step_ms: f64,
    mixed_step_tokens: u64,
}

pub fn run(args: &BenchArgs) -> CmdResult {
    let most = args.parallel.iter().copied().max().unwrap_or(1).max(1);
    if args.n_gen < 2 {
        return Err("--parallel needs -n of at least 2 (a decode phase)".into());
    }
    let prompt_len = args.depth + args.n_prompt.max(1);
    // The mixed step's chunk: the step limit's remaining tokens.
    let chunk = |n: usize| args.batch_tokens.saturating_sub(n).max(1);
    // The mixed step's sequences decode while the later ones' prompts are
    // prefilled (up to one step each): they must not reach their end before
    // it.
    let mixed_gen = (most * prompt_len).div_ceil(args.batch_tokens.max(1)) + 8;
    let opts = LoadOptions {
        max_tokens: args.batch_tokens.max(most + 1),
        // The mixed step's request beside the N sequences.
        max_rows: most + 1,
        max_seqs: most + 1,
        context: (prompt_len + args.n_gen.max(mixed_gen) + 1).max(chunk(1) + 1),
        kv_types: args.cache_type.types()?,
        ..Default::default()
    };
    let mut model = args.device.load(&args.model, &opts)?;
    if let Some(g) = model.session.backend_mut().gpu_model() {
        g.set_device_top(args.device_top);
    }
    let backend_kind = model.session.backend().kind();
    let vocab = model.config.vocab as u32;
    let metrics = Arc::new(Metrics::default());
    let mut sched = Scheduler::new(
        model.session.into_backend(),
        Arc::new(model.tokenizer),
        // Repeats must compute their prompts again.
        SchedulerConfig {
            prefix_cache: false,
            ..Default::default()
        },
        metrics.clone(),
    );
    let mut rows = Vec::new();
    for &n in &args.parallel {
        let n = n.max(1);
        let mut samples: Vec<Row> = Vec::new();
        for rep in 0..=args.repeats {
            let steps0 = Metrics::get(&metrics.steps);
            let mut rxs = Vec::new();
            let t0 = Instant::now();
            for i in 0..n {
                let prompt = tokens(prompt_len, (i + rep * n) as u32, vocab);
                let (tx, rx) = mpsc::channel();
                let r = request(prompt, args.n_gen);
                sched.submit((rep * n + i) as u64, r, Box::new(tx))?;
                rxs.push(rx);
            }
            let mut first = vec![false; n];
            let mut prompt_done = None;
            while sched.has_work() {
                sched.step()?;
                if prompt_done.is_none() {
                    for (f, rx) in first.iter_mut().zip(&rxs) {
                        if !*f {
                            *f = rx.try_iter().any(|e| matches!(e, Event::Token { .. }));
                        }
                    }
                    if first.iter().all(|&f| f) {
                        prompt_done = Some(t0.elapsed().as_secs_f64());
                    }
                }
            }
            let total = t0.elapsed().as_secs_f64();
            let prompt_s = prompt_done.unwrap_or(total);
            let decode_s = (total - prompt_s).max(1e-9);
            let decoded = (n * (args.n_gen - 1)) as f64;
            let prompt_tokens = n * prompt_len;
            if rep > 0 {
                samples.push(Row {
                    parallel: n,
                    prompt_tokens,
                    generated_tokens: n * args.n_gen,
                    prompt_s,
                    prompt_tokens_per_s: prompt_tokens as f64 / prompt_s,
                    decode_s,
                    decode_tokens_per_s: decoded / decode_s,
                    decode_tokens_per_s_per_seq: decoded / decode_s / n as f64,
                    total_s: total,
                    total_tokens_per_s: (prompt_tokens + n * args.n_gen) as f64 / total,
                    steps: Metrics::get(&metrics.steps) - steps0,
                    decode_step_ms: 0.0,
                    mixed_step_ms: 0.0,
                    mixed_step_tokens: 0,
                });
            }
        }
        let mut row = median_row(samples);
        let id0 = ((args.repeats + 1) * n) as u64;
        let shape = MixedStep {
            n,
            prompt_len,
            max_tokens: mixed_gen,
            chunk: chunk(n),
        };
        let mixed = mixed_step(&mut sched, &metrics, shape, id0, vocab)?;
        (row.decode_step_ms, row.mixed_step_ms, row.mixed_step_tokens) = mixed;
        rows.push(row);
        if args.profile {
            match sched.backend_mut().gpu_model() {
                Some(g) => super::bench_profile::print(g, n, args.n_prompt + args.n_gen / 2)?,
                None => return Err("--profile needs a GPU (--device cuda|hip)".into()),
            }
        }
    }
    if args.json {
        let j = serde_json::json!({
            "model": args.model.display().to_string(),
            "backend": backend_kind,
            "threads": rayon::current_num_threads(),
            "n_prompt": args.n_prompt,
            "n_gen": args.n_gen,
            "repeats": args.repeats,
            "parallel": rows,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    println!(
        "| backend | N | PP | TG | T_PP s | S_PP t/s | T_TG s | S_TG t/s | per seq t/s | T s | S t/s | steps |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {backend_kind} | {} | {} | {} | {:.3} | {:.1} | {:.3} | {:.1} | {:.1} | {:.3} | {:.1} | {} |",
            r.parallel,
            r.prompt_tokens,
            r.generated_tokens,
            r.prompt_s,
            r.prompt_tokens_per_s,
            r.decode_s,
            r.decode_tokens_per_s,
            r.decode_tokens_per_s_per_seq,
            r.total_s,
            r.total_tokens_per_s,
            r.steps
        );
    }
    println!();
    println!("| backend | N | decode step ms | mixed step tokens | mixed step ms |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {backend_kind} | {} | {:.3} | {} | {:.3} |",
            r.parallel, r.decode_step_ms, r.mixed_step_tokens, r.mixed_step_ms
        );
    }
    Ok(())
}

/// A request as llama-batched-bench runs one: greedy, `max_tokens`
/// generated whatever the tokens.
fn request(prompt: Vec<u32>, max_tokens: usize) -> GenRequest {
    let mut r = GenRequest::new(prompt, max_tokens);
    r.sampling = SamplerConfig::greedy();
    r.ignore_eos = true;
    r
}

/// `len` prompt tokens of sequence `seq`, distinct per sequence.
fn tokens(len: usize, seq: u32, vocab: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|j| {
            (j.wrapping_add(seq.wrapping_mul(104_729))
                .wrapping_mul(2_654_435_761)
                >> 7)
                % vocab
        })
        .collect()
}

/// The mixed step's requests: `n` sequences of `prompt_len` tokens
/// generating up to `max_tokens`, and a `chunk`-token prompt.
struct MixedStep {
    n: usize,
    prompt_len: usize,
    max_tokens: usize,
    chunk: usize,
}

/// Brings `n` sequences to decoding, times one step of their decodes
/// alone (the median of three) and one that also takes a new
/// `chunk`-token prompt, and cancels them: (decode step ms, mixed step
/// ms, tokens in the mixed step).
fn mixed_step<B: StepBackend>(
    sched: &mut Scheduler<B>,
    metrics: &Metrics,
    MixedStep {
        n,
        prompt_len,
        max_tokens,
        chunk,
    }: MixedStep,
    id0: u64,
    vocab: u32,
) -> Result<(f64, f64, u64), Box<dyn std::error::Error + Send + Sync>> {
    let mut rxs = Vec::new();
    for i in 0..n {
        let (tx, rx) = mpsc::channel();
        let seq = u32::MAX - i as u32;
        let r = request(tokens(prompt_len, seq, vocab), max_tokens);
        sched.submit(id0 + i as u64, r, Box::new(tx))?;
        rxs.push(rx);
    }
    // Until every sequence has its first token: the next step is N decodes.
    let mut first = vec![false; n];
    while !first.iter().all(|&f| f) && sched.has_work() {
        sched.step()?;
        for (f, rx) in first.iter_mut().zip(&rxs) {
            *f |= rx.try_iter().any(|e| matches!(e, Event::Token { .. }));
        }
    }
    type Timed = Result<(f64, u64), Box<dyn std::error::Error + Send + Sync>>;
    let timed_step = |sched: &mut Scheduler<B>| -> Timed {
        let tokens0 = Metrics::get(&metrics.step_tokens);
        let t = Instant::now();
        sched.step()?;
        Ok((
            t.elapsed().as_secs_f64() * 1e3,
            Metrics::get(&metrics.step_tokens) - tokens0,
        ))
    };
    // Three steps of decodes alone (the median), then the mixed one.
    let mut decode = Vec::new();
    for _ in 0..3 {
        decode.push(timed_step(sched)?.0);
    }
    let decode_ms = median(&mut decode);
    let (tx, _rx) = mpsc::channel();
    let prompt = tokens(chunk, u32::MAX / 2, vocab);
    sched.submit(id0 + n as u64, request(prompt, 1), Box::new(tx))?;
    let (mixed_ms, mixed_tokens) = timed_step(sched)?;
    sched.cancel_all();
    while sched.has_work() {
        sched.step()?;
    }
    Ok((decode_ms, mixed_ms, mixed_tokens))
}

/// Each figure's median over the repeats.
fn median_row(samples: Vec<Row>) -> Row {
    let mut out = samples[0].clone();
    let pick = |f: fn(&Row) -> f64| median(&mut samples.iter().map(f).collect::<Vec<_>>());
    out.prompt_s = pick(|r| r.prompt_s);
    out.prompt_tokens_per_s = pick(|r| r.prompt_tokens_per_s);
    out.decode_s = pick(|r| r.decode_s);
    out.decode_tokens_per_s = pick(|r| r.decode_tokens_per_s);
    out.decode_tokens_per_s_per_seq = pick(|r| r.decode_tokens_per_s_per_seq);
    out.total_s = pick(|r| r.total_s);
    out.total_tokens_per_s = pick(|r| r.total_tokens_per_s);
    out
}
