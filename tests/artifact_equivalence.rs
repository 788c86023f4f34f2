//! A CPU artifact runs exactly like the GGUF it was compiled from: the same
//! greedy tokens and bitwise-identical logits, on tiny synthetic models of
//! every architecture (several weight types), through the library and
//! through the `rfc` binary.

mod common;

use common::rfc;
use std::path::{Path, PathBuf};

use rocmforge::artifact::{compile_artifact, CompileOptions, Silent};
use rocmforge::load::{load_cpu, LoadOptions, LoadedModel};
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A tiny model written to `dir`, and its CPU artifact beside it.
fn model_and_artifact(dir: &Path, spec: &TinySpec, seed: u64) -> (PathBuf, PathBuf) {
    let gguf = dir.join("tiny.gguf");
    std::fs::write(&gguf, spec.to_bytes(seed).unwrap()).unwrap();
    let rfc = dir.join("tiny.rfc");
    compile_artifact(&gguf, &rfc, &CompileOptions::default(), &Silent).unwrap();
    (gguf, rfc)
}

/// Logits of a prompt (all positions, one prefill) and of a greedy
/// continuation, one decode step at a time.
fn trace(model: &mut LoadedModel, prompt: &[u32], steps: usize) -> (Vec<Vec<f32>>, Vec<u32>) {
    let s = &mut model.session;
    s.reset();
    let mut logits = vec![s.eval_last(prompt).unwrap()];
    let mut tokens = Vec::new();
    for _ in 0..steps {
        let next = argmax(logits.last().unwrap());
        tokens.push(next);
        logits.push(s.eval_last(&[next]).unwrap());
    }
    (logits, tokens)
}

fn argmax(x: &[f32]) -> u32 {
    (0..x.len()).fold(0, |b, i| if x[i] > x[b] { i } else { b }) as u32
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|r| r.iter().map(|x| x.to_bits()).collect())
        .collect()
}

fn assert_same_run(spec: &TinySpec, seed: u64) {
    let dir = temp_dir();
    let (gguf, rfc) = model_and_artifact(dir.path(), spec, seed);
    let opts = LoadOptions::default();
    let mut direct = load_cpu(&gguf, &opts).unwrap();
    let mut compiled = load_cpu(&rfc, &opts).unwrap();
    let prompt: Vec<u32> = (0..37).map(|i| (i * 31 + 7) % 300).collect();
    let (want_logits, want_tokens) = trace(&mut direct, &prompt, 12);
    let (got_logits, got_tokens) = trace(&mut compiled, &prompt, 12);
    let what = format!("{} {}", spec.arch, spec.ty);
    assert_eq!(got_tokens, want_tokens, "{what}: greedy tokens differ");
    assert!(
        bits(&got_logits) == bits(&want_logits),
        "{what}: logits are not bitwise identical"
    );
}

#[test]
fn artifact_logits_are_bitwise_identical_to_the_gguf_for_every_architecture() {
    for arch in TinyArch::ALL {
        assert_same_run(&TinySpec::for_type(arch, GgmlType::F32), 1);
    }
}

#[test]
fn artifact_logits_are_bitwise_identical_for_quantized_weights() {
    for ty in [GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
        assert_same_run(&TinySpec::for_type(TinyArch::Qwen2, ty), 2);
    }
}

#[test]
fn artifact_with_biases_tied_output_and_sliding_window_matches_the_gguf() {
    let spec = TinySpec {
        bias: true,
        tied: true,
        window: Some(8),
        ..TinySpec::for_type(TinyArch::Mistral, GgmlType::Q8_0)
    };
    assert_same_run(&spec, 3);
}

#[test]
fn artifact_holds_only_the_weights_the_graph_reads_and_no_kernels() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::F32);
    let (gguf, rfc) = model_and_artifact(dir.path(), &spec, 4);
    let source = rocmforge::gguf::GgufFile::open(&gguf).unwrap();
    let artifact = rocmforge::artifact::Artifact::open(&rfc).unwrap();
    let weights: Vec<_> = artifact.weights().collect();
    assert_eq!(weights.len(), source.tensors().len());
    for t in weights {
        let original = source.tensor(&t.name).unwrap();
        assert_eq!(artifact.file().view(t).data, original.data, "{}", t.name);
        let start = artifact.file().data_offset() + t.offset;
        assert_eq!(
            start % rocmforge::artifact::ALIGNMENT as u64,
            0,
            "{}",
            t.name
        );
    }
    assert!(artifact.kernels().unwrap().is_empty());
}

#[test]
fn artifact_keeps_the_tokenizer_and_model_metadata() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Qwen2, GgmlType::F32);
    let (gguf, rfc) = model_and_artifact(dir.path(), &spec, 5);
    let a = load_cpu(&gguf, &LoadOptions::default()).unwrap();
    let b = load_cpu(&rfc, &LoadOptions::default()).unwrap();
    let text = "def f(x):\n    return x  # héllo";
    assert_eq!(
        a.tokenizer.encode(text, true, false).unwrap(),
        b.tokenizer.encode(text, true, false).unwrap()
    );
    assert_eq!(format!("{:?}", a.config), format!("{:?}", b.config));
    let md = b.file.metadata();
    assert_eq!(md.get_str("general.architecture").unwrap(), "qwen2");
    assert_eq!(md.get_u32("rfc.format_version").unwrap(), 1);
    assert_eq!(md.get_str("rfc.target").unwrap(), "cpu");
    let sha = rocmforge::artifact::checksum::sha256_hex(&std::fs::read(&gguf).unwrap());
    assert_eq!(md.get_str("rfc.source_sha256").unwrap(), sha);
}

#[test]
fn artifact_plan_is_the_plan_the_passes_make() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::Q8_0);
    let (gguf, rfc) = model_and_artifact(dir.path(), &spec, 6);
    let file = rocmforge::gguf::GgufFile::open(&gguf).unwrap();
    let (cfg, graph) = rocmforge::frontend::build_graph(&file).unwrap();
    let env = CompileOptions::default().env(cfg.context_length);
    let want = rocmforge::passes::compile(graph, env).unwrap();
    let (graph, plan) = rocmforge::artifact::Artifact::open(&rfc)
        .unwrap()
        .graph_and_plan()
        .unwrap();
    let text = rocmforge::ir::text::print;
    assert_eq!(text(&graph), text(&want.graph));
    let ids = rocmforge::ir::text::text_ids(&want.graph);
    let back = rocmforge::ir::text::text_ids(&graph);
    let renumber = |p: &rocmforge::passes::MemoryPlan,
                    ids: &std::collections::HashMap<_, usize>| {
        let mut slots: Vec<_> = p.slots.iter().map(|(id, s)| (ids[id], *s)).collect();
        slots.sort_by_key(|x| x.0);
        let sched: Vec<_> = p.schedule.iter().map(|id| ids[id]).collect();
        (
            p.env,
            p.arena_bytes,
            p.lower_bound,
            slots,
            sched,
            p.strategy,
        )
    };
    assert_eq!(renumber(&plan, &back), renumber(&want.plan, &ids));
}

#[test]
fn rfc_run_of_an_artifact_prints_the_same_text_as_of_the_gguf() {
    let dir = temp_dir();
    let gguf = dir.path().join("m.gguf");
    let art = dir.path().join("m.rfc");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = rfc(&["synth", "tiny", "--arch", "qwen2", &s(&gguf)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rfc(&["compile", &s(&gguf), "-o", &s(&art), "--target", "cpu"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |m: &Path| rfc(&["run", &s(m), "-p", "hello world", "-n", "16", "--temp", "0"]);
    let (a, b) = (run(&gguf), run(&art));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(!a.stdout.is_empty());
    assert_eq!(a.stdout, b.stdout);
    let verified = rfc(&[
        "run",
        &s(&art),
        "--verify",
        "-p",
        "hello world",
        "-n",
        "16",
        "--temp",
        "0",
    ]);
    assert_eq!(verified.stdout, a.stdout);
}

#[test]
fn rfc_inspect_and_ir_show_what_the_artifact_holds() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::F32);
    let (_, art) = model_and_artifact(dir.path(), &spec, 7);
    let a = art.to_str().unwrap();
    let out = rfc(&["inspect", a, "--verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("general.architecture"), "{text}");
    assert!(text.contains("target           cpu"), "{text}");
    assert!(text.contains("weights: verified"), "{text}");
    let out = rfc(&["inspect", a, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["artifact"]["target"], "cpu");
    assert_eq!(json["artifact"]["weights_verified"], false);
    let out = rfc(&["ir", a]);
    let ir = String::from_utf8_lossy(&out.stdout);
    let stored = rocmforge::artifact::Artifact::open(&art).unwrap();
    assert!(ir.starts_with("# artifact for cpu"), "{ir}");
    assert!(ir.ends_with(stored.ir_text().unwrap()));
}

#[test]
fn artifact_limits_come_from_the_compile_options() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::F32);
    let gguf = dir.path().join("m.gguf");
    std::fs::write(&gguf, spec.to_bytes(8).unwrap()).unwrap();
    let rfc = dir.path().join("m.rfc");
    let opts = CompileOptions {
        max_context: 64,
        max_batch_tokens: 8,
        ..CompileOptions::default()
    };
    compile_artifact(&gguf, &rfc, &opts, &Silent).unwrap();
    let mut m = load_cpu(&rfc, &LoadOptions::default()).unwrap();
    let l = rocmforge::exec::session::StepBackend::limits(m.session.backend());
    assert_eq!((l.max_tokens, l.context()), (8, 64));
    let long: Vec<u32> = (0..65).collect();
    assert!(matches!(
        m.session.eval_last(&long),
        Err(rocmforge::exec::ExecError::ContextOverflow { .. })
    ));
    // A prompt longer than a step is prefilled in chunks of the step limit.
    assert!(m.session.eval_last(&long[..30]).is_ok());
}

#[test]
fn an_artifact_for_a_server_keeps_its_sequences_rows_and_kv_pool() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q8_0);
    let gguf = dir.path().join("m.gguf");
    std::fs::write(&gguf, spec.to_bytes(8).unwrap()).unwrap();
    let rfc = dir.path().join("m.rfc");
    let opts = CompileOptions {
        max_context: 128,
        max_batch_tokens: 32,
        max_logit_rows: 4,
        max_seqs: 4,
        kv_pages: Some(10),
        ..CompileOptions::default()
    };
    compile_artifact(&gguf, &rfc, &opts, &Silent).unwrap();
    let m = load_cpu(&rfc, &LoadOptions::default()).unwrap();
    let l = rocmforge::exec::session::StepBackend::limits(m.session.backend());
    assert_eq!((l.max_seqs, l.max_rows, l.n_pages), (4, 4, 10));
    // A load that names its own pool wins over the artifact's default.
    let own = LoadOptions {
        kv_pages: Some(3),
        ..LoadOptions::default()
    };
    let m = load_cpu(&rfc, &own).unwrap();
    let l = rocmforge::exec::session::StepBackend::limits(m.session.backend());
    assert_eq!(l.n_pages, 3);
}

#[test]
fn rfc_bench_runs_an_artifact() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Qwen2, GgmlType::F32);
    let (_, art) = model_and_artifact(dir.path(), &spec, 9);
    let a = art.to_str().unwrap();
    let out = rfc(&[
        "bench", a, "-p", "8", "-n", "4", "-r", "1", "--device", "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tg4"));
}

#[test]
fn a_failed_compile_leaves_no_file_behind() {
    let dir = temp_dir();
    let gguf = dir.path().join("m.gguf");
    let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::F32);
    std::fs::write(&gguf, spec.to_bytes(10).unwrap()).unwrap();
    let out = dir.path().join("missing-dir").join("m.rfc");
    let e = compile_artifact(&gguf, &out, &CompileOptions::default(), &Silent).unwrap_err();
    assert!(e.to_string().contains("missing-dir/m.rfc"), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the model remains");
}

#[test]
fn a_gpu_target_stores_its_kernels_or_says_they_are_unavailable() {
    use rocmforge::artifact::{ArtifactError, ArtifactTarget};
    let dir = temp_dir();
    // K-quant widths: head_dim 64, which the GPU templates take.
    let spec = TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q4_K);
    let gguf = dir.path().join("m.gguf");
    std::fs::write(&gguf, spec.to_bytes(12).unwrap()).unwrap();
    let out = dir.path().join("m.rfc");
    let opts = CompileOptions {
        target: ArtifactTarget::parse("sm_90").unwrap(),
        ..CompileOptions::default()
    };
    match compile_artifact(&gguf, &out, &opts, &Silent) {
        Ok(r) => {
            assert!(r.kernels > 0);
            let a = rocmforge::artifact::Artifact::open(&out).unwrap();
            assert_eq!(a.kernels().unwrap().len(), r.kernels);
            assert!(a.kernels().unwrap().iter().all(|k| !k.code.is_empty()));
            a.verify_weights(&Silent).unwrap();
        }
        Err(ArtifactError::KernelsUnavailable { target, .. }) => {
            assert_eq!(target, "sm_90");
            assert!(!out.exists());
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn peek_tells_an_artifact_and_its_target_from_the_first_bytes() {
    use rocmforge::artifact::{peek_target, ArtifactTarget};
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::F32);
    let (gguf, art) = model_and_artifact(dir.path(), &spec, 13);
    assert_eq!(peek_target(&art), Some(ArtifactTarget::Cpu));
    assert_eq!(peek_target(&gguf), None);
    assert_eq!(peek_target(&dir.path().join("absent.rfc")), None);
    let bytes = std::fs::read(&art).unwrap();
    let cut = dir.path().join("cut.rfc");
    for n in [0, 3, 4, 20, 24, 60, 100] {
        std::fs::write(&cut, &bytes[..n]).unwrap();
        assert_eq!(peek_target(&cut), None, "{n} bytes");
    }
    let file = rocmforge::gguf::GgufFile::open(&art).unwrap();
    let gpu = rocmforge::artifact::reseal(&file, |entries| {
        let t = entries.iter_mut().find(|(k, _)| k == "rfc.target").unwrap();
        t.1 = rocmforge::gguf::Value::from("sm_90");
    })
    .unwrap();
    std::fs::write(&cut, gpu).unwrap();
    assert_eq!(
        peek_target(&cut),
        Some(ArtifactTarget::parse("sm_90").unwrap())
    );
}

#[test]
fn compile_refuses_limits_the_reader_would_refuse() {
    use rocmforge::artifact::ArtifactError;
    let dir = temp_dir();
    let gguf = dir.path().join("m.gguf");
    let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::F32);
    std::fs::write(&gguf, spec.to_bytes(14).unwrap()).unwrap();
    let out = dir.path().join("m.rfc");
    let with = |max_batch_tokens| CompileOptions {
        max_batch_tokens,
        ..CompileOptions::default()
    };
    let e = compile_artifact(&gguf, &out, &with(0), &Silent).unwrap_err();
    assert!(matches!(e, ArtifactError::Options(_)), "{e}");
    let e = compile_artifact(&gguf, &out, &with(1 << 20), &Silent).unwrap_err();
    assert!(matches!(e, ArtifactError::Plan(_)), "{e}");
    assert!(!out.exists());
}

#[test]
fn rfc_perplexity_of_an_artifact_compiled_for_its_chunks_equals_the_gguf() {
    let dir = temp_dir();
    let spec = TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q8_0);
    let gguf = dir.path().join("m.gguf");
    std::fs::write(&gguf, spec.to_bytes(15).unwrap()).unwrap();
    let art = dir.path().join("m.rfc");
    let opts = CompileOptions {
        max_context: 64,
        max_batch_tokens: 64,
        max_logit_rows: 64,
        ..CompileOptions::default()
    };
    compile_artifact(&gguf, &art, &opts, &Silent).unwrap();
    let text = dir.path().join("t.txt");
    let words = ["def", "return", "x", "for", "in", "range", "print", "self"];
    let body: Vec<&str> = (0..2000).map(|i| words[(i * 7 + i / 3) % 8]).collect();
    std::fs::write(&text, body.join(" ")).unwrap();
    let ppl = |m: &Path| {
        let t = text.to_str().unwrap();
        let out = rfc(&[
            "perplexity",
            m.to_str().unwrap(),
            "-f",
            t,
            "--ctx",
            "64",
            "--chunks",
            "3",
            "--device",
            "cpu",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().last().unwrap().to_string()
    };
    let want = ppl(&gguf);
    assert!(want.starts_with("PPL = "), "{want}");
    assert_eq!(ppl(&art), want);
}

#[test]
fn a_longrope_artifact_keeps_its_factor_set_and_matches_the_gguf() {
    // The artifact stores only the set its graph reads (here the short
    // one: the default 4096 context is capped by the file's 512, the
    // original context 512).
    let spec = TinySpec {
        arch: TinyArch::Phi3,
        longrope: Some(512),
        ..TinySpec::default()
    };
    assert_same_run(&spec, 4);
    let spec = TinySpec {
        longrope: Some(256),
        ..spec
    };
    assert_same_run(&spec, 4);
}
