//! The generation loop: prefill the prompt, then sample, decode and stream
//! text until end of generation, a stop string or the token budget.

use std::time::{Duration, Instant};

use super::cpu_model::CpuModel;
use super::session::{Session, StepBackend};
use super::ExecError;
use crate::sampler::{Sampler, StopMatcher, StopOutcome};
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// Timings and counts of one generation.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    pub prompt_time: Duration,
    pub generated_tokens: usize,
    pub generate_time: Duration,
    /// Whether generation ended at an end-of-generation token or stop string.
    pub stopped: bool,
}

impl GenerateStats {
    pub fn prompt_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }

    pub fn generate_tokens_per_s(&self) -> f64 {
        self.generated_tokens as f64 / self.generate_time.as_secs_f64().max(1e-9)
    }
}

/// Generates up to `max_new` tokens after `prompt`, streaming complete text
/// to `on_text`. The session keeps the sequence (so chat turns can go on).
pub fn generate<B: StepBackend>(
    session: &mut Session<B>,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    max_new: usize,
    stops: &[String],
    mut on_text: impl FnMut(&str),
) -> Result<GenerateStats, ExecError> {
    let mut stats = GenerateStats {
        prompt_tokens: prompt.len(),
        ..Default::default()
    };
    for &t in prompt {
        sampler.accept(t);
    }
    let t0 = Instant::now();
    let mut logits = Vec::new();
    session.eval_last_into(prompt, &mut logits)?;
    stats.prompt_time = t0.elapsed();
    let mut decoder = StreamDecoder::new(tokenizer);
    let mut stop = StopMatcher::new(stops.to_vec());
    let t1 = Instant::now();
    while stats.generated_tokens < max_new {
        // `sample` records its pick in the penalty history itself.
        let token = sampler.sample(&mut logits);
        stats.generated_tokens += 1;
        if tokenizer.is_eog(token) {
            stats.stopped = true;
            break;
        }
        match stop.push(&decoder.push(token)) {
            StopOutcome::Continue(text) => on_text(&text),
            StopOutcome::Stopped(text) => {
                on_text(&text);
                stats.stopped = true;
                break;
            }
        }
        if stats.generated_tokens == max_new || session.len() + 1 > session.context() {
            break;
        }
        session.eval_last_into(&[token], &mut logits)?;
    }
    if !stats.stopped {
        if let StopOutcome::Continue(text) = stop.push(&decoder.finish()) {
            on_text(&text);
            on_text(&stop.finish());
        }
    }
    stats.generate_time = t1.elapsed();
    Ok(stats)
}

/// Keeps the concrete CPU session type nameable for callers.
pub type CpuSession = Session<CpuModel>;
