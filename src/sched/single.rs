//! One request run to its end on the caller's thread: `rfc run` goes
//! through the same scheduler as the server, with one sequence.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::request::{Event, FinishReason, GenRequest};
use super::scheduler::{Scheduler, SubmitError};
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
    mut on_text: impl FnMut(&str) -> bool,
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
    sched.submit(ID, req, Box::new(tx))?;
    let mut wanted = true;
    while sched.has_work() {
        sched.step()?;
        for e in rx.try_iter() {
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
    let first = first.unwrap_or(last);
    stats.prompt_time = first - t0;
    stats.generate_time = last - first;
    Ok(stats)
}
