//! `rfc serve` end to end: the binary serves a tiny synthetic model (and the
//! real one) on a free loopback port, and the Python suite in tests/serve/
//! talks to it with the official `openai` package and raw HTTP. Needs the
//! venv of scripts/serve-venv.sh (scripts/test.sh makes it); a missing venv
//! fails the tests.

#[path = "serve/harness.rs"]
mod harness;

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::real_model_or_skip;
use harness::{run_python, server_env, synth_tiny, Server};

const KEY: &str = "sk-rfc-test-0123456789";
const ALIAS: &str = "tiny-qwen2";
/// The tiny model's vocabulary (TinySpec's default).
const TINY_VOCAB: usize = 320;
const START: Duration = Duration::from_secs(60);

fn tiny(dir: &Path) -> std::path::PathBuf {
    synth_tiny(dir, &[])
}

/// A wider tiny model (~650 tokens/s on one thread of this 2-core machine,
/// ten times slower than `tiny`): requests that last long enough to fill a
/// queue or outlive a signal.
fn slow(dir: &Path) -> std::path::PathBuf {
    synth_tiny(
        dir,
        &[
            "--d",
            "256",
            "--ffn",
            "1024",
            "--layers",
            "4",
            "--heads",
            "8",
            "--kv-heads",
            "2",
        ],
    )
}

/// The tests of this file run one at a time: each starts servers that take
/// both cores, and the queue and shutdown tests time their requests.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The whole `openai` package suite and every error class, on a server with
/// an API key and the prefix cache on.
#[test]
fn openai_client_and_error_classes() {
    let _serial = serial();
    harness::python();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let ctx = 256;
    let s = Server::start(
        "keyed",
        &model,
        &[
            "--api-key",
            KEY,
            "--alias",
            ALIAS,
            "--ctx",
            "256",
            "--parallel",
            "4",
            "--threads",
            "2",
        ],
        dir.path(),
        START,
    );
    let env = server_env(&s, Some(KEY), Some(ALIAS), ctx, TINY_VOCAB, true);
    let out = run_python(
        &["-m", "unittest", "-v", "test_openai", "test_errors.Errors"],
        &env,
        &[&s],
        Duration::from_secs(300),
    );
    assert!(out.contains("\nOK"), "the suite did not end with OK");
    // Nothing left behind.
    assert_eq!(s.metric("rfc_kv_pages_used"), 0.0, "{}", s.stderr_tail(20));
    assert_eq!(s.metric("rfc_requests_running"), 0.0);
    assert_eq!(s.metric("rfc_requests_waiting"), 0.0);
}

/// Without --api-key and with --no-prefix-cache: the same suite, and
/// cached_tokens is 0 on a repeated prompt.
#[test]
fn no_key_and_no_prefix_cache() {
    let _serial = serial();
    harness::python();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let s = Server::start(
        "nocache",
        &model,
        &["--no-prefix-cache", "--ctx", "256", "--threads", "2"],
        dir.path(),
        START,
    );
    let env = server_env(&s, None, None, 256, TINY_VOCAB, false);
    let out = run_python(
        &["-m", "unittest", "-v", "test_openai"],
        &env,
        &[&s],
        Duration::from_secs(300),
    );
    assert!(
        out.contains("test_cached_tokens (") && out.contains("\nOK"),
        "test_cached_tokens did not run"
    );
    assert_eq!(s.metric("rfc_prefix_cache_hit_tokens_total"), 0.0);
    assert_eq!(s.metric("rfc_kv_pages_cached"), 0.0);
}

/// --parallel 1 --max-queue 1: a burst of 8 slow requests gets 429/503
/// with Retry-After for all but the running and the waiting one.
#[test]
fn queue_full_is_refused_with_retry_after() {
    let _serial = serial();
    harness::python();
    let dir = tempfile::tempdir().unwrap();
    let model = slow(dir.path());
    let s = Server::start(
        "queue1",
        &model,
        &["--parallel", "1", "--max-queue", "1", "--threads", "1"],
        dir.path(),
        START,
    );
    let env = server_env(&s, None, None, 512, TINY_VOCAB, true);
    run_python(
        &["-m", "unittest", "-v", "test_errors.QueueFull"],
        &env,
        &[&s],
        Duration::from_secs(120),
    );
    assert!(s.metric("rfc_requests_rejected_total") >= 6.0);
}

/// Greedy outputs of 16 concurrent requests equal the same requests one at
/// a time: without the prefix cache, with it (cold and warm), and with
/// preemption forced by a KV pool just above one sequence's need.
#[test]
fn batched_equals_alone_tiny() {
    let _serial = serial();
    harness::python();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let common_args = ["--parallel", "16", "--threads", "2"];
    let start = |name: &str, extra: &[&str]| {
        let args: Vec<&str> = common_args
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect();
        Server::start(name, &model, &args, dir.path(), START)
    };
    let nocache = start("nocache", &["--no-prefix-cache"]);
    let cache = start("cache", &[]);
    // Just above the longest request's need (prompt and output, in pages of
    // 16 tokens): test_batching checks need <= pages < 2 x need.
    let preempt = start("preempt", &["--kv-pages", "16"]);
    let servers = [&nocache, &cache, &preempt];
    let list = servers
        .iter()
        .map(|s| format!("{}={}", s.name, s.url()))
        .collect::<Vec<_>>()
        .join(",");
    let mut env = server_env(&cache, None, None, 512, TINY_VOCAB, true);
    env.push(("RFC_SERVE_BATCH_SERVERS", list));
    env.push(("RFC_SERVE_BATCH_MODEL", "tiny".into()));
    run_python(
        &["-m", "unittest", "-v", "test_batching"],
        &env,
        &servers,
        Duration::from_secs(300),
    );
    assert!(preempt.metric("rfc_preemptions_total") > 0.0);
    assert!(cache.metric("rfc_prefix_cache_hit_tokens_total") > 0.0);
    for s in servers {
        assert_eq!(s.metric("rfc_kv_pages_used"), 0.0, "{}", s.name);
    }
}

/// The same on a tiny model whose matrices are Q5_0 (as the real model's
/// 896-wide ones are): batched rows must equal rows computed alone here too.
#[test]
fn batched_equals_alone_tiny_q5_0() {
    let _serial = serial();
    harness::python();
    let dir = tempfile::tempdir().unwrap();
    let model = synth_tiny(
        dir.path(),
        &["--type", "Q5_0", "--d", "256", "--ffn", "512"],
    );
    let args = ["--parallel", "16", "--threads", "2"];
    let nocache = Server::start(
        "nocache",
        &model,
        &[&args[..], &["--no-prefix-cache"]].concat(),
        dir.path(),
        START,
    );
    let preempt = Server::start(
        "preempt",
        &model,
        &[&args[..], &["--kv-pages", "16"]].concat(),
        dir.path(),
        START,
    );
    let list = format!("nocache={},preempt={}", nocache.url(), preempt.url());
    let mut env = server_env(&nocache, None, None, 512, TINY_VOCAB, false);
    env.push(("RFC_SERVE_BATCH_SERVERS", list));
    env.push(("RFC_SERVE_BATCH_MODEL", "tiny".into()));
    run_python(
        &["-m", "unittest", "-v", "test_batching"],
        &env,
        &[&nocache, &preempt],
        Duration::from_secs(300),
    );
}

/// The same on the real model (16 requests of at most 16 tokens).
#[test]
fn batched_equals_alone_real_model() {
    let _serial = serial();
    let model = real_model_or_skip!();
    harness::python();
    let dir = tempfile::tempdir().unwrap();
    let common_args = ["--parallel", "16", "--ctx", "512", "--threads", "2"];
    let start = |name: &str, extra: &[&str]| {
        let args: Vec<&str> = common_args
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect();
        Server::start(name, &model, &args, dir.path(), Duration::from_secs(120))
    };
    let t0 = Instant::now();
    let nocache = start("nocache", &["--no-prefix-cache"]);
    let cache = start("cache", &[]);
    // The longest request (prompt and output) needs 4 pages of 16 tokens.
    let preempt = start("preempt", &["--kv-pages", "5"]);
    let servers = [&nocache, &cache, &preempt];
    let list = servers
        .iter()
        .map(|s| format!("{}={}", s.name, s.url()))
        .collect::<Vec<_>>()
        .join(",");
    let mut env = server_env(&cache, None, None, 512, 151_936, true);
    env.push(("RFC_SERVE_BATCH_SERVERS", list));
    env.push(("RFC_SERVE_BATCH_MODEL", "real".into()));
    run_python(
        &["-m", "unittest", "-v", "test_batching"],
        &env,
        &servers,
        Duration::from_secs(400),
    );
    assert!(preempt.metric("rfc_preemptions_total") > 0.0);
    eprintln!(
        "real-model batching test: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Starts a 480-token stream on `s`, waits for its first event, sends
/// `sig`; returns the time of the signal and a thread that reads the rest
/// of the stream to its close.
fn stream_then_signal(s: &Server, sig: &str) -> (Instant, std::thread::JoinHandle<String>) {
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body =
        r#"{"prompt": "Once upon a time", "max_tokens": 480, "ignore_eos": true, "stream": true}"#;
    write!(
        conn,
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the stream ended before its first event");
        if line.starts_with("data:") {
            break;
        }
    }
    let t = Instant::now();
    s.signal(sig);
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let mut l = String::new();
        while reader.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
            rest.push_str(&l);
            l.clear();
        }
        rest
    });
    (t, rest)
}

/// SIGTERM while a stream runs, with time to finish it (--shutdown-timeout
/// 10; the stream needs about a second): the stream ends normally and
/// the process exits 0 soon after.
#[test]
fn sigterm_lets_a_running_stream_finish_and_exits_zero() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = slow(dir.path());
    let mut s = Server::start(
        "sigterm",
        &model,
        &["--shutdown-timeout", "10", "--threads", "1"],
        dir.path(),
        START,
    );
    let (t, rest) = stream_then_signal(&s, "TERM");
    let status = s.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "still running 20 s after SIGTERM (--shutdown-timeout 10)\n{}",
            s.stderr_tail(30)
        )
    });
    let took = t.elapsed();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM\n{}",
        s.stderr_tail(30)
    );
    let rest = rest.join().unwrap();
    assert!(
        rest.contains(r#""finish_reason":"length""#),
        "the stream did not finish: {}",
        &rest[rest.len().saturating_sub(400)..]
    );
    assert!(rest.contains("data: [DONE]"), "no [DONE]");
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    eprintln!(
        "exited 0 {:.2} s after SIGTERM; the stream finished",
        took.as_secs_f64()
    );
}

/// SIGTERM while a stream runs, with --shutdown-timeout 0: the stream is
/// cut (its connection closes) and the process exits 0 at once.
#[test]
fn sigterm_with_zero_timeout_cuts_the_stream_and_exits_zero() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = slow(dir.path());
    let mut s = Server::start(
        "sigterm0",
        &model,
        &["--shutdown-timeout", "0", "--threads", "1"],
        dir.path(),
        START,
    );
    let (t, rest) = stream_then_signal(&s, "TERM");
    let status = s.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "still running 10 s after SIGTERM (--shutdown-timeout 0)\n{}",
            s.stderr_tail(30)
        )
    });
    let took = t.elapsed();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM\n{}",
        s.stderr_tail(30)
    );
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    let rest = rest.join().unwrap();
    assert!(
        !rest.contains(r#""finish_reason":"length""#),
        "480 tokens streamed in full before the exit: {took:?}"
    );
    eprintln!(
        "exited 0 {:.2} s after SIGTERM; {} bytes streamed after it",
        took.as_secs_f64(),
        rest.len()
    );
}

/// SIGINT on an idle server: exit 0 at once.
#[test]
fn sigint_idle_exits_zero() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let mut s = Server::start("sigint", &model, &[], dir.path(), START);
    let t = Instant::now();
    s.signal("INT");
    let status = s
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGINT\n{}", s.stderr_tail(30)));
    assert!(
        status.success(),
        "exit status {status}\n{}",
        s.stderr_tail(30)
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        t.elapsed()
    );
}
