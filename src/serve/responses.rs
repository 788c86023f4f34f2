//! Generated tokens → OpenAI's response objects: whole ones and streamed
//! chunks of both endpoints, and both log-probability formats.

use serde_json::Value;

use super::generation::{Collected, Token};
use super::openai_types::{
    ChatChoice, ChatChunk, ChatCompletion, ChatLogprobs, ChunkChoice, Completion, CompletionChoice,
    Delta, LegacyLogprobs, MessageOut, TokenLogprobOut, TopLogprobOut, UsageOut,
};
use super::tool_calls::{split_calls, CallStream, ToolCall};
use crate::sched::{FinishReason, Logprobs, TokenLogprob, Usage};

/// JSON has no infinities; OpenAI reports an impossible token as -9999.
const LOGPROB_FLOOR: f32 = -9999.0;

/// What every object of one response repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub fingerprint: String,
}

impl Meta {
    /// A new response of the served model, its id prefixed `prefix`
    /// (`chatcmpl`, `cmpl`).
    pub fn new(state: &crate::serve::state::AppState, prefix: &str) -> Meta {
        Meta {
            id: crate::serve::ids::response_id(prefix),
            created: crate::serve::ids::unix_now(),
            model: state.model.id.clone(),
            fingerprint: state.fingerprint.clone(),
        }
    }
}

fn finite(lp: f32) -> f32 {
    if lp.is_finite() {
        lp
    } else {
        LOGPROB_FLOOR
    }
}

/// An f32 as JSON with its shortest decimal form (`-3.55` rather than
/// the f64 widening's `-3.549999952316284`), as the typed fields print.
fn json_f32(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn token_text(t: &TokenLogprob) -> String {
    String::from_utf8_lossy(&t.bytes).into_owned()
}

fn chat_logprob(lp: &Logprobs) -> TokenLogprobOut {
    TokenLogprobOut {
        token: token_text(&lp.chosen),
        logprob: finite(lp.chosen.logprob),
        bytes: lp.chosen.bytes.clone(),
        top_logprobs: lp
            .top
            .iter()
            .map(|t| TopLogprobOut {
                token: token_text(t),
                logprob: finite(t.logprob),
                bytes: t.bytes.clone(),
            })
            .collect(),
    }
}

/// Chat's `logprobs` for `tokens`, or `None` when none were asked for.
pub fn chat_logprobs(tokens: &[Token]) -> Option<ChatLogprobs> {
    let content: Vec<_> = tokens
        .iter()
        .filter_map(|t| t.logprobs.as_ref())
        .map(chat_logprob)
        .collect();
    (!content.is_empty()).then_some(ChatLogprobs { content })
}

/// Builds the legacy `logprobs` of a completion, token by token, keeping
/// each token's byte offset in the text.
#[derive(Debug, Clone, Default)]
pub struct LegacyBuilder {
    offset: usize,
}

impl LegacyBuilder {
    /// The entries of `tokens` (those that carry log-probabilities).
    pub fn add(&mut self, tokens: &[Token]) -> Option<LegacyLogprobs> {
        let mut out = LegacyLogprobs::default();
        for lp in tokens.iter().filter_map(|t| t.logprobs.as_ref()) {
            out.tokens.push(token_text(&lp.chosen));
            out.token_logprobs.push(finite(lp.chosen.logprob));
            // Tokens whose texts collide (byte pieces all print as U+FFFD)
            // share one key; the most likely, listed first, keeps it.
            let mut top = serde_json::Map::new();
            for t in &lp.top {
                top.entry(token_text(t))
                    .or_insert_with(|| json_f32(finite(t.logprob)));
            }
            out.top_logprobs.push(top);
            out.text_offset.push(self.offset);
            self.offset += lp.chosen.bytes.len();
        }
        (!out.tokens.is_empty()).then_some(out)
    }
}

fn finish_str(f: FinishReason) -> String {
    f.as_str().to_string()
}

/// The whole `chat.completion` of a finished generation; with `tools`,
/// the calls in its text become `tool_calls` (finish reason `tool_calls`).
pub fn chat_completion(meta: &Meta, c: Collected, tools: bool) -> ChatCompletion {
    let mut finish = finish_str(c.finish.unwrap_or(FinishReason::Stop));
    let (content, calls) = if tools {
        split_calls(&c.text)
    } else {
        (c.text, Vec::new())
    };
    let tool_calls = (!calls.is_empty()).then(|| {
        finish = "tool_calls".into();
        calls.iter().map(|c| c.to_json(None)).collect()
    });
    let content = match (&tool_calls, content.is_empty()) {
        (Some(_), true) => None,
        _ => Some(content),
    };
    ChatCompletion {
        id: meta.id.clone(),
        object: "chat.completion".into(),
        created: meta.created,
        model: meta.model.clone(),
        system_fingerprint: meta.fingerprint.clone(),
        choices: vec![ChatChoice {
            index: 0,
            logprobs: chat_logprobs(&c.tokens),
            message: MessageOut {
                role: "assistant".into(),
                content,
                tool_calls,
            },
            finish_reason: finish,
        }],
        usage: c.usage.into(),
    }
}

/// The whole `text_completion` of a finished generation.
pub fn completion(meta: &Meta, c: Collected) -> Completion {
    let logprobs = LegacyBuilder::default().add(&c.tokens);
    Completion {
        id: meta.id.clone(),
        object: "text_completion".into(),
        created: meta.created,
        model: meta.model.clone(),
        system_fingerprint: meta.fingerprint.clone(),
        choices: vec![CompletionChoice {
            text: c.text,
            index: 0,
            logprobs,
            finish_reason: Some(finish_str(c.finish.unwrap_or(FinishReason::Stop))),
        }],
        usage: Some(c.usage.into()),
    }
}

/// The JSON texts a stream sends, event by event (without `[DONE]`).
pub trait Chunker: Send + 'static {
    /// Sent before the first token.
    fn start(&mut self) -> Vec<String>;
    /// A token's chunk; `None` when it has nothing to say.
    fn token(&mut self, t: Token) -> Option<String>;
    /// The closing chunks.
    fn done(&mut self, text: String, finish: FinishReason, usage: Usage) -> Vec<String>;
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Response types hold strings and numbers only: this cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// `chat.completion.chunk`s: the role first, then content deltas, then
/// the finish reason with an empty delta, then (if asked) the usage.
pub struct ChatChunker {
    pub meta: Meta,
    pub include_usage: bool,
    /// With tools: calls are taken out of the text and sent as
    /// `delta.tool_calls` when each closes.
    pub calls: Option<CallStream>,
}

impl ChatChunker {
    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<UsageOut>) -> String {
        json(&ChatChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            system_fingerprint: self.meta.fingerprint.clone(),
            choices,
            usage,
        })
    }

    /// A delta of content and closed calls (numbered from `first`), or
    /// `None` when there is neither.
    fn tool_delta(&self, content: String, calls: &[ToolCall], first: usize) -> Option<Delta> {
        if content.is_empty() && calls.is_empty() {
            return None;
        }
        Some(Delta {
            role: None,
            content: (!content.is_empty()).then_some(content),
            tool_calls: (!calls.is_empty()).then(|| {
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| c.to_json(Some(first + i)))
                    .collect()
            }),
        })
    }

    fn delta(
        &self,
        delta: Delta,
        logprobs: Option<ChatLogprobs>,
        finish: Option<String>,
    ) -> String {
        self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta,
                logprobs,
                finish_reason: finish,
            }],
            None,
        )
    }
}

impl Chunker for ChatChunker {
    fn start(&mut self) -> Vec<String> {
        let role = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            tool_calls: None,
        };
        vec![self.delta(role, None, None)]
    }

    fn token(&mut self, t: Token) -> Option<String> {
        if t.text.is_empty() && t.logprobs.is_none() {
            return None;
        }
        let logprobs = chat_logprobs(std::slice::from_ref(&t));
        let Some(stream) = &mut self.calls else {
            let delta = Delta {
                role: None,
                content: Some(t.text),
                tool_calls: None,
            };
            return Some(self.delta(delta, logprobs, None));
        };
        let (content, calls) = stream.push(&t.text);
        let first = stream.calls.len() - calls.len();
        let delta = self.tool_delta(content, &calls, first);
        match (&delta, &logprobs) {
            (None, None) => None,
            _ => Some(self.delta(delta.unwrap_or_default(), logprobs, None)),
        }
    }

    fn done(&mut self, text: String, finish: FinishReason, usage: Usage) -> Vec<String> {
        let mut out = Vec::new();
        let mut finish = finish_str(finish);
        if let Some(stream) = &mut self.calls {
            let (mut content, mut calls) = stream.push(&text);
            let (rest, more) = stream.finish();
            content.push_str(&rest);
            calls.extend(more);
            let first = stream.calls.len() - calls.len();
            let any_calls = !stream.calls.is_empty();
            if let Some(d) = self.tool_delta(content, &calls, first) {
                out.push(self.delta(d, None, None));
            }
            if any_calls {
                finish = "tool_calls".into();
            }
        } else if !text.is_empty() {
            out.push(self.delta(
                Delta {
                    role: None,
                    content: Some(text),
                    tool_calls: None,
                },
                None,
                None,
            ));
        }
        out.push(self.delta(Delta::default(), None, Some(finish)));
        if self.include_usage {
            out.push(self.chunk(Vec::new(), Some(usage.into())));
        }
        out
    }
}

/// Streamed `text_completion`s: text deltas, then the finish reason, then
/// (if asked) the usage.
pub struct CompletionChunker {
    pub meta: Meta,
    pub include_usage: bool,
    pub logprobs: LegacyBuilder,
}

impl CompletionChunker {
    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<UsageOut>) -> String {
        json(&Completion {
            id: self.meta.id.clone(),
            object: "text_completion".into(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            system_fingerprint: self.meta.fingerprint.clone(),
            choices,
            usage,
        })
    }

    fn text(
        &self,
        text: String,
        logprobs: Option<LegacyLogprobs>,
        finish: Option<String>,
    ) -> String {
        self.chunk(
            vec![CompletionChoice {
                text,
                index: 0,
                logprobs,
                finish_reason: finish,
            }],
            None,
        )
    }
}

impl Chunker for CompletionChunker {
    fn start(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn token(&mut self, t: Token) -> Option<String> {
        if t.text.is_empty() && t.logprobs.is_none() {
            return None;
        }
        let logprobs = self.logprobs.add(std::slice::from_ref(&t));
        Some(self.text(t.text, logprobs, None))
    }

    fn done(&mut self, text: String, finish: FinishReason, usage: Usage) -> Vec<String> {
        let mut out = vec![self.text(text, None, Some(finish_str(finish)))];
        if self.include_usage {
            out.push(self.chunk(Vec::new(), Some(usage.into())));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> Meta {
        Meta {
            id: "chatcmpl-x".into(),
            created: 1,
            model: "tiny".into(),
            fingerprint: "rfc-0".into(),
        }
    }

    fn lp(bytes: &[u8], logprob: f32) -> TokenLogprob {
        TokenLogprob {
            id: 0,
            bytes: bytes.to_vec(),
            logprob,
        }
    }

    fn token(text: &str, logprobs: bool) -> Token {
        Token {
            id: 7,
            text: text.into(),
            logprobs: logprobs.then(|| Logprobs {
                chosen: lp(text.as_bytes(), -0.5),
                top: vec![lp(b"a", -0.1), lp(b"b", f32::NEG_INFINITY)],
            }),
        }
    }

    fn usage() -> Usage {
        Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
            cached_tokens: 0,
        }
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn a_chat_stream_opens_with_the_role_and_closes_with_finish_then_usage() {
        let mut c = ChatChunker {
            meta: meta(),
            include_usage: true,
            calls: None,
        };
        let first = parse(&c.start()[0]);
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
        assert!(
            c.token(token("", false)).is_none(),
            "empty deltas are not sent"
        );
        let mid = parse(&c.token(token("Hi", false)).unwrap());
        assert_eq!(mid["choices"][0]["delta"], json!({"content": "Hi"}));
        let end = c.done("!".into(), FinishReason::Length, usage());
        assert_eq!(end.len(), 3);
        assert_eq!(
            parse(&end[0])["choices"][0]["delta"],
            json!({"content": "!"})
        );
        let fin = parse(&end[1]);
        assert_eq!(fin["choices"][0]["delta"], json!({}));
        assert_eq!(fin["choices"][0]["finish_reason"], "length");
        let last = parse(&end[2]);
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["total_tokens"], 5);
        for s in [&end[0], &end[1]] {
            assert!(parse(s).get("usage").is_none());
        }
        // The chunk type reads back what it wrote.
        let back: ChatChunk = serde_json::from_value(fin).unwrap();
        assert_eq!(back.choices[0].finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn chat_stream_without_usage_ends_at_the_finish_chunk() {
        let mut c = ChatChunker {
            meta: meta(),
            include_usage: false,
            calls: None,
        };
        assert_eq!(c.done(String::new(), FinishReason::Stop, usage()).len(), 1);
    }

    #[test]
    fn chat_logprobs_have_token_bytes_and_finite_alternatives() {
        let c = Collected {
            text: "Hi".into(),
            tokens: vec![token("Hi", true)],
            finish: Some(FinishReason::Stop),
            usage: usage(),
        };
        let v = serde_json::to_value(chat_completion(&meta(), c, false)).unwrap();
        let entry = &v["choices"][0]["logprobs"]["content"][0];
        assert_eq!(entry["token"], "Hi");
        assert_eq!(entry["bytes"], json!([72, 105]));
        assert_eq!(entry["logprob"], -0.5);
        assert_eq!(entry["top_logprobs"][1]["logprob"], -9999.0);
        assert_eq!(
            v["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hi"})
        );
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    }

    #[test]
    fn no_logprobs_asked_means_null() {
        let c = Collected {
            text: "Hi".into(),
            tokens: vec![token("Hi", false)],
            ..Default::default()
        };
        let v = serde_json::to_value(chat_completion(&meta(), c, false)).unwrap();
        assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    }

    #[test]
    fn legacy_logprobs_keep_byte_offsets_across_chunks() {
        let mut b = LegacyBuilder::default();
        let first = b.add(&[token("ab", true), token("é", true)]).unwrap();
        assert_eq!(first.text_offset, vec![0, 2]);
        assert_eq!(first.tokens, vec!["ab", "é"]);
        assert_eq!(first.top_logprobs[0]["a"], json!(-0.1));
        let next = b.add(&[token("c", true)]).unwrap();
        assert_eq!(next.text_offset, vec![4]);
        assert!(b.add(&[token("d", false)]).is_none());
    }

    #[test]
    fn colliding_alternative_texts_keep_the_most_likely() {
        let t = Token {
            id: 1,
            text: String::new(),
            logprobs: Some(Logprobs {
                chosen: lp(&[0xE2], -1.0),
                top: vec![lp(&[0xE2], -1.0), lp(&[0xE3], -2.0)],
            }),
        };
        let out = LegacyBuilder::default().add(&[t]).unwrap();
        assert_eq!(out.top_logprobs[0]["\u{FFFD}"], json!(-1.0));
    }

    #[test]
    fn completion_chunks_end_with_finish_and_usage() {
        let mut c = CompletionChunker {
            meta: meta(),
            include_usage: true,
            logprobs: LegacyBuilder::default(),
        };
        assert!(c.start().is_empty());
        let t = parse(&c.token(token("x", false)).unwrap());
        assert_eq!(t["object"], "text_completion");
        assert_eq!(t["choices"][0]["text"], "x");
        assert_eq!(t["choices"][0]["finish_reason"], Value::Null);
        let end = c.done(String::new(), FinishReason::Stop, usage());
        assert_eq!(parse(&end[0])["choices"][0]["finish_reason"], "stop");
        assert_eq!(parse(&end[1])["usage"]["completion_tokens"], 2);
    }
}
