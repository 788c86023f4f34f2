//! `rfc batch-check MODEL` (hidden): batching is invisible. N greedy
//! requests of different prompt lengths run one at a time, then all at
//! once (prefix cache on), then all at once again in a KV budget small
//! enough to force preemption, on one device through the scheduler the
//! server uses. Each batched run must give every request the tokens it got
//! alone up to the first near-tie of the run alone (top-2 log-probability
//! gap below --tie), and chosen-token log-probabilities within
//! --logprob-tol. The largest log-probability difference is printed: on
//! the GPU a token's arithmetic can depend on how many tokens share its
//! step (other matmul tiles, attention paths), and this says how far.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use rocmforge::load::LoadOptions;
use rocmforge::sampler::SamplerConfig;
use rocmforge::sched::{Event, GenRequest, Metrics, Scheduler, SchedulerConfig};

use super::CmdResult;

#[derive(Debug, clap::Args)]
pub struct BatchCheckArgs {
    /// The model (a GGUF file or an artifact).
    pub model: PathBuf,
    /// Requests (and parallel sequences).
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    /// Greedy tokens per request.
    #[arg(long, default_value_t = 24)]
    pub tokens: usize,
    /// Longest prompt (pseudo-random token ids; lengths spread up to it).
    #[arg(long, default_value_t = 300)]
    pub max_prompt: usize,
    /// Tokens per step.
    #[arg(long, default_value_t = 256)]
    pub batch_tokens: usize,
    /// A top-2 gap below this ends the token comparison (a near-tie).
    #[arg(long, default_value_t = 0.1)]
    pub tie: f32,
    /// Largest allowed relative error (‖batched − alone‖₂ / ‖alone‖₂,
    /// ../shared/COMPARING.md) of the chosen tokens' log-probabilities,
    /// over every token compared: 1e-2 is the GPU's f16 tolerance; the CPU
    /// is exact.
    #[arg(long, default_value_t = 1e-2)]
    pub logprob_tol: f64,
    #[command(flatten)]
    pub device: super::device::DeviceArgs,
}

/// One request's tokens, chosen log-probabilities and top-2 gaps.
#[derive(Debug, Default, Clone)]
struct Run {
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    gaps: Vec<f32>,
}

pub fn run(args: BatchCheckArgs) -> CmdResult {
    let n = args.parallel.max(1);
    let opts = LoadOptions {
        max_tokens: args.batch_tokens,
        max_rows: n,
        max_seqs: n,
        context: args.max_prompt + args.tokens + 1,
        ..Default::default()
    };
    let mut model = args.device.load(&args.model, &opts)?;
    if let Some(g) = model.session.backend_mut().gpu_model() {
        // The batched runs check the device's top candidates too.
        g.set_device_top(true);
    }
    let tokenizer = Arc::new(model.tokenizer);
    let vocab = model.config.vocab as u32;
    let reqs: Vec<GenRequest> = (0..n)
        .map(|i| {
            let len = 1 + (i * 97 + 13) % args.max_prompt.max(1);
            let prompt = (0..len as u32)
                .map(|j| (j.wrapping_mul(2654435761).wrapping_add(i as u32 * 7919) >> 5) % vocab)
                .collect();
            let mut r = GenRequest::new(prompt, args.tokens);
            r.sampling = SamplerConfig::greedy();
            r.ignore_eos = true;
            r.logprobs = Some(2);
            r
        })
        .collect();
    let mut sched = Scheduler::new(
        model.session.into_backend(),
        tokenizer.clone(),
        // Alone, and from whole rows of logits: the batched runs draw from
        // the device's top candidates where the backend selects them, so
        // that path is checked against this one too.
        SchedulerConfig {
            prefix_cache: false,
            device_top: false,
            ..Default::default()
        },
        Arc::new(Metrics::default()),
    );
    let alone = run_requests(&mut sched, &reqs, false)?;
    let pool = sched.limits().n_pages;
    let backend = sched.into_backend();
    let mut sched = Scheduler::new(
        backend,
        tokenizer.clone(),
        SchedulerConfig::default(),
        Arc::new(Metrics::default()),
    );
    let batched = run_requests(&mut sched, &reqs, true)?;
    // Room for the longest request twice over: the rest must take turns.
    let longest = reqs
        .iter()
        .map(|r| r.prompt.len() + r.max_tokens)
        .max()
        .unwrap_or(1);
    let small = (2 * longest.div_ceil(16) + 2).min(pool);
    let backend = sched.into_backend();
    let metrics = Arc::new(Metrics::default());
    let mut sched = Scheduler::new(
        backend,
        tokenizer,
        SchedulerConfig {
            max_pages: Some(small),
            ..Default::default()
        },
        metrics.clone(),
    );
    let preempted = run_requests(&mut sched, &reqs, true)?;
    let preemptions = Metrics::get(&metrics.preemptions);
    println!(
        "| run | requests | tokens compared | first differences | max |Δ logprob| | rel. error | |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut ok = true;
    for (name, runs) in [("batched", &batched), ("preempted", &preempted)] {
        let c = compare(&alone, runs, args.tie);
        let pass = c.diffs == 0 && c.rel_err <= args.logprob_tol;
        ok &= pass;
        println!(
            "| {name} | {n} | {} | {} | {:.2e} | {:.2e} | {} |",
            c.compared,
            c.diffs,
            c.max_abs,
            c.rel_err,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    println!("KV budget of the preempted run: {small} pages; preemptions: {preemptions}");
    if preemptions == 0 && n > 2 {
        ok = false;
        println!("FAIL: the small budget forced no preemption");
    }
    if !ok {
        return Err("batched runs differ from the runs alone".into());
    }
    println!("PASS");
    Ok(())
}

/// How a run compares with the runs alone.
struct Comparison {
    /// Tokens compared (up to each request's first near-tie).
    compared: usize,
    /// Requests with a different token before their first near-tie.
    diffs: usize,
    /// The largest chosen-token log-probability difference.
    max_abs: f32,
    /// ‖other − alone‖₂ / ‖alone‖₂ over the compared log-probabilities.
    rel_err: f64,
}

fn compare(alone: &[Run], other: &[Run], tie: f32) -> Comparison {
    let mut c = Comparison {
        compared: 0,
        diffs: 0,
        max_abs: 0.0,
        rel_err: 0.0,
    };
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in alone.iter().zip(other) {
        for i in 0..a.tokens.len() {
            if b.tokens.get(i) != Some(&a.tokens[i]) {
                c.diffs += 1;
                break;
            }
            c.compared += 1;
            let (x, y) = (a.logprobs[i] as f64, b.logprobs[i] as f64);
            c.max_abs = c.max_abs.max((x - y).abs() as f32);
            num += (x - y).powi(2);
            den += x.powi(2);
            if a.gaps[i] < tie {
                break;
            }
        }
    }
    c.rel_err = if den > 0.0 {
        (num / den).sqrt()
    } else {
        num.sqrt()
    };
    c
}

fn run_requests<B: rocmforge::exec::session::StepBackend>(
    sched: &mut Scheduler<B>,
    reqs: &[GenRequest],
    together: bool,
) -> Result<Vec<Run>, Box<dyn std::error::Error + Send + Sync>> {
    let mut rxs = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        sched.submit(i as u64, r.clone(), Box::new(tx))?;
        rxs.push(rx);
        if !together {
            while sched.has_work() {
                sched.step()?;
            }
        }
    }
    while sched.has_work() {
        sched.step()?;
    }
    if sched.pages_used() != 0 {
        return Err(format!(
            "{} KV pages still used after every request ended",
            sched.pages_used()
        )
        .into());
    }
    let mut out = Vec::new();
    for rx in rxs {
        let mut run = Run::default();
        for e in rx.try_iter() {
            match e {
                Event::Token { id, logprobs, .. } => {
                    let l = logprobs.ok_or("logprobs were asked for")?;
                    run.tokens.push(id);
                    run.logprobs.push(l.chosen.logprob);
                    let gap = match l.top.as_slice() {
                        [a, b, ..] => a.logprob - b.logprob,
                        _ => f32::INFINITY,
                    };
                    run.gaps.push(gap);
                }
                Event::Done { .. } => {}
                Event::Error(e) => return Err(e.into()),
            }
        }
        out.push(run);
    }
    Ok(out)
}
