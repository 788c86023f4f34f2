//! `rfc bench --parallel N[,N…]`: N sequences through the scheduler the
//! server uses, as llama-batched-bench measures them: N prompts of
//! `-p` tokens submitted together, then `-n` tokens each (end of
//! generation ignored, greedy). Reported per N: the prompt phase (until
//! every sequence has its first token; early sequences may decode in the
//! meantime, as in a server), the decode phase (every sequence decoding
//! together, one token each per step: the aggregate decode rate), and the
//! whole. Medians over the repeats after one warm-up.

use std::sync::{mpsc, Arc};
use std::time::Instant;

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
}

pub fn run(args: &BenchArgs) -> CmdResult {
    let most = args.parallel.iter().copied().max().unwrap_or(1).max(1);
    if args.n_gen < 2 {
        return Err("--parallel needs -n of at least 2 (a decode phase)".into());
    }
    let opts = LoadOptions {
        max_tokens: args.batch_tokens.max(most),
        max_rows: most,
        max_seqs: most,
        context: args.n_prompt + args.n_gen + 1,
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
                let prompt = (0..args.n_prompt.max(1) as u32)
                    .map(|j| {
                        (j.wrapping_add(i as u32 * 104_729 + rep as u32 * 7)
                            .wrapping_mul(2_654_435_761)
                            >> 7)
                            % vocab
                    })
                    .collect();
                let mut r = GenRequest::new(prompt, args.n_gen);
                r.sampling = SamplerConfig::greedy();
                r.ignore_eos = true;
                let (tx, rx) = mpsc::channel();
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
            let prompt_tokens = n * args.n_prompt.max(1);
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
                });
            }
        }
        rows.push(median_row(samples));
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
    Ok(())
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
