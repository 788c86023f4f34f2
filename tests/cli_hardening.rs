//! The command line against a new user's mistakes and an attacker's inputs,
//! through the built binary: every refusal is an error message and exit
//! status 1 (clap's 2 for flags), never a signal, a hang or a file written
//! where it must not be.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use rocmforge::gguf::GgufFile;

fn rfc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rfc"))
}

fn run(args: &[&str]) -> Output {
    rfc().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits for `child` at most `limit`, killing it after (a hang fails).
fn wait_at_most(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `args`, failing the test if it takes longer than `limit`.
fn run_at_most(args: &[&str], limit: Duration) -> Output {
    let mut child = rfc()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_at_most(&mut child, limit, &args.join(" "));
    child.wait_with_output().unwrap()
}

/// Exit status 1 with an `error:` line containing `needle`, not a signal.
fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "status {:?}: {err}", o.status);
    assert!(err.contains("error:"), "no error line: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    let o = run(&["synth", "tiny", "--arch", "qwen2", path.to_str().unwrap()]);
    assert!(o.status.success(), "synth: {}", stderr(&o));
    path
}

fn tiny_artifact(dir: &Path) -> PathBuf {
    let model = tiny_model(dir);
    let out = dir.join("tiny.rfc");
    let o = run(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--target",
        "cpu",
    ]);
    assert!(o.status.success(), "compile: {}", stderr(&o));
    out
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

#[test]
fn unknown_gpu_targets_are_refused_before_any_compiler_sees_them() {
    // Each of these aborted the process inside ROCm 5's hiprtc.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("x.rfc");
    for target in ["gfx9999", "gfx1234", "gfx0000", "sm_1"] {
        for how in [
            vec!["-o", out.to_str().unwrap()],
            vec!["--emit-kernels", dir.path().to_str().unwrap()],
        ] {
            let mut args = vec!["compile", model.to_str().unwrap(), "--target", target];
            args.extend(how);
            let o = run_at_most(&args, Duration::from_secs(60));
            assert_refused(&o, &format!("architecture \"{target}\""));
        }
    }
    assert!(!out.exists());
}

#[test]
fn more_threads_than_cpus_are_capped_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let args = [
        "run",
        model.to_str().unwrap(),
        "-p",
        "hi",
        "-n",
        "2",
        "--device",
        "cpu",
        "-t",
        "100000",
    ];
    // Uncapped, this made thousands of threads and never finished.
    let o = run_at_most(&args, Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("-t 100000: this machine has"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn zero_or_negative_counts_are_refused_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let m = model.to_str().unwrap();
    for (flag, value) in [("-t", "0"), ("-n", "-5"), ("-n", "0")] {
        let o = run(&["run", m, "-p", "hi", flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("out of range"), "{flag} {value}: {err}");
        assert!(!err.contains("to pass"), "clap's misleading tip: {err}");
    }
}

#[test]
fn sampling_values_outside_their_range_are_refused_naming_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let m = model.to_str().unwrap();
    for (flag, value, range) in [
        ("--temp", "nan", "between 0 and 2"),
        ("--temp", "inf", "between 0 and 2"),
        ("--temp", "-1", "between 0 and 2"),
        ("--top-p", "2", "greater than 0 and at most 1"),
        ("--top-p", "nan", "greater than 0 and at most 1"),
        ("--top-p", "-1", "greater than 0 and at most 1"),
        ("--min-p", "2", "between 0 and 1"),
        ("--min-p", "-1", "between 0 and 1"),
        ("--repeat-penalty", "0", "greater than 0"),
        ("--repeat-penalty", "-1", "greater than 0"),
        ("--presence-penalty", "nan", "between -2 and 2"),
        ("--frequency-penalty", "3", "between -2 and 2"),
    ] {
        let o = run(&["run", m, "-p", "hi", "-n", "1", flag, value]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(range), "{flag} {value}: {err}");
    }
    // In range, including negative penalties, runs.
    let o = run(&[
        "run",
        m,
        "-p",
        "hi",
        "-n",
        "1",
        "--device",
        "cpu",
        "--temp",
        "0",
        "--presence-penalty",
        "-1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn outputs_that_are_fifos_or_directories_are_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let fifo = dir.path().join("fifo.rfc");
    mkfifo(&fifo);
    let sub = dir.path().join("sub.rfc");
    std::fs::create_dir(&sub).unwrap();
    for (out, what) in [(&fifo, "FIFO"), (&sub, "directory")] {
        let o = run_at_most(
            &[
                "compile",
                model.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--target",
                "cpu",
            ],
            Duration::from_secs(60),
        );
        assert_refused(&o, what);
        // synth writes its output directly: opening a FIFO would block.
        let o = run_at_most(
            &["synth", "tiny", "--arch", "llama", out.to_str().unwrap()],
            Duration::from_secs(60),
        );
        assert_refused(&o, what);
    }
    assert!(is_fifo(&fifo), "the FIFO was replaced");
    assert!(sub.is_dir(), "the directory was replaced");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_fifo_as_the_model_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.gguf");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    for args in [
        vec!["inspect", f],
        vec!["run", f, "-p", "hi"],
        vec!["ir", f],
        vec!["compile", f, "-o", "/nonexistent/x.rfc", "--target", "cpu"],
    ] {
        let o = run_at_most(&args, Duration::from_secs(30));
        assert_refused(&o, "FIFO");
    }
}

#[test]
fn sigint_during_compile_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    // Big enough that the write takes tens of milliseconds.
    let model = dir.path().join("q.gguf");
    let o = run(&["synth", "qwen05b", "--layers", "4", model.to_str().unwrap()]);
    assert!(o.status.success(), "synth: {}", stderr(&o));
    let out = dir.path().join("q.rfc");
    let partial = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".partial-"))
    };
    let mut interrupted_while_writing = 0;
    for _ in 0..5 {
        let mut child = rfc()
            .args([
                "compile",
                model.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .args(["--target", "cpu"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !partial(dir.path()) && child.try_wait().unwrap().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(120), "no partial file");
            std::thread::sleep(Duration::from_millis(1));
        }
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let status = wait_at_most(&mut child, Duration::from_secs(30), "interrupted compile");
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!partial(dir.path()), "partial file left: {err}");
        if status.success() {
            // It finished before the signal: a whole artifact.
            assert!(GgufFile::open(&out).is_ok());
            std::fs::remove_file(&out).unwrap();
            continue;
        }
        assert!(sent.success());
        // An exit status, not death by the signal.
        assert_eq!(status.code(), Some(130), "{err}");
        assert!(err.contains("interrupted"), "{err}");
        assert!(!out.exists(), "an artifact was written: {err}");
        interrupted_while_writing += 1;
    }
    assert!(interrupted_while_writing > 0, "never caught the write");
}

#[test]
fn a_flipped_weight_byte_stops_plain_run_and_no_verify_says_it_skips() {
    let dir = tempfile::tempdir().unwrap();
    let art = tiny_artifact(dir.path());
    let file = GgufFile::open(&art).unwrap();
    let t = file.tensor_info("blk.0.ffn_up.weight").unwrap();
    let at = (file.data_offset() + t.offset + t.size / 2) as usize;
    drop(file);
    let mut bytes = std::fs::read(&art).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(&art, bytes).unwrap();
    let a = art.to_str().unwrap();
    let o = run(&["run", a, "-p", "hi", "-n", "1"]);
    assert_refused(&o, "blk.0.ffn_up.weight");
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
    let o = run(&["run", a, "-p", "hi", "-n", "1", "--no-verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("--no-verify"), "{}", stderr(&o));
}

#[test]
fn a_closed_stdout_stops_generation_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut child = rfc()
        .args(["run", model.to_str().unwrap(), "-p", "hi", "-n", "100000"])
        .args(["--device", "cpu", "--temp", "0", "--ctx", "512"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is closed here, as `| head -c 8` does.
    let status = wait_at_most(&mut child, Duration::from_secs(60), "run | head");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("error"), "{err}");
    // It stopped at the failed write: no generation report.
    assert!(!err.contains("generation:"), "{err}");
}

#[test]
fn a_gguf_bool_byte_other_than_0_or_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bool.gguf");
    let mut w = rocmforge::gguf::GgufWriter::new();
    w.add_metadata("flag", true).unwrap();
    let mut bytes = w.to_bytes().unwrap();
    // magic, version, tensor count, key count, key (u64 length + "flag"),
    // value type (u32): then the bool byte.
    let at = 4 + 4 + 8 + 8 + 8 + 4 + 4;
    assert_eq!(bytes[at], 1);
    for bad in [2u8, 255] {
        bytes[at] = bad;
        std::fs::write(&path, &bytes).unwrap();
        let o = run(&["inspect", path.to_str().unwrap()]);
        assert_refused(&o, &format!("bool byte {bad}"));
    }
}

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let o = rfc()
        .args(["run", model.to_str().unwrap(), "-p", "hi", "-n", "1"])
        .args(["--device", "cpu"])
        .env("RUST_LOG", "rocmforge=debug")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(err.contains("DEBUG"), "no log lines: {err}");
    assert!(!err.contains('\u{1b}'), "escape codes: {err:?}");
}

#[test]
fn limits_that_change_the_request_are_errors_or_notices() {
    let dir = tempfile::tempdir().unwrap();
    let art = tiny_artifact(dir.path());
    let model = dir.path().join("tiny.gguf");
    let m = model.to_str().unwrap();
    let text = dir.path().join("text.txt");
    std::fs::write(&text, "hello world ".repeat(300)).unwrap();
    let t = text.to_str().unwrap();

    // A benchmark of nothing is refused, not a table of zeros.
    assert_refused(
        &run(&["bench", m, "-p", "0", "-n", "0"]),
        "nothing to measure",
    );
    let o = run(&["bench", m, "-r", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("at least 1"), "{}", stderr(&o));
    let o = run(&["perplexity", m, "-f", t, "--chunks", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("at least 1"), "{}", stderr(&o));

    // An artifact of 1 logit row cannot score perplexity like the GGUF.
    let o = run(&["perplexity", art.to_str().unwrap(), "-f", t, "--ctx", "64"]);
    assert_refused(&o, "--max-logit-rows 64");

    // Generation that fills the context says so.
    let o = run(&[
        "run", m, "-p", "hi", "-n", "100000", "--ctx", "64", "--device", "cpu", "--temp", "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the context of 64 tokens is full"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn compile_says_what_it_needs_and_defaults_to_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let m = model.to_str().unwrap();
    // Without -o or --emit-kernels: both are named, not only one.
    let o = run(&["compile", m]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--output"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--emit-kernels"), "{}", stderr(&o));
    // Without --target: this machine's GPU, else the CPU, said on stderr.
    let out = dir.path().join("x.rfc");
    let o = run(&["compile", m, "-o", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(err.starts_with("target: "), "{err}");
    if err.starts_with("target: cpu") {
        assert!(o.status.success(), "{err}");
        let info = run(&["inspect", out.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(
            text.contains("rfc.target                              string           \"cpu\"")
                || text.contains("target           cpu"),
            "{text}"
        );
    }
    // The commands that take an artifact say so.
    for cmd in ["inspect", "ir", "bench", "perplexity", "run"] {
        let o = run(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(help.contains("artifact"), "rfc {cmd} --help: {help}");
    }
}
