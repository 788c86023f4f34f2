//! The router end to end, in process: a tiny synthetic qwen2 model on the
//! CPU behind a real socket, spoken to in raw HTTP/1.1. Each test states
//! one behaviour a client sees. (The binary, signals and the `openai`
//! package are tested from tests/serve_*.rs.)

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{AppState, ModelInfo, ServeEngine, ServedModel};
use crate::exec::cpu_model::CpuModel;
use crate::exec::session::{StepBackend, StepLimits};
use crate::exec::step::StepInputs;
use crate::exec::ExecError;
use crate::load::{load_cpu, LoadOptions};
use crate::sched::{Engine, Loaded, SchedulerConfig};
use crate::synth::{TinyArch, TinySpec};
use crate::tokenizer::chat::ChatTemplate;

const KEY: &str = "sk-unit";

/// The CPU model, slowed down so that a stream outlives its first event.
struct Slow(CpuModel);

impl StepBackend for Slow {
    fn run_step(&mut self, step: &StepInputs) -> Result<&[f32], ExecError> {
        std::thread::sleep(Duration::from_millis(3));
        self.0.run_step(step)
    }
    fn limits(&self) -> StepLimits {
        self.0.limits()
    }
    fn vocab(&self) -> usize {
        self.0.vocab()
    }
}

struct TestServer {
    addr: SocketAddr,
    engine: Arc<ServeEngine>,
    _dir: tempfile::TempDir,
    // Dropped last: it ends the server's tasks, then the engine.
    _rt: tokio::runtime::Runtime,
}

/// A server whose model loads once `go` receives (at once when `None`).
fn start(key: Option<&str>, max_body: usize, go: Option<mpsc::Receiver<()>>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let spec = TinySpec::for_type(TinyArch::Qwen2, crate::quant::GgmlType::F32);
    std::fs::write(&path, spec.to_bytes(1).unwrap()).unwrap();
    let opts = LoadOptions {
        context: 512,
        max_rows: 4,
        max_seqs: 4,
        ..Default::default()
    };
    let load_path = path.clone();
    let cfg = SchedulerConfig {
        max_running: 4,
        ..Default::default()
    };
    let engine = Arc::new(Engine::spawn(cfg, move || {
        if let Some(go) = go {
            let _ = go.recv();
        }
        let model = load_cpu(&load_path, &opts)?;
        let info = ModelInfo {
            template: ChatTemplate::from_gguf(&model.file).map_err(|e| e.to_string()),
            device: "cpu".into(),
        };
        Ok::<_, crate::load::LoadError>(Loaded {
            backend: Slow(model.session.into_backend()),
            tokenizer: Arc::new(model.tokenizer),
            info,
        })
    }));
    let state = Arc::new(AppState::new(
        engine.clone(),
        ServedModel::new(&path, Some("tiny-test"), 0),
        key.map(str::to_string),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = super::router(state, max_body);
    rt.spawn(async move { axum::serve(listener, app).await });
    TestServer {
        addr,
        engine,
        _dir: dir,
        _rt: rt,
    }
}

fn ready_server(key: Option<&str>) -> TestServer {
    let s = start(key, 1 << 20, None);
    s.engine.wait_ready().unwrap();
    s
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `data:` payloads of an event stream.
    fn events(&self) -> Vec<String> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }

    fn error_param(&self) -> Option<String> {
        self.json()["error"]["param"].as_str().map(str::to_string)
    }
}

fn send(addr: SocketAddr, head: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer (413) before it has read a large body.
    let _ = s.write_all(body);
    s
}

fn call(srv: &TestServer, method: &str, path: &str, key: Option<&str>, body: &str) -> Reply {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n");
    let mut r = BufReader::new(send(srv.addr, &head, body.as_bytes()));
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let Some((k, v)) = line.trim_end().split_once(": ") else {
            break;
        };
        headers.insert(k.to_ascii_lowercase(), v.to_string());
    }
    let mut raw = Vec::new();
    let _ = r.read_to_end(&mut raw);
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        dechunk(&raw)
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> String {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 4 + size..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn post(srv: &TestServer, path: &str, body: serde_json::Value) -> Reply {
    call(srv, "POST", path, None, &body.to_string())
}

fn chat_body(extra: serde_json::Value) -> serde_json::Value {
    let mut b =
        serde_json::json!({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn metric(srv: &TestServer, name: &str) -> f64 {
    let text = srv.engine.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn health_is_503_while_loading_and_200_when_ready() {
    let (go, wait) = mpsc::channel();
    let srv = start(None, 1 << 20, Some(wait));
    let r = call(&srv, "GET", "/health", None, "");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "loading");
    assert!(r.headers.contains_key("retry-after"));
    let r = post(
        &srv,
        "/v1/chat/completions",
        chat_body(serde_json::json!({})),
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (503, Some("model_loading"))
    );
    // The model's name is known before it loads.
    assert_eq!(
        call(&srv, "GET", "/v1/models", None, "").json()["data"][0]["id"],
        "tiny-test"
    );
    go.send(()).unwrap();
    srv.engine.wait_ready().unwrap();
    let r = call(&srv, "GET", "/health", None, "");
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"status": "ok"}))
    );
}

#[test]
fn a_chat_completion_is_whole_with_usage() {
    let srv = ready_server(None);
    let r = post(
        &srv,
        "/v1/chat/completions",
        chat_body(serde_json::json!({"temperature": 0, "ignore_eos": true})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "tiny-test");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    let u = &v["usage"];
    assert_eq!(u["total_tokens"], u["prompt_tokens"].as_u64().unwrap() + 4);
}

#[test]
fn a_chat_stream_is_role_deltas_finish_usage_done() {
    let srv = ready_server(None);
    let body = chat_body(
        serde_json::json!({"stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true}),
    );
    let r = post(&srv, "/v1/chat/completions", body);
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/event-stream"));
    let ev = r.events();
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let fin = &chunks[chunks.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], "length");
    assert_eq!(fin["choices"][0]["delta"], serde_json::json!({}));
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
}

#[test]
fn completions_take_token_ids_and_report_legacy_logprobs() {
    let srv = ready_server(None);
    let r = post(
        &srv,
        "/v1/completions",
        serde_json::json!({"prompt": [1, 2, 3], "max_tokens": 3, "logprobs": 2, "ignore_eos": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(
        v["choices"][0]["logprobs"]["token_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = post(
        &srv,
        "/v1/completions",
        serde_json::json!({"prompt": [1, 100000]}),
    );
    assert_eq!(
        (r.status, r.error_param().as_deref()),
        (400, Some("prompt"))
    );
}

#[test]
fn errors_are_openai_shaped_and_leave_the_server_serving() {
    let srv = ready_server(None);
    let cases: Vec<(u16, Reply)> = vec![
        (
            400,
            call(
                &srv,
                "POST",
                "/v1/chat/completions",
                None,
                "{\"messages\": [",
            ),
        ),
        (
            400,
            post(
                &srv,
                "/v1/chat/completions",
                chat_body(serde_json::json!({"top_p": 0})),
            ),
        ),
        (
            400,
            post(
                &srv,
                "/v1/chat/completions",
                chat_body(serde_json::json!({"n": 3})),
            ),
        ),
        (
            404,
            post(
                &srv,
                "/v1/chat/completions",
                chat_body(serde_json::json!({"model": "gpt-4"})),
            ),
        ),
        (404, call(&srv, "GET", "/v1/engines", None, "")),
        (405, call(&srv, "GET", "/v1/completions", None, "")),
        (
            400,
            post(
                &srv,
                "/v1/completions",
                serde_json::json!({"prompt": "a ".repeat(600)}),
            ),
        ),
        (
            400,
            post(&srv, "/detokenize", serde_json::json!({"tokens": [-1]})),
        ),
    ];
    for (want, r) in &cases {
        assert_eq!(r.status, *want, "{}", r.body);
        assert_eq!(r.headers["content-type"], "application/json", "{}", r.body);
        let e = &r.json()["error"];
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            r.body
        );
        assert!(e.get("type").is_some() && e.get("param").is_some() && e.get("code").is_some());
    }
    let long = &cases[6].1.json()["error"];
    assert_eq!(long["code"], "context_length_exceeded");
    assert!(long["message"].as_str().unwrap().contains("512"), "{long}");
    assert!(cases[5].1.headers.contains_key("allow"));
    assert_eq!(
        post(
            &srv,
            "/v1/chat/completions",
            chat_body(serde_json::json!({}))
        )
        .status,
        200
    );
}

#[test]
fn a_body_over_the_limit_is_413() {
    let srv = start(None, 1024, None);
    srv.engine.wait_ready().unwrap();
    let r = post(
        &srv,
        "/v1/completions",
        serde_json::json!({"prompt": "x".repeat(4096)}),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
}

#[test]
fn the_api_key_guards_everything_but_health() {
    let srv = ready_server(Some(KEY));
    assert_eq!(call(&srv, "GET", "/health", None, "").status, 200);
    for key in [None, Some("wrong")] {
        let r = call(&srv, "GET", "/v1/models", key, "");
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (401, Some("invalid_api_key"))
        );
    }
    assert_eq!(call(&srv, "GET", "/v1/models", Some(KEY), "").status, 200);
    assert_eq!(call(&srv, "GET", "/metrics", None, "").status, 401);
}

#[test]
fn tokenize_and_detokenize_round_trip() {
    let srv = ready_server(None);
    let ids = post(
        &srv,
        "/tokenize",
        serde_json::json!({"content": "hello world"}),
    )
    .json()["tokens"]
        .clone();
    assert!(ids.as_array().is_some_and(|a| !a.is_empty()), "{ids}");
    let text =
        post(&srv, "/detokenize", serde_json::json!({ "tokens": ids })).json()["content"].clone();
    assert_eq!(text, "hello world");
    let pieces = post(
        &srv,
        "/tokenize",
        serde_json::json!({"content": "hi", "with_pieces": true}),
    )
    .json();
    assert!(
        pieces["tokens"][0]["id"].is_u64() && pieces["tokens"][0]["piece"].is_string(),
        "{pieces}"
    );
}

#[test]
fn a_client_that_leaves_mid_stream_cancels_its_sequence() {
    let srv = ready_server(None);
    let body = serde_json::json!({"prompt": "once", "max_tokens": 400, "ignore_eos": true, "stream": true}).to_string();
    let head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    let mut r = BufReader::new(send(srv.addr, head, body.as_bytes()));
    let mut line = String::new();
    while !line.contains("data: ") {
        line.clear();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
    }
    drop(r);
    let t = Instant::now();
    while metric(&srv, "rfc_requests_finished_total{reason=\"cancelled\"}") < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(5), "not cancelled");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(metric(&srv, "rfc_kv_pages_used"), 0.0);
    assert!(metric(&srv, "rfc_generation_tokens_total") < 400.0);
}

#[test]
fn metrics_are_prometheus_text() {
    let srv = ready_server(None);
    let r = call(&srv, "GET", "/metrics", None, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/plain; version=0.0.4");
    assert!(
        r.body.contains("# TYPE rfc_kv_pages_total gauge"),
        "{}",
        r.body
    );
}
