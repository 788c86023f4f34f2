//! The cost of a grammar per generated token, apart from the model: the
//! real Qwen2.5 vocabulary (../shared's vocab-only GGUF), a JSON schema,
//! and a representative output fed token by token — computing each mask
//! and applying it to a row of logits is the work a constrained sequence
//! adds per step. Ignored by default (a measurement, not a check):
//! `cargo test --release --test grammar_mask_cost -- --ignored --nocapture`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::shared_or_skip;
use rocmforge::gguf::GgufFile;
use rocmforge::grammar::{GrammarCompiler, GrammarSource};
use rocmforge::tokenizer::Tokenizer;
use serde_json::json;

#[test]
#[ignore]
fn mask_cost_per_token_with_a_json_schema() {
    let shared = shared_or_skip!();
    let file =
        GgufFile::open(shared.join("testdata/llama.cpp-vocab/ggml-vocab-qwen2.gguf")).unwrap();
    let tok = Arc::new(Tokenizer::from_gguf(&file).unwrap());
    let n_logits = 151_936;
    let t = Instant::now();
    let compiler = GrammarCompiler::new(tok.clone(), n_logits).unwrap();
    println!(
        "compiler (token trie) built in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let schema = json!({"type": "object", "properties": {"users": {"type": "array", "maxItems": 50,
        "items": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"}, "email": {"type": "string", "maxLength": 40}},
        "required": ["name", "age", "email"]}}}, "required": ["users"]});
    let users: Vec<_> = (0..12)
        .map(|i| json!({"name": format!("User Number {i}"), "age": 20 + i, "email": format!("user{i}@example.com")}))
        .collect();
    let text = serde_json::to_string(&json!({ "users": users }))
        .unwrap()
        .replace(",\"", ", \"")
        .replace("\":", "\": ")
        .replace("},{", "}, {");
    let ids = tok.encode(&text, false, false).unwrap();
    let t = Instant::now();
    let mut c = compiler
        .compile(&GrammarSource::JsonSchema(schema))
        .unwrap();
    println!(
        "schema compiled in {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut row = vec![0.5f32; n_logits];
    let (mut mask_s, mut apply_s, mut commit_s) = (0.0, 0.0, 0.0);
    for &id in &ids {
        row.fill(0.5);
        let t0 = Instant::now();
        c.prepare();
        let t1 = Instant::now();
        c.apply(&mut row).unwrap();
        assert!(
            row[id as usize].is_finite(),
            "the mask forbids the output's own token"
        );
        let t2 = Instant::now();
        c.commit(id).unwrap();
        let t3 = Instant::now();
        mask_s += (t1 - t0).as_secs_f64();
        apply_s += (t2 - t1).as_secs_f64();
        commit_s += (t3 - t2).as_secs_f64();
    }
    let n = ids.len() as f64;
    println!(
        "{} tokens: mask {:.1} µs, apply {:.1} µs, commit {:.1} µs per token",
        ids.len(),
        mask_s / n * 1e6,
        apply_s / n * 1e6,
        commit_s / n * 1e6
    );
}
