//! Request fields → the scheduler's [`GenRequest`], checked against
//! OpenAI's ranges. Defaults are OpenAI's, not llama.cpp's: temperature
//! 1, top_p 1, top_k and min_p off, penalties off, a fresh random seed.

use serde_json::Value;

use super::errors::ApiError;
use super::ids::random_u64;
use super::openai_types::CommonFields;
use crate::sampler::{ranges, SamplerConfig};
use crate::sched::GenRequest;

/// Stop strings one request may give.
pub const MAX_STOPS: usize = 16;
/// Recent tokens the penalties see unless `repeat_last_n` says otherwise
/// (llama.cpp's default).
const PENALTY_WINDOW: usize = 64;

/// The checked settings of a request, before its prompt is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub sampling: SamplerConfig,
    /// `None`: the rest of the context.
    pub max_tokens: Option<usize>,
    pub stops: Vec<String>,
    pub ignore_eos: bool,
    pub stream: bool,
    pub include_usage: bool,
    /// `repeat_last_n = -1`: the penalties see the whole context.
    whole_context_penalty: bool,
}

impl Settings {
    /// The scheduler's request for `prompt` in a `context`-token window.
    pub fn request(&self, prompt: Vec<u32>, context: usize, logprobs: Option<usize>) -> GenRequest {
        let room = context.saturating_sub(prompt.len()).max(1);
        let mut sampling = self.sampling.clone();
        if self.whole_context_penalty {
            sampling.penalty_last_n = context;
        }
        GenRequest {
            max_tokens: self.max_tokens.map_or(room, |m| m.min(room)),
            prompt,
            sampling,
            stops: self.stops.clone(),
            ignore_eos: self.ignore_eos,
            logprobs,
            constraint: None,
        }
    }
}

/// Checks the sampling fields both endpoints share.
pub fn settings(f: &CommonFields) -> Result<Settings, ApiError> {
    if let Some(n) = f.n {
        if n != 1 {
            return Err(ApiError::invalid_param(
                "n",
                format!("n = {n}: this server generates one choice per request; n must be 1"),
            ));
        }
    }
    let temperature = ranged("temperature", f.temperature, 1.0, &ranges::TEMPERATURE)?;
    let top_p = ranged("top_p", f.top_p, 1.0, &ranges::TOP_P)?;
    let min_p = ranged("min_p", f.min_p, 0.0, &ranges::MIN_P)?;
    let presence_penalty = ranged(
        "presence_penalty",
        f.presence_penalty,
        0.0,
        &ranges::ADDITIVE_PENALTY,
    )?;
    let frequency_penalty = ranged(
        "frequency_penalty",
        f.frequency_penalty,
        0.0,
        &ranges::ADDITIVE_PENALTY,
    )?;
    let repeat_penalty = ranged(
        "repeat_penalty",
        f.repeat_penalty,
        1.0,
        &ranges::REPEAT_PENALTY,
    )?;
    let top_k = match f.top_k {
        None => 0,
        Some(k) if k >= 0 => usize::try_from(k).unwrap_or(usize::MAX),
        Some(k) => return Err(out_of_range("top_k", k, "at least 0 (0 is off)")),
    };
    let (penalty_last_n, whole_context_penalty) = match f.repeat_last_n {
        None => (PENALTY_WINDOW, false),
        Some(-1) => (PENALTY_WINDOW, true),
        Some(n) if n >= 0 => (usize::try_from(n).unwrap_or(usize::MAX), false),
        Some(n) => {
            return Err(out_of_range(
                "repeat_last_n",
                n,
                "at least -1 (-1: the whole context)",
            ))
        }
    };
    let (param, max) = match (f.max_completion_tokens, f.max_tokens) {
        (Some(m), _) => ("max_completion_tokens", Some(m)),
        (None, m) => ("max_tokens", m),
    };
    let max_tokens = match max {
        None => None,
        Some(m) if m >= 1 => Some(usize::try_from(m).unwrap_or(usize::MAX)),
        Some(m) => return Err(out_of_range(param, m, "at least 1")),
    };
    Ok(Settings {
        sampling: SamplerConfig {
            temperature: temperature as f32,
            top_k,
            top_p: top_p as f32,
            min_p: min_p as f32,
            penalty_last_n,
            repeat_penalty: repeat_penalty as f32,
            frequency_penalty: frequency_penalty as f32,
            presence_penalty: presence_penalty as f32,
            logit_bias: logit_bias(f.logit_bias.as_ref())?,
            seed: seed(f.seed.as_ref())?,
        },
        max_tokens,
        stops: stops(f.stop.as_ref())?,
        ignore_eos: f.ignore_eos.unwrap_or(false),
        stream: f.stream.unwrap_or(false),
        include_usage: f
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        whole_context_penalty,
    })
}

/// `value`, or `default` when absent; refused outside `range` (the
/// ranges `rfc run`'s flags use too).
fn ranged(
    param: &str,
    value: Option<f64>,
    default: f64,
    range: &ranges::Range,
) -> Result<f64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => range
            .check(param, v)
            .map_err(|e| out_of_range(param, v, e.range)),
    }
}

fn out_of_range(param: &str, value: impl std::fmt::Display, range: &str) -> ApiError {
    ApiError::invalid_param(
        param,
        format!("{param} = {value} is out of range: it must be {range}"),
    )
    .with_code("invalid_value")
}

/// Any integer (negative ones wrap, as llama-server's do); absent: random.
fn seed(n: Option<&serde_json::Number>) -> Result<u64, ApiError> {
    let Some(n) = n else { return Ok(random_u64()) };
    n.as_u64()
        .or_else(|| n.as_i64().map(|i| i as u64))
        .ok_or_else(|| {
            ApiError::invalid_param("seed", format!("seed = {n}: it must be an integer"))
        })
}

/// `stop`: a string or a list of strings; empty strings mean nothing.
fn stops(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        return Err(ApiError::invalid_param(
                            format!("stop[{i}]"),
                            "`stop` must be a string or a list of strings",
                        ))
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "stop",
                "`stop` must be a string or a list of strings",
            ))
        }
    };
    if list.len() > MAX_STOPS {
        return Err(ApiError::invalid_param(
            "stop",
            format!(
                "`stop` has {} strings; at most {MAX_STOPS} are taken",
                list.len()
            ),
        ));
    }
    Ok(list.into_iter().filter(|s| !s.is_empty()).collect())
}

/// Biases a request may give (OpenAI's limit).
pub const MAX_LOGIT_BIASES: usize = 300;

/// `logit_bias`: an object from token ids (as strings, OpenAI's form) to
/// biases in [-100, 100], sorted by id. Ids beyond the vocabulary are
/// refused when the request is submitted (`check_request`).
fn logit_bias(v: Option<&Value>) -> Result<Vec<(u32, f32)>, ApiError> {
    let bad = |m: String| ApiError::invalid_param("logit_bias", m);
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(bad(
                "`logit_bias` must be an object of token ids to biases".into()
            ))
        }
    };
    if map.len() > MAX_LOGIT_BIASES {
        return Err(bad(format!(
            "`logit_bias` has {} entries; at most {MAX_LOGIT_BIASES} are taken",
            map.len()
        )));
    }
    let mut out = Vec::with_capacity(map.len());
    for (k, b) in map {
        let id: u32 = k
            .parse()
            .map_err(|_| bad(format!("logit_bias key {k:?} is not a token id")))?;
        let b = b
            .as_f64()
            .filter(|b| (-100.0..=100.0).contains(b))
            .ok_or_else(|| {
                bad(format!(
                    "logit_bias of token {id} must be a number from -100 to 100"
                ))
            })?;
        out.push((id, b as f32));
    }
    out.sort_by_key(|b| b.0);
    // "007" and "7" name one token.
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(bad(format!("logit_bias names token {} twice", w[0].0)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::extract::typed;
    use serde_json::json;

    fn check(v: Value) -> Result<Settings, ApiError> {
        settings(&typed::<CommonFields>(&v)?)
    }

    fn refused_param(v: Value) -> String {
        let e = check(v).expect_err("refused");
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        e.detail.param.unwrap_or_default()
    }

    #[test]
    fn defaults_are_openais() {
        let s = check(json!({})).unwrap();
        assert_eq!(s.sampling.temperature, 1.0);
        assert_eq!(s.sampling.top_p, 1.0);
        assert_eq!(s.sampling.top_k, 0);
        assert_eq!(s.sampling.min_p, 0.0);
        assert_eq!(s.sampling.repeat_penalty, 1.0);
        assert_eq!(s.sampling.presence_penalty, 0.0);
        assert_eq!(s.max_tokens, None);
        assert!(!s.stream && !s.include_usage && !s.ignore_eos);
    }

    #[test]
    fn absent_seeds_differ_and_given_seeds_are_kept() {
        assert_ne!(
            check(json!({})).unwrap().sampling.seed,
            check(json!({})).unwrap().sampling.seed
        );
        assert_eq!(check(json!({"seed": 42})).unwrap().sampling.seed, 42);
        assert_eq!(check(json!({"seed": -1})).unwrap().sampling.seed, u64::MAX);
        assert_eq!(refused_param(json!({"seed": 1.5})), "seed");
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        for (field, bad) in [
            ("temperature", json!(-0.1)),
            ("temperature", json!(2.5)),
            ("top_p", json!(0.0)),
            ("top_p", json!(1.1)),
            ("min_p", json!(-0.5)),
            ("top_k", json!(-1)),
            ("max_tokens", json!(0)),
            ("max_completion_tokens", json!(-3)),
            ("presence_penalty", json!(2.1)),
            ("frequency_penalty", json!(-2.1)),
            ("repeat_penalty", json!(0)),
            ("repeat_last_n", json!(-2)),
            ("n", json!(2)),
        ] {
            assert_eq!(
                refused_param(json!({ field: bad })),
                field,
                "{field} = {bad}"
            );
        }
    }

    #[test]
    fn wrong_types_are_400_not_500() {
        assert_eq!(refused_param(json!({"temperature": "hot"})), "temperature");
        assert_eq!(refused_param(json!({"max_tokens": 1.5})), "max_tokens");
        assert_eq!(refused_param(json!({"stream": "yes"})), "stream");
    }

    #[test]
    fn stop_is_a_string_or_a_list() {
        assert_eq!(check(json!({"stop": "\n"})).unwrap().stops, vec!["\n"]);
        assert_eq!(
            check(json!({"stop": ["a", "", "b"]})).unwrap().stops,
            vec!["a", "b"]
        );
        assert_eq!(
            check(json!({"stop": null})).unwrap().stops,
            Vec::<String>::new()
        );
        assert_eq!(refused_param(json!({"stop": 3})), "stop");
        assert_eq!(refused_param(json!({"stop": ["a", 1]})), "stop[1]");
        let many: Vec<String> = (0..=MAX_STOPS).map(|i| i.to_string()).collect();
        assert_eq!(refused_param(json!({ "stop": many })), "stop");
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        assert_eq!(refused_param(json!({"logit_bias": {"x": 5}})), "logit_bias");
        assert_eq!(
            refused_param(json!({"logit_bias": {"1": 101}})),
            "logit_bias"
        );
        assert_eq!(
            refused_param(json!({"logit_bias": {"1": "5"}})),
            "logit_bias"
        );
        assert_eq!(
            refused_param(json!({"logit_bias": {"7": 1, "007": 2}})),
            "logit_bias"
        );
        assert_eq!(refused_param(json!({"logit_bias": [1]})), "logit_bias");
        let s = check(json!({"logit_bias": {"12": -100, "3": 2.5}})).unwrap();
        assert_eq!(s.sampling.logit_bias, vec![(3, 2.5), (12, -100.0)]);
        assert!(
            check(json!({"response_format": {"type": "text"}, "logit_bias": {}, "user": "u"}))
                .is_ok()
        );
    }

    #[test]
    fn max_completion_tokens_wins_and_max_tokens_is_capped_by_the_context() {
        let s = check(json!({"max_tokens": 5, "max_completion_tokens": 7})).unwrap();
        assert_eq!(s.max_tokens, Some(7));
        let req = check(json!({"max_tokens": 100}))
            .unwrap()
            .request(vec![1; 10], 32, None);
        assert_eq!(req.max_tokens, 22);
        let req = check(json!({})).unwrap().request(vec![1; 10], 32, Some(2));
        assert_eq!(req.max_tokens, 22);
        assert_eq!(req.logprobs, Some(2));
    }

    #[test]
    fn temperature_zero_is_greedy_and_allowed() {
        assert_eq!(
            check(json!({"temperature": 0}))
                .unwrap()
                .sampling
                .temperature,
            0.0
        );
    }

    #[test]
    fn stream_options_ask_for_usage() {
        let s = check(json!({"stream": true, "stream_options": {"include_usage": true}})).unwrap();
        assert!(s.stream && s.include_usage);
    }
}
