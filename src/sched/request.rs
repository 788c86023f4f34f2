//! What a client asks the scheduler for, and what it gets back.
//!
//! A request is a prompt of token ids with its own sampling settings and
//! limits; the scheduler answers with a stream of [`Event`]s through the
//! request's [`EventSink`]. The sink is how the scheduler learns that a
//! client went away: a sink that refuses an event cancels its sequence.

use crate::grammar::Constraint;
use crate::sampler::SamplerConfig;

/// One generation request.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// The prompt's token ids (already rendered and tokenized); not empty.
    pub prompt: Vec<u32>,
    pub sampling: SamplerConfig,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Generation ends when the text contains one of these (not emitted).
    pub stops: Vec<String>,
    /// Never end at an end-of-generation token (they are never sampled):
    /// for benchmarks that need fixed output lengths.
    pub ignore_eos: bool,
    /// Report each chosen token's log-probability and this many
    /// alternatives (`Some(0)`: the chosen one only).
    pub logprobs: Option<usize>,
    /// Output constrained by a grammar or schema (compiled, at the start
    /// of the output); `None`: free text, at no cost.
    pub constraint: Option<Constraint>,
}

impl GenRequest {
    /// A request with llama.cpp's default sampling and no stop strings.
    pub fn new(prompt: Vec<u32>, max_tokens: usize) -> Self {
        GenRequest {
            prompt,
            sampling: SamplerConfig::default(),
            max_tokens,
            stops: Vec::new(),
            ignore_eos: false,
            logprobs: None,
            constraint: None,
        }
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens`, or the context is full.
    Length,
    /// The client went away or asked to cancel; nothing more is sent.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI `finish_reason` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache (at the last
    /// admission, if the sequence was preempted and admitted again).
    pub cached_tokens: usize,
}

/// One token's log-probability (natural log, of the model's distribution
/// before penalties and temperature).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    /// The token's bytes (UTF-8 or not: a piece can be part of a character).
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

/// The chosen token's log-probability and the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct Logprobs {
    pub chosen: TokenLogprob,
    /// Most likely first; as many as the request asked for.
    pub top: Vec<TokenLogprob>,
}

/// What the scheduler tells a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A generated token and the text it completes (possibly empty: text
    /// that might begin a stop string, or part of a character, is held
    /// back until it is decided).
    Token {
        id: u32,
        text: String,
        logprobs: Option<Logprobs>,
    },
    /// The end of the request: the last text held back (if any), why it
    /// ended, and its token counts. Nothing follows.
    Done {
        text: String,
        finish: FinishReason,
        usage: Usage,
    },
    /// The request failed (a bad prompt, a backend error); nothing follows.
    Error(String),
}

/// Where a request's events go. `send` returns false when the receiver is
/// gone; the scheduler then cancels the sequence within the step.
pub trait EventSink: Send {
    fn send(&mut self, event: Event) -> bool;
    /// Whether the receiver is gone (checked every step, also while the
    /// sequence is still in its prefill and sends nothing).
    fn is_closed(&self) -> bool {
        false
    }
}

impl<F: FnMut(Event) -> bool + Send> EventSink for F {
    fn send(&mut self, event: Event) -> bool {
        self(event)
    }
}

impl EventSink for std::sync::mpsc::Sender<Event> {
    fn send(&mut self, event: Event) -> bool {
        std::sync::mpsc::Sender::send(self, event).is_ok()
    }
}
