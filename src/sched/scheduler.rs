//! Continuous batching: every step is built anew from the sequences that
//! have work. Running decodes go first (one token each), then prefill
//! chunks of admitted prompts, then waiting requests are admitted while
//! tokens, rows, sequence slots and KV pages allow. A long prompt is cut
//! into chunks of what the step has left, so it never holds the running
//! streams back by more than one step.
//!
//! KV pages are taken on demand. When none is left for a sequence's next
//! tokens, the newest running sequence is preempted: its pages go back
//! (full ones stay in the prefix cache) and it waits at the front of the
//! queue to recompute its prompt and generated tokens; its sampler, stop
//! matcher and decoder are kept, so its output goes on where it stopped.
//!
//! Batching never changes a sequence's tokens: each token's row is
//! computed from its own position and pages only (tests/serve_batching.rs).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use super::logprobs::{logprobs_from_top, logprobs_of};
use super::metrics::{finish_index, Metrics};
use super::page_pool::{PageKey, PagePool};
use super::request::{Event, EventSink, FinishReason, GenRequest, Usage};
use crate::exec::session::{StepBackend, StepLimits};
use crate::exec::step::StepInputs;
use crate::exec::ExecError;
use crate::grammar::Constraint;
use crate::sampler::{RowTop, Sampler, StopMatcher, StopOutcome};
use crate::tokenizer::stream::Utf8Stream;
use crate::tokenizer::Tokenizer;

/// Steps with at least this many logit rows sample them in parallel.
const PARALLEL_SAMPLING_ROWS: usize = 4;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Share full KV pages between sequences with the same prefix.
    pub prefix_cache: bool,
    /// Requests waiting for admission before new ones are refused.
    pub max_queue: usize,
    /// Sequences running at once (at most the plan's sequences per step).
    pub max_running: usize,
    /// Use at most this many of the backend's KV pages (a smaller budget,
    /// e.g. to exercise preemption); `None`: all of them.
    pub max_pages: Option<usize>,
    /// Draw from the candidates the backend selects on the device where
    /// that picks exactly what the whole row would (greedy, top-k up to
    /// the backend's count, no penalties), so that only they cross to the
    /// host; off: whole rows of logits are always read.
    pub device_top: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            prefix_cache: true,
            max_queue: 256,
            max_running: usize::MAX,
            max_pages: None,
            device_top: true,
        }
    }
}

/// Why a request was refused before it ran.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    BadToken { id: u32, vocab: usize },
    #[error("logit_bias names token id {id}, outside the vocabulary of {vocab}")]
    BadBiasToken { id: u32, vocab: usize },
    #[error("the prompt has {tokens} tokens; the context holds {context}, and at least one token must be generated")]
    PromptTooLong { tokens: usize, context: usize },
    #[error("max_tokens must be at least 1")]
    NoTokens,
    #[error("the queue is full ({queued} requests waiting)")]
    QueueFull { queued: usize },
    #[error("the model is still loading")]
    Loading,
    #[error("the model failed to load: {0}")]
    Failed(String),
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Checks what can be checked of a request before it is queued.
pub fn check_request(req: &GenRequest, vocab: usize, context: usize) -> Result<(), SubmitError> {
    if req.prompt.is_empty() {
        return Err(SubmitError::EmptyPrompt);
    }
    if req.max_tokens == 0 {
        return Err(SubmitError::NoTokens);
    }
    if let Some(&id) = req.prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(SubmitError::BadToken { id, vocab });
    }
    if let Some(&(id, _)) = req
        .sampling
        .logit_bias
        .iter()
        .find(|b| b.0 as usize >= vocab)
    {
        return Err(SubmitError::BadBiasToken { id, vocab });
    }
    if req.prompt.len() >= context {
        return Err(SubmitError::PromptTooLong {
            tokens: req.prompt.len(),
            context,
        });
    }
    Ok(())
}

/// One request's sequence.
struct Sequence {
    id: u64,
    req: GenRequest,
    /// Prompt, then every generated token.
    tokens: Vec<u32>,
    /// Tokens whose K and V are in the cache.
    computed: usize,
    pages: Vec<u32>,
    /// Prefix-cache keys of the first `keys.len()` (full) pages.
    keys: Vec<PageKey>,
    sampler: Sampler,
    /// The grammar the output must follow, if any (taken out while a
    /// worker computes its mask).
    constraint: Option<Constraint>,
    /// Whether the request came with a constraint.
    constrained: bool,
    stop: StopMatcher,
    utf8: Utf8Stream,
    generated: usize,
    cached_tokens: usize,
    sink: Box<dyn EventSink>,
    arrived: Instant,
    last_token: Option<Instant>,
    /// Admission order: the highest is preempted first.
    admitted: u64,
}

impl Sequence {
    fn remaining(&self) -> usize {
        self.tokens.len() - self.computed
    }

    fn is_decode(&self) -> bool {
        self.generated > 0 && self.remaining() == 1
    }
}

/// A sequence's part of the step being built.
struct Part {
    /// The sequence's id.
    id: u64,
    start: usize,
    len: usize,
    /// Whether this part ends the sequence's known tokens (one logit row).
    sample: bool,
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    pub tokens: usize,
    pub sequences: usize,
    pub sampled: usize,
}

/// The scheduler: sequences, KV pages, the prefix cache and sampling state,
/// over one backend that only runs steps.
pub struct Scheduler<B: StepBackend> {
    backend: B,
    tokenizer: Arc<Tokenizer>,
    cfg: SchedulerConfig,
    limits: StepLimits,
    vocab: usize,
    pool: PagePool,
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
    metrics: Arc<Metrics>,
    admissions: u64,
    /// The last step's logit rows, when whole rows were read.
    logits: Vec<f32>,
    /// The last step's top candidates and log-sum-exp per row, when the
    /// backend selected them (and no row needed its whole logits).
    top: Vec<(Vec<(u32, f32)>, f32)>,
}

impl<B: StepBackend> Scheduler<B> {
    pub fn new(
        backend: B,
        tokenizer: Arc<Tokenizer>,
        cfg: SchedulerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let limits = backend.limits();
        let vocab = backend.vocab();
        let mut limits = limits;
        limits.n_pages = cfg.max_pages.unwrap_or(usize::MAX).clamp(1, limits.n_pages);
        let pool = PagePool::new(limits.n_pages, limits.page_size, cfg.prefix_cache);
        metrics.kv_pages_total.store(limits.n_pages as u64, Relaxed);
        Scheduler {
            backend,
            tokenizer,
            cfg,
            limits,
            vocab,
            pool,
            waiting: VecDeque::new(),
            running: Vec::new(),
            metrics,
            admissions: 0,
            logits: Vec::new(),
            top: Vec::new(),
        }
    }

    pub fn limits(&self) -> StepLimits {
        self.limits
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    pub fn into_backend(self) -> B {
        self.backend
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The longest sequence one request can reach.
    pub fn context(&self) -> usize {
        self.limits
            .context()
            .min(self.limits.n_pages * self.limits.page_size)
    }

    /// Sequences that may run at once.
    fn max_running(&self) -> usize {
        self.cfg
            .max_running
            .min(self.limits.max_seqs)
            .min(self.limits.max_rows)
            .max(1)
    }

    pub fn has_work(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty()
    }

    pub fn n_running(&self) -> usize {
        self.running.len()
    }

    pub fn n_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// KV pages referenced by sequences now.
    pub fn pages_used(&self) -> usize {
        self.pool.used()
    }

    pub fn pool(&self) -> &PagePool {
        &self.pool
    }

    /// Queues a request (its place in the waiting count was taken by the
    /// caller: [`Engine::submit`](super::Engine::submit) counts it, and
    /// direct callers go through [`Scheduler::submit`]).
    pub fn add(&mut self, id: u64, mut req: GenRequest, mut sink: Box<dyn EventSink>) {
        if let Err(e) = check_request(&req, self.vocab, self.context()) {
            self.metrics.requests_waiting.fetch_sub(1, Relaxed);
            sink.send(Event::Error(e.to_string()));
            return;
        }
        let mut sampler = Sampler::new(req.sampling.clone());
        for &t in &req.prompt {
            sampler.accept(t);
        }
        let constraint = req.constraint.take();
        self.waiting.push_back(Sequence {
            id,
            constrained: constraint.is_some(),
            constraint,
            tokens: req.prompt.clone(),
            stop: StopMatcher::new(req.stops.clone()),
            req,
            computed: 0,
            pages: Vec::new(),
            keys: Vec::new(),
            sampler,
            utf8: Utf8Stream::new(),
            generated: 0,
            cached_tokens: 0,
            sink,
            arrived: Instant::now(),
            last_token: None,
            admitted: 0,
        });
    }

    /// Checks and queues a request without an engine (the CLI's one
    /// sequence, tests).
    pub fn submit(
        &mut self,
        id: u64,
        req: GenRequest,
        sink: Box<dyn EventSink>,
    ) -> Result<(), SubmitError> {
        check_request(&req, self.vocab, self.context())?;
        self.metrics.requests_waiting.fetch_add(1, Relaxed);
        self.add(id, req, sink);
        Ok(())
    }

    /// Refuses a request that arrived too late.
    pub fn reject(&mut self, mut sink: Box<dyn EventSink>, why: &str) {
        self.metrics.requests_waiting.fetch_sub(1, Relaxed);
        self.metrics.requests_rejected.fetch_add(1, Relaxed);
        sink.send(Event::Error(why.to_string()));
    }

    pub fn cancel(&mut self, id: u64) {
        if let Some(i) = self.running.iter().position(|s| s.id == id) {
            let seq = self.running.remove(i);
            self.finish(seq, FinishReason::Cancelled, String::new(), true);
        } else if let Some(i) = self.waiting.iter().position(|s| s.id == id) {
            let seq = self.waiting.remove(i).expect("found above");
            self.finish(seq, FinishReason::Cancelled, String::new(), false);
        }
    }

    /// Cancels every request.
    pub fn cancel_all(&mut self) {
        self.drop_waiting();
        for seq in std::mem::take(&mut self.running) {
            self.finish(seq, FinishReason::Cancelled, String::new(), true);
        }
    }

    /// Cancels the requests not yet running.
    pub fn drop_waiting(&mut self) {
        // Preempted sequences wait too: they have started, so they stay.
        let (started, fresh): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|s| s.generated > 0);
        self.waiting = started;
        for seq in fresh {
            self.finish(seq, FinishReason::Cancelled, String::new(), false);
        }
    }

    /// Fails every running request (a step failed: their KV is unknown).
    pub fn fail_running(&mut self, why: &str) {
        for mut seq in std::mem::take(&mut self.running) {
            self.pool.release(&seq.pages);
            seq.pages.clear();
            self.metrics.requests_running.fetch_sub(1, Relaxed);
            seq.sink.send(Event::Error(why.to_string()));
        }
        self.publish_pages();
    }

    /// Runs one step; does nothing without work.
    pub fn step(&mut self) -> Result<StepReport, ExecError> {
        self.drop_closed();
        let parts = self.build_step();
        if parts.is_empty() {
            return Ok(StepReport::default());
        }
        let step = self.inputs(&parts);
        self.run_with_masks(&step, &parts)?;
        self.metrics.steps.fetch_add(1, Relaxed);
        self.metrics
            .step_tokens
            .fetch_add(step.tokens.len() as u64, Relaxed);
        let report = StepReport {
            tokens: step.tokens.len(),
            sequences: parts.len(),
            sampled: step.output_rows.len(),
        };
        self.advance(&parts);
        self.publish_pages();
        Ok(report)
    }

    /// Runs `step` while a worker thread computes the grammar masks of the
    /// constrained sequences it samples (a mask depends only on the tokens
    /// already taken, so it need not wait for the logits). Without
    /// constrained rows no thread is started.
    fn run_with_masks(&mut self, step: &StepInputs, parts: &[Part]) -> Result<(), ExecError> {
        let mut jobs: Vec<(u64, Constraint)> = Vec::new();
        for part in parts.iter().filter(|p| p.sample) {
            let i = self.index_of(part.id).expect("parts run");
            if let Some(c) = self.running[i].constraint.take() {
                jobs.push((part.id, c));
            }
        }
        if jobs.is_empty() {
            return self.run(step, parts);
        }
        let (result, jobs) = std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                for (_, c) in jobs.iter_mut() {
                    c.prepare();
                }
                jobs
            });
            let result = self.run(step, parts);
            // llguidance catches its own panics; one escaping is a bug
            // worth stopping for rather than silently losing constraints.
            let jobs = worker
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (result, jobs)
        });
        for (id, c) in jobs {
            let i = self.index_of(id).expect("still running");
            self.running[i].constraint = Some(c);
        }
        result
    }

    /// Runs `step` on the backend, keeping either each row's top
    /// candidates (where the backend selects them and every sampled row
    /// can be drawn from them) or whole rows of logits.
    fn run(&mut self, step: &StepInputs, parts: &[Part]) -> Result<(), ExecError> {
        let rows = step.output_rows.len();
        let k = self.backend.top_candidates();
        self.logits.clear();
        self.top.clear();
        let sampled: Vec<usize> = parts
            .iter()
            .filter(|p| p.sample)
            .map(|p| self.index_of(p.id).expect("parts run"))
            .collect();
        let use_top = self.cfg.device_top
            && k > 0
            && rows > 0
            && sampled.iter().all(|&i| {
                let s = &self.running[i];
                // A grammar may forbid every candidate: its row is read whole.
                !s.constrained && s.req.logprobs.is_none_or(|n| n <= k)
            });
        if !use_top {
            let logits = self.backend.run_step(step)?;
            self.logits.extend_from_slice(&logits[..rows * self.vocab]);
            return Ok(());
        }
        let top = self.backend.run_step_top(step)?;
        self.top.extend((0..rows).map(|r| top.row(r)));
        // Whether a row's best tokens decide its draw depends on their
        // values (penalties, a whole-vocabulary nucleus): where one does
        // not, every row is read whole.
        let tokenizer = &self.tokenizer;
        let open = sampled.iter().zip(&self.top).any(|(&i, (cands, lse))| {
            let s = &self.running[i];
            !s.sampler
                .top_decides(&row_top(s, cands, *lse, k, tokenizer))
        });
        if open {
            let logits = self.backend.last_logits()?;
            self.logits.extend_from_slice(&logits[..rows * self.vocab]);
        }
        Ok(())
    }

    /// Cancels sequences whose client went away.
    fn drop_closed(&mut self) {
        let gone: Vec<u64> = self
            .running
            .iter()
            .chain(&self.waiting)
            .filter(|s| s.sink.is_closed())
            .map(|s| s.id)
            .collect();
        for id in gone {
            self.cancel(id);
        }
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.running.iter().position(|s| s.id == id)
    }

    /// Chooses this step's parts, taking pages (and preempting) as needed.
    fn build_step(&mut self) -> Vec<Part> {
        let mut tokens_left = self.limits.max_tokens;
        let mut rows_left = self.limits.max_rows;
        let mut parts: Vec<Part> = Vec::new();
        // Decodes first, oldest first; then prefill chunks.
        for decode_pass in [true, false] {
            let order: Vec<u64> = self.running.iter().map(|s| s.id).collect();
            for id in order {
                if tokens_left == 0 || parts.len() >= self.limits.max_seqs {
                    break;
                }
                let Some(i) = self.index_of(id) else { continue };
                let seq = &self.running[i];
                if seq.is_decode() != decode_pass || parts.iter().any(|p| p.id == id) {
                    continue;
                }
                let len = seq.remaining().min(tokens_left);
                let sample = len == seq.remaining();
                if sample && rows_left == 0 {
                    continue;
                }
                let start = seq.computed;
                if self.reserve(id, start + len, &parts) {
                    parts.push(Part {
                        id,
                        start,
                        len,
                        sample,
                    });
                    tokens_left -= len;
                    rows_left -= sample as usize;
                }
            }
        }
        self.admit(&mut parts, tokens_left, rows_left);
        parts
    }

    /// Gives sequence `id` pages for `new_len` tokens, preempting the
    /// newest sequences not in `parts` (itself too, if it is the newest)
    /// when the pool is short. False if it cannot run this step.
    fn reserve(&mut self, id: u64, new_len: usize, parts: &[Part]) -> bool {
        let ps = self.limits.page_size;
        loop {
            let Some(i) = self.index_of(id) else {
                return false;
            };
            let need = new_len
                .div_ceil(ps)
                .saturating_sub(self.running[i].pages.len());
            if self.pool.available() >= need {
                for _ in 0..need {
                    let p = self.pool.alloc().expect("counted above");
                    self.running[i].pages.push(p);
                }
                return true;
            }
            let victim = (0..self.running.len())
                .filter(|&j| !parts.iter().any(|p| p.id == self.running[j].id))
                .max_by_key(|&j| self.running[j].admitted);
            match victim {
                Some(j) => self.preempt(j),
                None => return false,
            }
        }
    }

    /// Moves `running[j]` back to the front of the queue, releasing its
    /// pages; it will recompute everything it has.
    fn preempt(&mut self, j: usize) {
        let mut seq = self.running.remove(j);
        tracing::debug!(
            id = seq.id,
            tokens = seq.tokens.len(),
            "preempted for KV pages"
        );
        self.pool.release(&seq.pages);
        seq.pages.clear();
        seq.keys.clear();
        seq.computed = 0;
        self.metrics.preemptions.fetch_add(1, Relaxed);
        self.metrics.requests_running.fetch_sub(1, Relaxed);
        self.metrics.requests_waiting.fetch_add(1, Relaxed);
        self.waiting.push_front(seq);
    }

    /// Admits waiting sequences (oldest first) while the step has room for
    /// a chunk of theirs and the pool for their whole prompt.
    fn admit(&mut self, parts: &mut Vec<Part>, mut tokens_left: usize, mut rows_left: usize) {
        let ps = self.limits.page_size;
        while tokens_left > 0
            && parts.len() < self.limits.max_seqs
            && self.running.len() < self.max_running()
        {
            let Some(seq) = self.waiting.front_mut() else {
                break;
            };
            // Whole pages of cached prefix; the last token is always
            // computed, for its logits.
            let max_hit = (seq.tokens.len() - 1) / ps;
            let hit = self.pool.lookup(&seq.tokens, max_hit);
            let need = seq.tokens.len().div_ceil(ps) - hit.len();
            if self.pool.available() < need {
                self.pool.release(&hit);
                break;
            }
            let mut seq = self.waiting.pop_front().expect("front exists");
            let mut parent = None;
            for (k, &p) in hit.iter().enumerate() {
                let key = PageKey::chain(parent, &seq.tokens[k * ps..(k + 1) * ps]);
                seq.keys.push(key);
                seq.pages.push(p);
                parent = Some(key);
            }
            seq.computed = hit.len() * ps;
            seq.cached_tokens = seq.computed.min(seq.req.prompt.len());
            if seq.generated == 0 {
                self.metrics
                    .prompt_tokens
                    .fetch_add(seq.req.prompt.len() as u64, Relaxed);
            }
            self.metrics
                .prefix_cache_hit_tokens
                .fetch_add(seq.computed as u64, Relaxed);
            self.metrics.requests_waiting.fetch_sub(1, Relaxed);
            self.metrics.requests_running.fetch_add(1, Relaxed);
            self.admissions += 1;
            seq.admitted = self.admissions;
            let len = seq.remaining().min(tokens_left);
            let sample = len == seq.remaining();
            let start = seq.computed;
            let more = (start + len).div_ceil(ps).saturating_sub(seq.pages.len());
            for _ in 0..more {
                seq.pages.push(self.pool.alloc().expect("counted above"));
            }
            let id = seq.id;
            self.running.push(seq);
            if sample && rows_left == 0 {
                // Its chunk waits for the next step.
                break;
            }
            parts.push(Part {
                id,
                start,
                len,
                sample,
            });
            tokens_left -= len;
            rows_left -= sample as usize;
        }
    }

    fn inputs(&self, parts: &[Part]) -> StepInputs {
        let pps = self.limits.pages_per_seq;
        let mut step = StepInputs {
            pages_per_seq: pps,
            page_table: vec![-1; parts.len() * pps],
            ..Default::default()
        };
        for (row, part) in parts.iter().enumerate() {
            let seq = &self.running[self.index_of(part.id).expect("parts run")];
            for (slot, &p) in step.page_table[row * pps..(row + 1) * pps]
                .iter_mut()
                .zip(&seq.pages)
            {
                *slot = p as i32;
            }
            for pos in part.start..part.start + part.len {
                step.tokens.push(seq.tokens[pos] as i32);
                step.positions.push(pos as i32);
                step.seq_ids.push(row as i32);
            }
            if part.sample {
                step.output_rows.push(step.tokens.len() as i32 - 1);
            }
        }
        step
    }

    /// After a step: records what each part computed, registers its full
    /// pages in the prefix cache, samples the parts that asked for it.
    fn advance(&mut self, parts: &[Part]) {
        let ps = self.limits.page_size;
        let context = self.context();
        // Logit row of each running sequence sampled this step.
        let mut rows: Vec<Option<usize>> = vec![None; self.running.len()];
        let mut row = 0;
        for part in parts {
            let i = self.index_of(part.id).expect("parts run");
            let seq = &mut self.running[i];
            seq.computed = part.start + part.len;
            while (seq.keys.len() + 1) * ps <= seq.computed {
                let k = seq.keys.len();
                let key = self.pool.register(
                    seq.pages[k],
                    seq.keys.last().copied(),
                    &seq.tokens[k * ps..(k + 1) * ps],
                );
                seq.keys.push(key);
            }
            if part.sample {
                rows[i] = Some(row);
                row += 1;
            }
        }
        let k = self.backend.top_candidates();
        let (vocab, logits, top, tokenizer, metrics) = (
            self.vocab,
            &self.logits,
            &self.top,
            &*self.tokenizer,
            &*self.metrics,
        );
        let sample = |(seq, row): (&mut Sequence, &Option<usize>)| {
            let r = (*row)?;
            let data = if logits.is_empty() {
                let (cands, lse) = &top[r];
                RowData::Top {
                    cands,
                    lse: *lse,
                    k,
                }
            } else {
                RowData::Full(&logits[r * vocab..(r + 1) * vocab])
            };
            sample_next(seq, data, tokenizer, metrics, context).map(|end| (seq.id, end))
        };
        // A row costs a vocabulary-wide pass or more (penalties, sorting
        // for top-k/top-p): many rows are sampled on all cores.
        let done: Vec<(u64, (FinishReason, String))> = if row >= PARALLEL_SAMPLING_ROWS {
            use rayon::prelude::*;
            self.running
                .par_iter_mut()
                .zip(rows.par_iter())
                .filter_map(sample)
                .collect()
        } else {
            self.running
                .iter_mut()
                .zip(rows.iter())
                .filter_map(sample)
                .collect()
        };
        for (id, (reason, text)) in done {
            let i = self.index_of(id).expect("still running");
            let seq = self.running.remove(i);
            self.finish(seq, reason, text, true);
        }
    }

    /// Ends `seq`: its pages go back, its client gets `Done`.
    fn finish(&mut self, mut seq: Sequence, reason: FinishReason, text: String, running: bool) {
        self.pool.release(&seq.pages);
        seq.pages.clear();
        let gauge = match running {
            true => &self.metrics.requests_running,
            false => &self.metrics.requests_waiting,
        };
        gauge.fetch_sub(1, Relaxed);
        let usage = Usage {
            prompt_tokens: seq.req.prompt.len(),
            completion_tokens: seq.generated,
            cached_tokens: seq.cached_tokens,
        };
        self.metrics.requests_finished[finish_index(reason)].fetch_add(1, Relaxed);
        self.metrics.request_duration.observe(seq.arrived.elapsed());
        seq.sink.send(Event::Done {
            text,
            finish: reason,
            usage,
        });
        self.publish_pages();
    }

    fn publish_pages(&self) {
        self.metrics
            .kv_pages_used
            .store(self.pool.used() as u64, Relaxed);
        self.metrics
            .kv_pages_cached
            .store(self.pool.cached_idle() as u64, Relaxed);
    }
}

/// A row of the step's output as the backend returned it.
#[derive(Clone, Copy)]
enum RowData<'a> {
    /// Every logit.
    Full(&'a [f32]),
    /// The best candidates (raw logits, best first), the log-sum-exp, and
    /// how many candidates a full list holds.
    Top {
        cands: &'a [(u32, f32)],
        lse: f32,
        k: usize,
    },
}

/// What `seq`'s sampler knows of a row from its best candidates: tokens it
/// may never draw (end of generation under `ignore_eos`) taken out.
fn row_top(
    seq: &Sequence,
    cands: &[(u32, f32)],
    lse: f32,
    k: usize,
    tokenizer: &Tokenizer,
) -> RowTop {
    let masked: Vec<u32> = match seq.req.ignore_eos {
        true => tokenizer.special_tokens().eog.iter().copied().collect(),
        false => Vec::new(),
    };
    RowTop::new(cands, k, lse, &masked, |id| masked.contains(&id))
}

/// Samples `seq`'s next token from its last row's `logits`, sends it, and
/// says whether (and how, with the last text) the sequence ends.
fn sample_next(
    seq: &mut Sequence,
    data: RowData<'_>,
    tokenizer: &Tokenizer,
    metrics: &Metrics,
    context: usize,
) -> Option<(FinishReason, String)> {
    let token = match data {
        RowData::Full(logits) => {
            let mut row = logits.to_vec();
            if seq.req.ignore_eos {
                // The few end-of-generation ids, not a test per vocabulary id.
                for &id in &tokenizer.special_tokens().eog {
                    if let Some(l) = row.get_mut(id as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            if let Some(c) = &mut seq.constraint {
                if let Err(e) = c.apply(&mut row) {
                    seq.sink.send(Event::Error(e.to_string()));
                    return Some((FinishReason::Cancelled, String::new()));
                }
                // The grammar is complete and the end of generation is
                // masked (`ignore_eos`): nothing may follow.
                if row.iter().all(|&l| l == f32::NEG_INFINITY) {
                    let text = flush(seq);
                    return Some((FinishReason::Stop, text));
                }
            }
            seq.sampler.sample(&mut row)
        }
        RowData::Top { cands, lse, k } => {
            let top = row_top(seq, cands, lse, k, tokenizer);
            seq.sampler
                .sample_top(&top)
                .expect("the step ran whole rows unless the candidates decide every draw")
        }
    };
    let now = Instant::now();
    match seq.last_token {
        None => metrics.time_to_first_token.observe(now - seq.arrived),
        Some(t) => metrics.inter_token_latency.observe(now - t),
    }
    seq.last_token = Some(now);
    seq.generated += 1;
    metrics.generated_tokens.fetch_add(1, Relaxed);
    let logprobs = seq.req.logprobs.map(|n| match data {
        RowData::Full(logits) => logprobs_of(logits, token, n, tokenizer),
        RowData::Top { cands, lse, .. } => logprobs_from_top(cands, lse, token, n, tokenizer),
    });
    if !seq.req.ignore_eos && tokenizer.is_eog(token) {
        let text = flush(seq);
        return Some((FinishReason::Stop, text));
    }
    let mut grammar_ended = false;
    if let Some(c) = &mut seq.constraint {
        if let Err(e) = c.commit(token) {
            seq.sink.send(Event::Error(e.to_string()));
            return Some((FinishReason::Cancelled, String::new()));
        }
        grammar_ended = c.is_finished();
    }
    let piece = seq.utf8.push_bytes(tokenizer.text_bytes(token));
    let (text, stopped) = match seq.stop.push(&piece) {
        StopOutcome::Continue(t) => (t, false),
        StopOutcome::Stopped(t) => (t, true),
    };
    let alive = seq.sink.send(Event::Token {
        id: token,
        text,
        logprobs,
    });
    if !alive {
        return Some((FinishReason::Cancelled, String::new()));
    }
    if stopped {
        return Some((FinishReason::Stop, String::new()));
    }
    seq.tokens.push(token);
    if grammar_ended {
        // Only the end of generation could follow: save the step.
        let text = flush(seq);
        return Some((FinishReason::Stop, text));
    }
    if seq.generated >= seq.req.max_tokens || seq.tokens.len() >= context {
        let text = flush(seq);
        return Some((FinishReason::Length, text));
    }
    None
}

/// The text still held back at the end of a sequence (an unfinished
/// character, or what might have begun a stop string).
fn flush(seq: &mut Sequence) -> String {
    let rest = seq.utf8.finish();
    match seq.stop.push(&rest) {
        StopOutcome::Continue(mut t) => {
            t.push_str(&seq.stop.finish());
            t
        }
        StopOutcome::Stopped(t) => t,
    }
}
