//! Constrained generation through the scheduler on a tiny synthetic
//! model (random weights, byte-level vocabulary): whatever the model
//! prefers, sampled output follows the grammar or schema; sequences
//! without a constraint in the same batches get exactly the tokens they
//! get alone; and bad grammars are refused with where they are wrong.

use std::sync::{Arc, Mutex};

use rocmforge::exec::cpu_model::CpuModel;
use rocmforge::grammar::{GrammarCompiler, GrammarError, GrammarSource};
use rocmforge::load::{load_cpu, LoadOptions};
use rocmforge::quant::GgmlType;
use rocmforge::sampler::SamplerConfig;
use rocmforge::sched::{Event, FinishReason, GenRequest, Metrics, Scheduler, SchedulerConfig};
use rocmforge::synth::{TinyArch, TinySpec};
use serde_json::json;

#[derive(Debug, Default, Clone)]
struct Outcome {
    tokens: Vec<u32>,
    text: String,
    finish: Option<FinishReason>,
}

fn sink(out: Arc<Mutex<Outcome>>) -> Box<dyn rocmforge::sched::EventSink> {
    Box::new(move |e: Event| {
        let mut o = out.lock().unwrap();
        match e {
            Event::Token { id, text, .. } => {
                o.tokens.push(id);
                o.text.push_str(&text);
            }
            Event::Done { text, finish, .. } => {
                o.text.push_str(&text);
                o.finish = Some(finish);
            }
            Event::Error(e) => panic!("request failed: {e}"),
        }
        true
    })
}

struct Model {
    sched: Scheduler<CpuModel>,
    tokenizer: Arc<rocmforge::tokenizer::Tokenizer>,
    grammars: GrammarCompiler,
    _dir: tempfile::TempDir,
}

fn tiny(seqs: usize) -> Model {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let bytes = TinySpec::for_type(TinyArch::Qwen2, GgmlType::F32)
        .to_bytes(5)
        .unwrap();
    std::fs::write(&path, bytes).unwrap();
    let opts = LoadOptions {
        max_tokens: 64,
        max_rows: seqs,
        max_seqs: seqs,
        context: 256,
        ..Default::default()
    };
    let m = load_cpu(&path, &opts).unwrap();
    let tokenizer = Arc::new(m.tokenizer);
    let backend = m.session.into_backend();
    let grammars = GrammarCompiler::new(tokenizer.clone(), 320).unwrap();
    let sched = Scheduler::new(
        backend,
        tokenizer.clone(),
        SchedulerConfig::default(),
        Arc::new(Metrics::default()),
    );
    Model {
        sched,
        tokenizer,
        grammars,
        _dir: dir,
    }
}

fn request(seed: u64, max_tokens: usize) -> GenRequest {
    let mut req = GenRequest::new(vec![1, 2, 3, 4 + seed as u32 % 50], max_tokens);
    req.sampling = SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..SamplerConfig::default()
    };
    req
}

/// Runs every request together; their outcomes in order.
fn run(sched: &mut Scheduler<CpuModel>, reqs: Vec<GenRequest>) -> Vec<Outcome> {
    let outs: Vec<_> = reqs.iter().map(|_| Arc::default()).collect();
    for (i, r) in reqs.into_iter().enumerate() {
        sched
            .submit(i as u64, r, sink(Arc::clone(&outs[i])))
            .unwrap();
    }
    let mut steps = 0;
    while sched.has_work() {
        sched.step().unwrap();
        steps += 1;
        assert!(steps < 10_000, "no progress");
    }
    outs.iter().map(|o| o.lock().unwrap().clone()).collect()
}

fn constrained(m: &Model, src: &GrammarSource, seed: u64, max_tokens: usize) -> GenRequest {
    let mut req = request(seed, max_tokens);
    req.constraint = Some(m.grammars.compile(src).unwrap());
    req
}

#[test]
fn sampled_output_is_one_of_the_grammars_words() {
    let mut m = tiny(4);
    let g = GrammarSource::from_text("root ::= (\"yes\" | \"no\" | \"maybe\") \"!\"\n");
    let reqs = (0..8).map(|s| constrained(&m, &g, s, 30)).collect();
    for o in run(&mut m.sched, reqs) {
        assert!(
            ["yes!", "no!", "maybe!"].contains(&o.text.as_str()),
            "{:?}",
            o.text
        );
        assert_eq!(o.finish, Some(FinishReason::Stop));
    }
}

#[test]
fn unconstrained_random_weights_do_not_write_the_grammars_words() {
    // The check above could not fail if the model wrote them anyway.
    let mut m = tiny(4);
    let outs = run(&mut m.sched, (0..4).map(|s| request(s, 6)).collect());
    assert!(outs
        .iter()
        .all(|o| !["yes!", "no!", "maybe!"].contains(&o.text.as_str())));
}

#[test]
fn json_schema_output_parses_and_validates() {
    let mut m = tiny(4);
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 6},
            "kind": {"enum": ["cat", "dog"]},
            "tags": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
        },
        "required": ["name", "kind", "tags"],
        "additionalProperties": false,
    });
    let src = GrammarSource::JsonSchema(schema);
    let reqs = (0..6).map(|s| constrained(&m, &src, s, 200)).collect();
    for o in run(&mut m.sched, reqs) {
        assert_eq!(o.finish, Some(FinishReason::Stop), "{:?}", o.text);
        let v: serde_json::Value = serde_json::from_str(&o.text).expect(&o.text);
        assert!(v["name"].as_str().unwrap().chars().count() <= 6, "{v}");
        assert!(["cat", "dog"].contains(&v["kind"].as_str().unwrap()), "{v}");
        let tags = v["tags"].as_array().unwrap();
        assert!(tags.len() <= 3 && tags.iter().all(|t| t.is_i64()), "{v}");
        assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    }
}

#[test]
fn unconstrained_sequences_in_a_mixed_batch_get_the_tokens_they_get_alone() {
    let mut m = tiny(4);
    let alone = run(&mut m.sched, (0..2).map(|s| request(100 + s, 12)).collect());
    let src = GrammarSource::JsonObject;
    let mixed = vec![
        request(100, 12),
        constrained(&m, &src, 1, 60),
        request(101, 12),
        constrained(&m, &src, 2, 60),
    ];
    let outs = run(&mut m.sched, mixed);
    assert_eq!(outs[0].tokens, alone[0].tokens);
    assert_eq!(outs[2].tokens, alone[1].tokens);
    for o in [&outs[1], &outs[3]] {
        if o.finish == Some(FinishReason::Stop) {
            let v: serde_json::Value = serde_json::from_str(&o.text).expect(&o.text);
            assert!(v.is_object());
        } else {
            // Cut by max_tokens: still a prefix of an object.
            assert!(o.text.starts_with('{'), "{:?}", o.text);
        }
    }
}

#[test]
fn a_broken_gbnf_grammar_is_refused_with_its_line_and_column() {
    let m = tiny(1);
    let src = GrammarSource::from_text("root ::= item+\n\nitem ::= [a-z\n");
    let e = m.grammars.compile(&src).unwrap_err();
    assert!(matches!(e, GrammarError::Gbnf(_)), "{e}");
    assert!(e.to_string().starts_with("GBNF line 3, column"), "{e}");
    let undefined = GrammarSource::from_text("root ::= a\na ::= b \"x\"\n");
    let e = m.grammars.compile(&undefined).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GBNF line 2, column 7: the rule `b` is used but never defined"
    );
}

#[test]
fn unsupported_schema_keywords_are_named() {
    let m = tiny(1);
    let src = GrammarSource::JsonSchema(
        json!({"type": "array", "items": {"type": "integer"}, "uniqueItems": true}),
    );
    let e = m.grammars.compile(&src).unwrap_err().to_string();
    assert!(
        e.contains("Unimplemented keys") && e.contains("uniqueItems"),
        "{e}"
    );
    let src = GrammarSource::JsonSchema(json!({"not": {"type": "string"}}));
    let e = m.grammars.compile(&src).unwrap_err().to_string();
    assert!(e.contains("\"not\""), "{e}");
}

#[test]
fn lark_syntax_is_taken_when_marked() {
    let mut m = tiny(2);
    let src = GrammarSource::from_text("%llguidance {}\nstart: /[0-9]{3}/ \"-ok\"\n");
    assert!(matches!(src, GrammarSource::Lark(_)));
    let req = constrained(&m, &src, 3, 20);
    let outs = run(&mut m.sched, vec![req]);
    let t = &outs[0].text;
    assert!(
        t.len() == 6 && t[..3].bytes().all(|b| b.is_ascii_digit()) && t.ends_with("-ok"),
        "{t:?}"
    );
}

#[test]
fn empty_rules_and_optional_blanks_compile_and_match() {
    let mut m = tiny(1);
    let src = GrammarSource::from_text(
        "root ::= \"a\" nothing ws \"b\"\nnothing ::= \"\"\nws ::= | \" \" # a comment\n",
    );
    let req = constrained(&m, &src, 9, 10);
    let t = run(&mut m.sched, vec![req]).remove(0).text;
    assert!(t == "ab" || t == "a b", "{t:?}");
}

#[test]
fn the_schema_keywords_docs_serving_lists_compile() {
    let m = tiny(1);
    let schema = json!({
        "$defs": {"id": {"type": "string", "pattern": "^[a-z]{3}$"}},
        "type": "object",
        "properties": {
            "id": {"$ref": "#/$defs/id"},
            "when": {"type": "string", "format": "date"},
            "n": {"type": "number", "minimum": 0, "exclusiveMaximum": 10},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}], "items": false},
            "either": {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 2}]},
            "any": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
            "both": {"allOf": [{"type": "object"}, {"required": ["k"], "properties": {"k": {"enum": [1, 2]}}}]},
        },
        "required": ["id"],
    });
    if let Err(e) = m.grammars.compile(&GrammarSource::JsonSchema(schema)) {
        panic!("{e}");
    }
}

/// Whether `text`, fed one character (token) at a time, is accepted whole.
fn accepts(m: &Model, gbnf: &str, text: &str) -> bool {
    let mut c = m.grammars.compile(&GrammarSource::from_text(gbnf)).unwrap();
    for ch in text.chars() {
        let ids = m.tokenizer.encode(&ch.to_string(), false, false).unwrap();
        assert_eq!(ids.len(), 1, "one token per character");
        let mut row = vec![0.0f32; 320];
        c.apply(&mut row).unwrap();
        if row[ids[0] as usize] == f32::NEG_INFINITY || c.commit(ids[0]).is_err() {
            return false;
        }
    }
    c.is_accepting()
}

#[test]
fn overlapping_literals_and_classes_match_as_gbnf_means() {
    let m = tiny(1);
    for (g, yes, no) in [
        (
            "root ::= (\"ab\" | \"a\") \"bc\"",
            vec!["abc", "abbc"],
            vec!["ab", "abcc"],
        ),
        (
            "root ::= [a-z]* \"z\"",
            vec!["z", "abz", "zzz"],
            vec!["", "ab"],
        ),
        (
            "root ::= \"a\"* \"ab\"",
            vec!["ab", "aaab"],
            vec!["a", "aba"],
        ),
    ] {
        for t in yes {
            assert!(accepts(&m, g, t), "{g} should accept {t:?}");
        }
        for t in no {
            assert!(!accepts(&m, g, t), "{g} should refuse {t:?}");
        }
    }
}
