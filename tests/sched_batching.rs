//! The scheduler on the CPU backend: many sequences batched into steps
//! give each sequence exactly the tokens it gets alone — with the prefix
//! cache on and off, with preemption forced by a small KV pool — and
//! every page comes back when the requests end.

use std::sync::{Arc, Mutex};

use rocmforge::exec::cpu::{KvType, KvTypes};
use rocmforge::load::{load_cpu, LoadOptions};
use rocmforge::quant::GgmlType;
use rocmforge::sampler::SamplerConfig;
use rocmforge::sched::{
    Event, FinishReason, GenRequest, Metrics, Scheduler, SchedulerConfig, Usage,
};
use rocmforge::synth::{TinyArch, TinySpec};

/// What one request produced.
#[derive(Debug, Clone, Default, PartialEq)]
struct Outcome {
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    text: String,
    finish: Option<FinishReason>,
    usage: Usage,
}

type Shared = Arc<Mutex<Outcome>>;

fn sink(out: Shared) -> Box<dyn rocmforge::sched::EventSink> {
    Box::new(move |e: Event| {
        let mut o = out.lock().unwrap();
        match e {
            Event::Token { id, text, logprobs } => {
                o.tokens.push(id);
                o.text.push_str(&text);
                if let Some(l) = logprobs {
                    o.logprobs.push(l.chosen.logprob);
                }
            }
            Event::Done {
                text,
                finish,
                usage,
            } => {
                o.text.push_str(&text);
                o.finish = Some(finish);
                o.usage = usage;
            }
            Event::Error(e) => panic!("request failed: {e}"),
        }
        true
    })
}

struct Setup {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn tiny(ty: GgmlType) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let bytes = TinySpec::for_type(TinyArch::Qwen2, ty)
        .to_bytes(11)
        .unwrap();
    std::fs::write(&path, bytes).unwrap();
    Setup { path, _dir: dir }
}

/// A tiny model whose heads are 32 wide: whole blocks of the quantized
/// KV cache types.
fn tiny_wide_heads() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let spec = TinySpec {
        d_model: 128,
        n_heads: 4,
        n_kv_heads: 2,
        ..TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q8_0)
    };
    std::fs::write(&path, spec.to_bytes(11).unwrap()).unwrap();
    Setup { path, _dir: dir }
}

fn scheduler(
    s: &Setup,
    seqs: usize,
    step_tokens: usize,
    kv_pages: Option<usize>,
    prefix_cache: bool,
) -> Scheduler<rocmforge::exec::cpu_model::CpuModel> {
    scheduler_with(
        s,
        seqs,
        step_tokens,
        kv_pages,
        prefix_cache,
        KvTypes::default(),
    )
}

fn scheduler_with(
    s: &Setup,
    seqs: usize,
    step_tokens: usize,
    kv_pages: Option<usize>,
    prefix_cache: bool,
    kv_types: KvTypes,
) -> Scheduler<rocmforge::exec::cpu_model::CpuModel> {
    let opts = LoadOptions {
        max_tokens: step_tokens,
        max_rows: seqs,
        max_seqs: seqs,
        context: 256,
        kv_pages,
        kv_types,
        ..Default::default()
    };
    let m = load_cpu(&s.path, &opts).unwrap();
    let cfg = SchedulerConfig {
        prefix_cache,
        ..Default::default()
    };
    Scheduler::new(
        m.session.into_backend(),
        Arc::new(m.tokenizer),
        cfg,
        Arc::new(Metrics::default()),
    )
}

/// Prompts of different lengths, some sharing a long prefix.
fn requests() -> Vec<GenRequest> {
    let shared: Vec<u32> = (0..40).map(|i| 3 + (i * 7) % 250).collect();
    (0..12)
        .map(|r| {
            let mut prompt: Vec<u32> = if r % 3 == 0 {
                shared.clone()
            } else {
                Vec::new()
            };
            prompt.extend((0..(5 + r * 9) as u32).map(|i| 1 + (i * 13 + r as u32 * 31) % 255));
            let mut req = GenRequest::new(prompt, 6 + r % 5 * 3);
            req.sampling = SamplerConfig::greedy();
            req.ignore_eos = true;
            req.logprobs = Some(0);
            req
        })
        .collect()
}

fn run_all(
    sched: &mut Scheduler<rocmforge::exec::cpu_model::CpuModel>,
    reqs: &[GenRequest],
    together: bool,
) -> Vec<Outcome> {
    let outs: Vec<Shared> = reqs.iter().map(|_| Shared::default()).collect();
    for (i, r) in reqs.iter().enumerate() {
        sched
            .submit(i as u64, r.clone(), sink(outs[i].clone()))
            .unwrap();
        if !together {
            while sched.has_work() {
                sched.step().unwrap();
            }
        }
    }
    let mut steps = 0;
    while sched.has_work() {
        sched.step().unwrap();
        steps += 1;
        assert!(steps < 10_000, "the scheduler made no progress");
    }
    assert_eq!(sched.pages_used(), 0, "every page is released at the end");
    assert!(sched.pool().is_consistent());
    outs.iter().map(|o| o.lock().unwrap().clone()).collect()
}

fn assert_same(alone: &[Outcome], batched: &[Outcome], what: &str) {
    for (i, (a, b)) in alone.iter().zip(batched).enumerate() {
        assert_eq!(a.tokens, b.tokens, "{what}: request {i}'s tokens");
        assert_eq!(a.finish, b.finish, "{what}: request {i}'s finish");
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!(
                (x - y).abs() <= 1e-4,
                "{what}: request {i}: logprob {x} vs {y}"
            );
        }
        assert_eq!(a.usage.completion_tokens, b.usage.completion_tokens);
    }
}

#[test]
fn batched_requests_generate_what_they_generate_alone() {
    let s = tiny(GgmlType::Q8_0);
    let reqs = requests();
    let alone = run_all(&mut scheduler(&s, 1, 32, None, false), &reqs, false);
    for (i, o) in alone.iter().enumerate() {
        assert_eq!(
            o.tokens.len(),
            reqs[i].max_tokens,
            "request {i} ran to max_tokens"
        );
        assert_eq!(o.finish, Some(FinishReason::Length));
    }
    let batched = run_all(&mut scheduler(&s, 8, 32, None, false), &reqs, true);
    assert_same(&alone, &batched, "batched, no prefix cache");
    let cached = run_all(&mut scheduler(&s, 8, 32, None, true), &reqs, true);
    assert_same(&alone, &cached, "batched, prefix cache");
}

/// Every weight type's CPU kernels give a token the same bits alone (a
/// decode of one token, a prefill remainder) and in a group of tokens
/// (a batched decode, a prefill group): AVX2 and AVX-512 paths alike.
#[test]
fn every_weight_type_is_batch_invariant_on_the_cpu() {
    for ty in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::MXFP4,
        GgmlType::TQ2_0,
        GgmlType::IQ2_XXS,
    ] {
        let s = tiny(ty);
        let reqs: Vec<GenRequest> = requests().into_iter().take(9).collect();
        let alone = run_all(&mut scheduler(&s, 1, 32, None, false), &reqs, false);
        let batched = run_all(&mut scheduler(&s, 9, 64, None, false), &reqs, true);
        for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
            assert_eq!(a.tokens, b.tokens, "{ty:?}: request {i}'s tokens");
            assert_eq!(
                a.logprobs, b.logprobs,
                "{ty:?}: request {i}'s logprobs, bit for bit"
            );
        }
    }
}

/// Quantized KV caches keep batching invisible: alone and batched, with
/// the prefix cache and under preemption, the same tokens and logprobs
/// bit for bit (issue #18).
#[test]
fn quantized_kv_caches_are_batch_invariant_on_the_cpu() {
    let s = tiny_wide_heads();
    let reqs: Vec<GenRequest> = requests().into_iter().take(9).collect();
    for (k, v) in [
        (KvType::Q8_0, KvType::Q4_0),
        (KvType::Q4_0, KvType::Q8_0),
        (KvType::Bf16, KvType::Q5_1),
    ] {
        let kv = KvTypes { k, v };
        let alone = run_all(
            &mut scheduler_with(&s, 1, 32, None, false, kv),
            &reqs,
            false,
        );
        for (what, mut sched) in [
            ("batched", scheduler_with(&s, 9, 64, None, false, kv)),
            ("prefix cache", scheduler_with(&s, 9, 64, None, true, kv)),
            ("small pool", scheduler_with(&s, 8, 32, Some(10), true, kv)),
        ] {
            let together = run_all(&mut sched, &reqs, true);
            for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
                assert_eq!(a.tokens, b.tokens, "{kv} {what}: request {i}'s tokens");
                assert_eq!(
                    a.logprobs, b.logprobs,
                    "{kv} {what}: request {i}'s logprobs"
                );
            }
        }
    }
}

#[test]
fn the_prefix_cache_serves_repeated_prompts_and_changes_nothing() {
    let s = tiny(GgmlType::Q4_K);
    let reqs = requests();
    let mut sched = scheduler(&s, 4, 64, None, true);
    let first = run_all(&mut sched, &reqs, false);
    let again = run_all(&mut sched, &reqs, false);
    assert_same(&first, &again, "second round from the cache");
    for (i, (r, o)) in reqs.iter().zip(&again).enumerate() {
        let whole_pages = (r.prompt.len() - 1) / 16 * 16;
        assert_eq!(o.usage.cached_tokens, whole_pages, "request {i}");
    }
    let hits = Metrics::get(&sched.metrics().prefix_cache_hit_tokens);
    assert!(hits > 0);
    let mut off = scheduler(&s, 4, 64, None, false);
    let plain = run_all(&mut off, &reqs, false);
    let plain2 = run_all(&mut off, &reqs, false);
    assert!(plain2.iter().all(|o| o.usage.cached_tokens == 0));
    assert_same(&first, &plain, "cache off");
}

#[test]
fn preemption_under_a_small_kv_pool_changes_no_output() {
    let s = tiny(GgmlType::Q8_0);
    let reqs = requests();
    let alone = run_all(&mut scheduler(&s, 1, 32, None, false), &reqs, false);
    // The longest request needs 9 pages of 16 tokens: 12 pages for 8
    // slots force preemptions.
    for cache in [false, true] {
        let mut sched = scheduler(&s, 8, 32, Some(12), cache);
        let small = run_all(&mut sched, &reqs, true);
        assert_same(&alone, &small, "small pool");
        assert!(
            Metrics::get(&sched.metrics().preemptions) > 0,
            "the pool was small enough to preempt"
        );
    }
}

#[test]
fn a_sink_that_goes_away_cancels_its_sequence_and_frees_its_pages() {
    let s = tiny(GgmlType::Q8_0);
    let mut sched = scheduler(&s, 4, 32, None, true);
    let mut req = GenRequest::new((1..30).collect(), 50);
    req.ignore_eos = true;
    let seen = Arc::new(Mutex::new(0usize));
    let counter = seen.clone();
    let done = Arc::new(Mutex::new(None));
    let d2 = done.clone();
    sched
        .submit(
            1,
            req,
            Box::new(move |e: Event| match e {
                Event::Token { .. } => {
                    let mut n = counter.lock().unwrap();
                    *n += 1;
                    *n < 3
                }
                Event::Done { finish, .. } => {
                    *d2.lock().unwrap() = Some(finish);
                    false
                }
                Event::Error(e) => panic!("{e}"),
            }),
        )
        .unwrap();
    let mut steps = 0;
    while sched.has_work() {
        sched.step().unwrap();
        steps += 1;
    }
    assert_eq!(*seen.lock().unwrap(), 3, "no token after the refusal");
    assert_eq!(*done.lock().unwrap(), Some(FinishReason::Cancelled));
    assert!(steps <= 4, "{steps} steps");
    assert_eq!(sched.pages_used(), 0);
}

#[test]
fn stop_strings_and_max_tokens_end_generation() {
    let s = tiny(GgmlType::Q8_0);
    let mut sched = scheduler(&s, 2, 32, None, true);
    let mut base = GenRequest::new((1..10).collect(), 12);
    base.sampling = SamplerConfig::greedy();
    base.ignore_eos = true;
    let full = run_all(&mut sched, std::slice::from_ref(&base), true).remove(0);
    assert_eq!(full.finish, Some(FinishReason::Length));
    assert_eq!(full.usage.completion_tokens, 12);
    // A stop string taken from the middle of the greedy text.
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() >= 6, "the tiny model's text: {:?}", full.text);
    let stop: String = chars[3..5].iter().collect();
    let mut with_stop = base.clone();
    with_stop.stops = vec![stop.clone()];
    let cut = run_all(&mut sched, &[with_stop], true).remove(0);
    assert_eq!(cut.finish, Some(FinishReason::Stop));
    let at = full.text.find(&stop).unwrap();
    assert_eq!(
        cut.text,
        full.text[..at],
        "text before the stop string only"
    );
    assert!(!cut.text.contains(&stop));
}

#[test]
fn bad_requests_are_refused_before_they_run() {
    let s = tiny(GgmlType::Q8_0);
    let mut sched = scheduler(&s, 2, 32, None, true);
    let quiet = || -> Box<dyn rocmforge::sched::EventSink> { Box::new(|_e: Event| true) };
    assert!(sched
        .submit(1, GenRequest::new(vec![], 4), quiet())
        .is_err());
    assert!(sched
        .submit(2, GenRequest::new(vec![1, 99_999], 4), quiet())
        .is_err());
    assert!(sched
        .submit(3, GenRequest::new(vec![1; 300], 4), quiet())
        .is_err());
    assert!(sched
        .submit(4, GenRequest::new(vec![1; 3], 0), quiet())
        .is_err());
    assert!(!sched.has_work());
}

/// A backend that selects each row's top candidates on the host, as a GPU
/// does on the device: the scheduler's candidate path, checked on the CPU.
struct HostTop<B> {
    inner: B,
    k: usize,
    words: Vec<i32>,
    logits: Vec<f32>,
    /// Steps run through `run_step_top`, and how many then read whole rows.
    top_steps: usize,
    whole_reads: usize,
}

impl<B: rocmforge::exec::session::StepBackend> rocmforge::exec::session::StepBackend
    for HostTop<B>
{
    fn run_step(
        &mut self,
        step: &rocmforge::exec::step::StepInputs,
    ) -> Result<&[f32], rocmforge::exec::ExecError> {
        self.inner.run_step(step)
    }
    fn limits(&self) -> rocmforge::exec::session::StepLimits {
        self.inner.limits()
    }
    fn vocab(&self) -> usize {
        self.inner.vocab()
    }
    fn top_candidates(&self) -> usize {
        self.k
    }
    fn run_step_top(
        &mut self,
        step: &rocmforge::exec::step::StepInputs,
    ) -> Result<rocmforge::exec::step::TopRows<'_>, rocmforge::exec::ExecError> {
        let vocab = self.inner.vocab();
        self.top_steps += 1;
        let logits = self.inner.run_step(step)?;
        self.logits = logits.to_vec();
        self.words = rocmforge::exec::step::top_rows_of(&self.logits, vocab, self.k);
        Ok(rocmforge::exec::step::TopRows::new(self.k, &self.words))
    }
    fn last_logits(&mut self) -> Result<&[f32], rocmforge::exec::ExecError> {
        self.whole_reads += 1;
        Ok(&self.logits)
    }
}

#[test]
fn drawing_from_the_top_candidates_changes_no_token_and_no_logprob() {
    let s = tiny(GgmlType::Q8_0);
    let mut reqs = requests();
    for (i, r) in reqs.iter_mut().enumerate() {
        // Greedy, top-k, penalties (decided while enough candidates stay
        // ahead), a whole-vocabulary nucleus (decided where the candidates
        // hold it) and a top-k wider than the candidates (whole rows).
        r.logprobs = Some(i % 4);
        let seed = i as u64;
        r.sampling = match i % 5 {
            0 => SamplerConfig::greedy(),
            1 => SamplerConfig {
                top_k: 8,
                seed,
                ..SamplerConfig::default()
            },
            2 => SamplerConfig {
                repeat_penalty: 1.3,
                presence_penalty: 0.2,
                seed,
                ..SamplerConfig::default()
            },
            3 => SamplerConfig {
                top_k: 0,
                top_p: 0.6,
                seed,
                ..SamplerConfig::default()
            },
            _ => SamplerConfig {
                top_k: 100,
                temperature: 1.5,
                seed,
                ..SamplerConfig::default()
            },
        };
    }
    let want = run_all(&mut scheduler(&s, 8, 32, None, true), &reqs, true);
    let tokenizer = Arc::new(
        rocmforge::tokenizer::Tokenizer::from_gguf(
            &rocmforge::gguf::GgufFile::open(&s.path).unwrap(),
        )
        .unwrap(),
    );
    for k in [32, 3] {
        let backend = HostTop {
            inner: scheduler(&s, 8, 32, None, true).into_backend(),
            k,
            words: Vec::new(),
            logits: Vec::new(),
            top_steps: 0,
            whole_reads: 0,
        };
        let mut sched = Scheduler::new(
            backend,
            tokenizer.clone(),
            SchedulerConfig::default(),
            Arc::new(Metrics::default()),
        );
        let got = run_all_backend(&mut sched, &reqs);
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            assert_eq!(a.tokens, b.tokens, "k {k}: request {i}");
            for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                assert!((x - y).abs() <= 1e-5, "k {k}: request {i}: {x} vs {y}");
            }
        }
        let b = sched.into_backend();
        // Steps that mix in a row the candidates cannot decide read whole
        // rows; with 32 candidates, others draw from the candidates alone.
        let (whole, top) = (b.whole_reads, b.top_steps);
        assert!(
            whole > 0 && (k < 32 || whole < top),
            "k {k}: {whole} of {top}"
        );
    }
}

fn run_all_backend<B: rocmforge::exec::session::StepBackend>(
    sched: &mut Scheduler<B>,
    reqs: &[GenRequest],
) -> Vec<Outcome> {
    let outs: Vec<Shared> = reqs.iter().map(|_| Shared::default()).collect();
    for (i, r) in reqs.iter().enumerate() {
        sched
            .submit(i as u64, r.clone(), sink(outs[i].clone()))
            .unwrap();
    }
    while sched.has_work() {
        sched.step().unwrap();
    }
    assert_eq!(sched.pages_used(), 0);
    outs.iter().map(|o| o.lock().unwrap().clone()).collect()
}
