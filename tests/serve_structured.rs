//! Structured output end to end on the real model: `rfc serve` runs it,
//! and tests/serve/test_structured.py checks JSON schemas (20 of 20
//! sampled outputs valid), JSON mode, tool calls (a round trip through
//! the model's chat template, named functions, streamed deltas) and
//! llama.cpp's example GBNF grammars with the official `openai` client.
//! Needs the venv of scripts/serve-venv.sh and network access to PyPI
//! the first time (the example grammars come from llama-cpp-python's
//! source package, cached in target/gbnf-examples/).

#[path = "serve/harness.rs"]
mod harness;

mod common;

use std::time::{Duration, Instant};

use common::real_model_or_skip;
use harness::{run_python, server_env, Server};

#[test]
fn structured_output_with_the_openai_client_real_model() {
    let model = real_model_or_skip!();
    harness::python();
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let s = Server::start(
        "structured",
        &model,
        &["--parallel", "4", "--ctx", "2048", "--threads", "2"],
        dir.path(),
        Duration::from_secs(120),
    );
    let env = server_env(&s, None, None, 2048, 151_936, true);
    run_python(
        &["-m", "unittest", "-v", "test_structured"],
        &env,
        &[&s],
        Duration::from_secs(900),
    );
    eprintln!(
        "structured-output test on the real model: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
