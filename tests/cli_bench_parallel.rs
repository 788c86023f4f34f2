//! `rfc bench --parallel` on the CPU through the server's scheduler: the
//! depth lengthens every prompt, and the mixed step holds the N decodes
//! beside one prefill chunk of the step limit's remaining tokens.

mod common;

use common::rfc;

#[test]
fn the_mixed_step_holds_every_decode_and_the_rest_of_the_step_as_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let m = model.to_str().unwrap();
    let o = rfc(&["synth", "tiny", "--arch", "qwen2", m]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (depth, prompt, gen, step) = (20, 8, 6, 40);
    let o = rfc(&[
        "bench",
        m,
        "--device",
        "cpu",
        "--threads",
        "1",
        "--parallel",
        "1,3",
        "-p",
        "8",
        "-n",
        "6",
        "-d",
        "20",
        "-r",
        "1",
        "--batch-tokens",
        "40",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = j["parallel"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, n) in rows.iter().zip([1u64, 3]) {
        let get = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("{k} in {row}"));
        assert_eq!(get("parallel") as u64, n);
        // Each prompt is the depth plus -p tokens.
        assert_eq!(get("prompt_tokens") as u64, n * (depth + prompt));
        assert_eq!(get("generated_tokens") as u64, n * gen);
        // N decodes and a chunk of 40 - N prompt tokens: the whole step.
        assert_eq!(get("mixed_step_tokens") as u64, step, "{row}");
        assert!(
            get("decode_step_ms") > 0.0 && get("mixed_step_ms") > 0.0,
            "{row}"
        );
        assert!(get("decode_tokens_per_s") > 0.0, "{row}");
    }
}
