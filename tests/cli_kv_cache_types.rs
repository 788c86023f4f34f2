//! `rfc run` with a quantized KV cache (`--cache-type-k q8_0 --cache-type-v
//! q4_0`, issue #18) on a tiny synthetic model: it generates, and its greedy
//! tokens are the f16 cache's up to the first step where the f16 run's two
//! best logits are nearly tied (COMPARING.md); bad combinations are refused
//! with words that say why.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rocmforge::exec::cpu::{KvType, KvTypes};
use rocmforge::load::{load_cpu, LoadOptions, LoadedModel};

const PROMPT: &str = "hello world";
const STEPS: usize = 16;

fn rfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(args)
        .output()
        .unwrap()
}

/// `rfc synth tiny` through the binary; `wide` heads are 32 (whole Q8_0/Q4_0
/// blocks), narrow ones 16.
fn synth(dir: &Path, wide: bool) -> PathBuf {
    let path = dir.join(if wide { "wide.gguf" } else { "narrow.gguf" });
    let mut args = vec!["synth", "tiny", "--arch", "qwen2", "--seed", "1"];
    if wide {
        let shape = ["--d", "128", "--heads", "4", "--kv-heads", "2"];
        args.extend(shape.into_iter().chain(["--layers", "4"]));
    }
    args.push(path.to_str().unwrap());
    let out = rfc(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// The greedy continuation of the prompt and, per step, the gap between the
/// two best logits.
fn greedy(model: &mut LoadedModel) -> (Vec<u32>, Vec<f32>) {
    let prompt = model
        .tokenizer
        .encode(PROMPT, model.tokenizer.add_bos(), false)
        .unwrap();
    let s = &mut model.session;
    s.reset();
    let mut logits = s.eval_last(&prompt).unwrap();
    let (mut tokens, mut gaps) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        gaps.push(logits[order[0]] - logits[order[1]]);
        tokens.push(order[0] as u32);
        logits = s.eval_last(&[order[0] as u32]).unwrap();
    }
    (tokens, gaps)
}

fn load(path: &Path, kv_types: KvTypes) -> LoadedModel {
    let opts = LoadOptions {
        context: 64,
        kv_types,
        ..Default::default()
    };
    load_cpu(path, &opts).unwrap()
}

fn run_text(path: &Path, extra: &[&str]) -> String {
    let p = path.to_str().unwrap();
    let mut args = vec![
        "run", p, "-p", PROMPT, "-n", "16", "--temp", "0", "--device", "cpu",
    ];
    args.extend(extra);
    let out = rfc(&args);
    assert!(
        out.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rfc_run_with_q8_0_keys_and_q4_0_values_follows_the_f16_cache_while_the_gap_is_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth(dir.path(), true);
    let quantized = KvTypes {
        k: KvType::Q8_0,
        v: KvType::Q4_0,
    };
    let mut f16 = load(&path, KvTypes::default());
    let (want, gaps) = greedy(&mut f16);
    let (got, _) = greedy(&mut load(&path, quantized));
    // A 4-bit value cache moves this random model's logits by up to about
    // 0.2 (its values have no structure to keep): steps whose f16 gap is
    // below that may go either way.
    let clear = gaps.iter().position(|&g| g < 0.2).unwrap_or(STEPS);
    eprintln!("compared {clear} of {STEPS} greedy tokens (gaps {gaps:?})");
    assert!(clear >= 4, "the f16 run has near-ties early: {gaps:?}");
    assert_eq!(
        got[..clear],
        want[..clear],
        "greedy tokens before a near-tie"
    );

    // The binary generates with the same types, and prints the same text
    // as the f16 cache for those tokens.
    let text_f16 = run_text(&path, &[]);
    let text_q = run_text(&path, &["--cache-type-k", "q8_0", "--cache-type-v", "q4_0"]);
    let head = f16.tokenizer.decode(&want[..clear]);
    assert!(!text_q.trim().is_empty(), "rfc run printed nothing");
    assert!(text_f16.starts_with(&head), "{text_f16:?} vs {head:?}");
    assert!(text_q.starts_with(&head), "{text_q:?} vs {head:?}");
}

#[test]
fn rfc_run_refuses_a_block_cache_type_for_heads_that_are_not_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth(dir.path(), false);
    let out = rfc(&[
        "run",
        path.to_str().unwrap(),
        "-p",
        "hi",
        "-n",
        "2",
        "--cache-type-v",
        "q4_0",
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Q4_0") && err.contains("16") && err.contains("head_dim"),
        "{err}"
    );
}

#[test]
fn the_shorthand_and_a_specific_cache_type_that_disagree_are_refused() {
    let out = rfc(&[
        "perplexity",
        "no-such-model.gguf",
        "-f",
        "no-such-text.txt",
        "--cache-type",
        "q8_0",
        "--cache-type-v",
        "q4_0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cache-type q8_0") && err.contains("--cache-type-v q4_0"),
        "{err}"
    );
    // Unknown names list the known ones.
    let out = rfc(&["run", "m.gguf", "-p", "x", "--cache-type-k", "q3_k"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("q8_0") && err.contains("iq4_nl"), "{err}");
}

#[test]
fn a_gpu_artifact_refuses_a_non_f16_half_of_the_cache_by_name() {
    let opts = |k, v| LoadOptions {
        kv_types: KvTypes { k, v },
        ..Default::default()
    };
    assert!(rocmforge::load::require_f16_cache(&opts(KvType::F16, KvType::F16)).is_ok());
    for (k, v, words) in [
        (KvType::Q8_0, KvType::F16, ["q8_0 keys", "--cache-type-k"]),
        (KvType::F16, KvType::Q4_0, ["q4_0 values", "--cache-type-v"]),
        (KvType::F32, KvType::F32, ["f32 keys and values", "f16"]),
    ] {
        let e = rocmforge::load::require_f16_cache(&opts(k, v))
            .unwrap_err()
            .to_string();
        for w in words {
            assert!(e.contains(w), "{k}/{v}: {e}");
        }
        assert!(e.contains("GPU artifact") && e.contains("GGUF"), "{e}");
    }
}
