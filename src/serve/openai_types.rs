//! The JSON of each endpoint, as OpenAI's API reference and llama-server
//! write it. Requests are read field by field into loose types (numbers
//! as `f64`/`i64`, polymorphic fields as raw JSON) and checked by
//! [`super::sampling`] and [`super::chat`], so an out-of-range value gets a
//! message naming the field rather than a serde error. Unknown request
//! fields are ignored (OpenAI clients send `user`, `metadata`, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---- requests ------------------------------------------------------------

/// The fields both completion endpoints take.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonFields {
    pub model: Option<String>,
    pub max_tokens: Option<i64>,
    /// Chat's newer name for `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Extension (llama.cpp): drop tokens below `min_p` × the best one's
    /// probability.
    pub min_p: Option<f64>,
    /// Extension: keep the `top_k` most likely tokens; 0 is off.
    pub top_k: Option<i64>,
    pub seed: Option<serde_json::Number>,
    /// A string or a list of strings.
    pub stop: Option<Value>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Extension (llama.cpp): divides the logits of recent tokens.
    pub repeat_penalty: Option<f64>,
    /// Extension: how many recent tokens the penalties see (-1: all).
    pub repeat_last_n: Option<i64>,
    pub n: Option<i64>,
    /// Extension: never stop at an end-of-generation token.
    pub ignore_eos: Option<bool>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub logit_bias: Option<Value>,
    pub response_format: Option<Value>,
    pub grammar: Option<Value>,
    pub json_schema: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// `POST /v1/chat/completions`, beyond [`CommonFields`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatFields {
    pub messages: Option<Vec<MessageIn>>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    pub tools: Option<Value>,
    pub tool_choice: Option<Value>,
    pub functions: Option<Value>,
    pub function_call: Option<Value>,
}

/// One message as a client sends it; `content` is a string, a list of
/// parts, or null (an assistant turn).
#[derive(Debug, Clone, Deserialize)]
pub struct MessageIn {
    pub role: String,
    #[serde(default)]
    pub content: Value,
    pub tool_calls: Option<Value>,
    /// A `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
}

/// `POST /v1/completions`, beyond [`CommonFields`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompletionFields {
    /// A string, a list of one string, or a list of token ids.
    pub prompt: Option<Value>,
    pub echo: Option<bool>,
    /// The legacy format: how many alternatives per token (0..=5).
    pub logprobs: Option<i64>,
    pub best_of: Option<i64>,
    pub suffix: Option<String>,
}

/// `POST /tokenize` (llama-server's extension).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    pub content: String,
    /// Add BOS where the model asks for it.
    #[serde(default)]
    pub add_special: bool,
    /// Let the texts of special tokens become those tokens.
    #[serde(default = "yes")]
    pub parse_special: bool,
    /// Answer `{id, piece}` objects instead of bare ids.
    #[serde(default)]
    pub with_pieces: bool,
}

fn yes() -> bool {
    true
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Vec<i64>,
}

// ---- responses -----------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageOut {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

impl From<crate::sched::Usage> for UsageOut {
    fn from(u: crate::sched::Usage) -> Self {
        UsageOut {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_tokens,
            },
        }
    }
}

/// `chat.completion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<ChatChoice>,
    pub usage: UsageOut,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: MessageOut,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageOut {
    pub role: String,
    /// Null when the turn is only tool calls.
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
}

/// Chat's log-probabilities: one entry per generated token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatLogprobs {
    pub content: Vec<TokenLogprobOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprobOut {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprobOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprobOut {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// `chat.completion.chunk`: one server-sent event of a streamed chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<ChunkChoice>,
    /// Only on the last chunk, with `stream_options.include_usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<String>,
}

/// What a chunk adds to the message; empty (`{}`) on the closing chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
}

/// `text_completion`, whole or as one streamed chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<CompletionChoice>,
    /// Always on a whole completion; on a stream only on the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<LegacyLogprobs>,
    pub finish_reason: Option<String>,
}

/// The completions endpoint's log-probabilities: parallel lists, one entry
/// per generated token; `text_offset` is each token's UTF-8 byte offset in
/// the completion text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LegacyLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<serde_json::Map<String, Value>>,
    pub text_offset: Vec<usize>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn closing_chunk_has_an_empty_delta_and_no_usage_key() {
        let chunk = ChatChunk {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk".into(),
            created: 7,
            model: "m".into(),
            system_fingerprint: "fp".into(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta::default(),
                logprobs: None,
                finish_reason: Some("stop".into()),
            }],
            usage: None,
        };
        let v = serde_json::to_value(&chunk).unwrap();
        assert_eq!(v["choices"][0]["delta"], json!({}));
        assert_eq!(v["choices"][0]["logprobs"], Value::Null);
        assert!(v.get("usage").is_none());
        assert_eq!(serde_json::from_value::<ChatChunk>(v).unwrap(), chunk);
    }

    #[test]
    fn usage_reports_total_and_cached_tokens() {
        let u = UsageOut::from(crate::sched::Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 4,
        });
        assert_eq!(
            serde_json::to_value(u).unwrap(),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 4}})
        );
    }

    #[test]
    fn message_content_may_be_absent_or_null() {
        let m: MessageIn = serde_json::from_value(json!({"role": "assistant"})).unwrap();
        assert_eq!(m.content, Value::Null);
    }
}
