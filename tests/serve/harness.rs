//! What the `rfc serve` integration tests share (tests/serve_openai.rs and
//! tests/serve_load.rs include this file): tiny models made with `rfc synth`,
//! servers on free loopback ports that are always killed (a Drop guard),
//! and the Python side (tests/serve/*.py) run with the venv that
//! scripts/serve-venv.sh makes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const RFC: &str = env!("CARGO_BIN_EXE_rfc");

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python: `$RFC_SERVE_PYTHON`, or `.venv-serve/bin/python`.
/// Missing is a failure (never a skip): the suite would prove nothing.
pub fn python() -> PathBuf {
    let p = std::env::var_os("RFC_SERVE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv-serve/bin/python"));
    assert!(
        p.is_file(),
        "the Python venv of the serve tests is missing ({}): run scripts/serve-venv.sh \
         (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The tiny qwen2 model of these tests, made in `dir`.
pub fn synth_tiny(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("tiny-qwen2.gguf");
    let o = Command::new(RFC)
        .args(["synth", "tiny", "--arch", "qwen2", "--bias"])
        .args(extra)
        .arg(&out)
        .output()
        .expect("rfc synth runs");
    assert!(
        o.status.success(),
        "rfc synth tiny failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A free port on 127.0.0.1 (bound, read, dropped).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A running `rfc serve`; killed (and reaped) when dropped.
pub struct Server {
    pub name: String,
    child: Option<Child>,
    pub port: u16,
    pub stderr_path: PathBuf,
    pub ready_line: String,
    /// The `--api-key` it was started with (sent by [`Server::metrics`]).
    pub api_key: Option<String>,
    /// Every stdout line after the ready line (read by a thread).
    stdout_rx: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `rfc serve MODEL --host 127.0.0.1 --port P ARGS…` and waits
    /// (at most `timeout`) for its ready line and /health 200.
    pub fn start(
        name: &str,
        model: &Path,
        args: &[&str],
        log_dir: &Path,
        timeout: Duration,
    ) -> Server {
        let mut last_err = String::new();
        // A port taken between the probe and the bind: try another.
        for attempt in 0..3 {
            let port = free_port();
            let stderr_path = log_dir.join(format!("{name}-{attempt}.stderr"));
            let stderr = std::fs::File::create(&stderr_path).expect("create the stderr log");
            let mut child = Command::new(RFC)
                .arg("serve")
                .arg(model)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(args)
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("rfc serve starts");
            let (tx, rx) = mpsc::channel();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut server = Server {
                name: name.to_string(),
                child: Some(child),
                port,
                stderr_path,
                ready_line: String::new(),
                api_key: args
                    .iter()
                    .position(|a| *a == "--api-key")
                    .and_then(|i| args.get(i + 1))
                    .map(|k| k.to_string()),
                stdout_rx: rx,
            };
            match server.wait_ready(timeout) {
                Ok(()) => return server,
                Err(e) => {
                    last_err = format!("{e}\n--- stderr of {name} ---\n{}", server.stderr_tail(40));
                    let taken = last_err.contains("in use");
                    drop(server);
                    if !taken {
                        break;
                    }
                }
            }
        }
        panic!("rfc serve ({name}) did not become ready: {last_err}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let end = Instant::now() + timeout;
        let want = format!("rfc serve: listening on http://127.0.0.1:{}", self.port);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no ready line within {timeout:?}"));
            }
            match self
                .stdout_rx
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) if line.starts_with(&want) => {
                    self.ready_line = line;
                    break;
                }
                Ok(line) => eprintln!("[{} stdout] {line}", self.name),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().unwrap().wait();
                    return Err(format!("exited before its ready line: {status:?}"));
                }
            }
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                return Err(format!("exited before its ready line: {status}"));
            }
        }
        loop {
            if let Ok((200, _)) = http_get(self.port, "/health", None) {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!("/health not 200 within {timeout:?} of the start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The last `n` lines of the server's stderr.
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends `sig` (e.g. "TERM") to the server.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }

    /// Waits at most `timeout` for the server to exit; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's /metrics as (name with labels, value) pairs.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let (status, body) =
            http_get(self.port, "/metrics", self.api_key.as_deref()).expect("GET /metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    pub fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .into_iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("/metrics has no {name}"))
            .1
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A plain GET on 127.0.0.1:`port` (with the API key, if given):
/// (status, body).
pub fn http_get(port: u16, path: &str, key: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs `python tests/serve/ARGS…` with `envs` (cwd tests/serve), bounded
/// by `timeout`; on failure (or timeout) panics with its output and the
/// stderr tail of every server. Returns its combined output.
pub fn run_python(
    args: &[&str],
    envs: &[(&str, String)],
    servers: &[&Server],
    timeout: Duration,
) -> String {
    let dir = repo_root().join("tests/serve");
    let out_path = std::env::temp_dir().join(format!(
        "rfc-serve-py-{}-{}.log",
        std::process::id(),
        free_port()
    ));
    let out = std::fs::File::create(&out_path).expect("python log");
    let mut cmd = Command::new(python());
    cmd.args(args)
        .current_dir(&dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("python starts");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait python") {
            break Some(s);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    eprintln!(
        "--- python {} ({:.1} s) ---\n{output}",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    if status.map(|s| s.success()) != Some(true) {
        let mut msg = match status {
            None => format!("python {} timed out after {timeout:?}\n", args.join(" ")),
            Some(s) => format!("python {} failed ({s})\n", args.join(" ")),
        };
        msg.push_str(&tail(&output, 120));
        for s in servers {
            msg.push_str(&format!(
                "\n--- stderr of server {} (last 40 lines) ---\n{}",
                s.name,
                s.stderr_tail(40)
            ));
        }
        panic!("{msg}");
    }
    output
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The environment the Python suite reads (tests/serve/common.py).
pub fn server_env(
    s: &Server,
    key: Option<&str>,
    model: Option<&str>,
    ctx: usize,
    vocab: usize,
    prefix_cache: bool,
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("RFC_SERVE_URL", s.url()),
        ("RFC_SERVE_CTX", ctx.to_string()),
        ("RFC_SERVE_VOCAB", vocab.to_string()),
        (
            "RFC_SERVE_PREFIX_CACHE",
            if prefix_cache { "1" } else { "0" }.to_string(),
        ),
        ("RFC_SERVE_PID", s.pid().to_string()),
    ];
    if let Some(k) = key {
        v.push(("RFC_SERVE_API_KEY", k.to_string()));
    }
    if let Some(m) = model {
        v.push(("RFC_SERVE_MODEL", m.to_string()));
    }
    v
}
