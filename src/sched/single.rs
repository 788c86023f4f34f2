//! One request run to its end on the caller's thread: `rfc run` goes
//! through the same scheduler as the server, with one sequence.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::request::{Event, FinishReason, GenRequest};
use super::scheduler::{Scheduler, SubmitError};
use crate::artifact::progress::{Progress, Silent, Unit};
use crate::exec::session::StepBackend;
use crate::exec::ExecError;

/// Timings and counts of one generation.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache.
    pub cached_tokens: usize,
    /// From submission to the first generated token.
    pub prompt_time: Duration,
    pub generated_tokens: usize,
    /// From the first generated token to the last.
    pub generate_time: Duration,
    pub finish: Option<FinishReason>,
}

impl GenerateStats {
    /// Prompt tokens computed (not taken from the cache) per second.
    pub fn prompt_tokens_per_s(&self) -> f64 {
        (self.prompt_tokens - self.cached_tokens) as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }

    /// Tokens per second after the first.
    pub fn generate_tokens_per_s(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64 / self.generate_time.as_secs_f64().max(1e-9)
    }
}

/// Why one generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{0}")]
    Failed(String),
}

/// Runs `req` alone on `sched` (which must have no other work), passing
/// text to `on_text` as it completes; `on_text` returning false cancels
/// the rest (a closed pipe).
pub fn generate<B: StepBackend>(
    sched: &mut Scheduler<B>,
    req: GenRequest,
    on_text: impl FnMut(&str) -> bool,
) -> Result<GenerateStats, GenerateError> {
    generate_with_progress(sched, req, on_text, &Silent)
}

/// [`generate`], reporting the prompt's prefill to `progress` (a stage of
/// prompt tokens) where it takes more than one step: a long prompt on the
/// CPU runs for minutes before the first token.
pub fn generate_with_progress<B: StepBackend>(
    sched: &mut Scheduler<B>,
    req: GenRequest,
    mut on_text: impl FnMut(&str) -> bool,
    progress: &dyn Progress,
) -> Result<GenerateStats, GenerateError> {
    let (tx, rx) = mpsc::channel::<Event>();
    let mut stats = GenerateStats {
        prompt_tokens: req.prompt.len(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = t0;
    const ID: u64 = u64::MAX;
    let prompt = req.prompt.len();
    sched.submit(ID, req, Box::new(tx))?;
    let mut prefilling = prompt > sched.limits().max_tokens;
    if prefilling {
        progress.begin("prompt", prompt as u64, Unit::Items);
    }
    let mut wanted = true;
    while sched.has_work() {
        let report = sched.step()?;
        if prefilling {
            progress.advance(report.tokens as u64);
        }
        for e in rx.try_iter() {
            if prefilling {
                progress.end();
                prefilling = false;
            }
            match e {
                Event::Token { text, .. } => {
                    last = Instant::now();
                    first.get_or_insert(last);
                    stats.generated_tokens += 1;
                    if wanted && !text.is_empty() && !on_text(&text) {
                        wanted = false;
                    }
                }
                Event::Done {
                    text,
                    finish,
                    usage,
                } => {
                    if wanted && !text.is_empty() {
                        on_text(&text);
                    }
                    // An end-of-generation token is generated but sends
                    // no text.
                    stats.generated_tokens = usage.completion_tokens;
                    stats.cached_tokens = usage.cached_tokens;
                    stats.finish = Some(finish);
                    if first.is_none() && usage.completion_tokens > 0 {
                        last = Instant::now();
                        first = Some(last);
                    }
                }
                Event::Error(e) => return Err(GenerateError::Failed(e)),
            }
        }
        if !wanted {
            sched.cancel(ID);
        }
    }
    if prefilling {
        progress.end();
    }
    let first = first.unwrap_or(last);
    stats.prompt_time = first - t0;
    stats.generate_time = last - first;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::load::{load_cpu, LoadOptions};
    use crate::sched::{Metrics, SchedulerConfig};
    use crate::synth::{TinyArch, TinySpec};

    /// Every call, in order.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl Progress for Recorded {
        fn begin(&self, what: &str, total: u64, _: Unit) {
            self.0.lock().unwrap().push(format!("begin {what} {total}"));
        }
        fn advance(&self, n: u64) {
            self.0.lock().unwrap().push(format!("advance {n}"));
        }
        fn end(&self) {
            self.0.lock().unwrap().push("end".into());
        }
    }

    fn scheduler(dir: &tempfile::TempDir) -> Scheduler<crate::exec::cpu_model::CpuModel> {
        let path = dir.path().join("tiny.gguf");
        let spec = TinySpec::for_type(TinyArch::Qwen2, crate::quant::GgmlType::F32);
        std::fs::write(&path, spec.to_bytes(1).unwrap()).unwrap();
        let opts = LoadOptions {
            max_tokens: 16,
            context: 256,
            ..Default::default()
        };
        let m = load_cpu(&path, &opts).unwrap();
        Scheduler::new(
            m.session.into_backend(),
            Arc::new(m.tokenizer),
            SchedulerConfig::default(),
            Arc::new(Metrics::default()),
        )
    }

    #[test]
    fn a_prompt_of_several_steps_reports_its_prefill_once_then_ends_before_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut sched = scheduler(&dir);
        let rec = Recorded::default();
        let prompt: Vec<u32> = (0..40).map(|i| 3 + i % 50).collect();
        let mut texts = 0;
        let stats = generate_with_progress(
            &mut sched,
            GenRequest::new(prompt, 3),
            |_| {
                // The bar is gone before the first text is written.
                assert_eq!(
                    rec.0.lock().unwrap().last().map(String::as_str),
                    Some("end")
                );
                texts += 1;
                true
            },
            &rec,
        )
        .unwrap();
        assert_eq!(stats.prompt_tokens, 40);
        let calls = rec.0.into_inner().unwrap();
        // 40 tokens in steps of at most 16: 16, 16, 8; then the end.
        assert_eq!(
            calls,
            [
                "begin prompt 40",
                "advance 16",
                "advance 16",
                "advance 8",
                "end"
            ]
        );
        assert!(texts > 0, "some text was generated");
    }

    #[test]
    fn a_prompt_of_one_step_shows_no_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut sched = scheduler(&dir);
        let rec = Recorded::default();
        generate_with_progress(
            &mut sched,
            GenRequest::new(vec![3, 4, 5], 2),
            |_| true,
            &rec,
        )
        .unwrap();
        assert!(rec.0.into_inner().unwrap().is_empty());
    }
}
