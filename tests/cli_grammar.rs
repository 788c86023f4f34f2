//! `rfc run --grammar/--grammar-file/--json-schema/--json` through the
//! built binary on a tiny synthetic model (random weights: whatever it
//! writes is the constraint's doing): the output follows the constraint,
//! and bad constraints are refused before generating, saying where.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    let o = rfc(&["synth", "tiny", "--arch", "qwen2", path.to_str().unwrap()]);
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    path
}

/// `rfc run MODEL -p hello --temp 1 --seed SEED -n 80 EXTRA...`.
fn run(model: &Path, seed: u64, extra: &[&str]) -> Output {
    run_n(model, seed, 80, extra)
}

fn run_n(model: &Path, seed: u64, n: usize, extra: &[&str]) -> Output {
    let seed = seed.to_string();
    let n = n.to_string();
    let mut args = vec![
        "run",
        model.to_str().unwrap(),
        "-p",
        "hello",
        "--temp",
        "1",
        "--top-k",
        "0",
        "--top-p",
        "1",
        "--min-p",
        "0",
        "--seed",
        &seed,
        "-n",
        &n,
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    rfc(&args)
}

#[test]
fn grammar_output_follows_the_grammar() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_model(dir.path());
    let g = "root ::= \"move \" [a-h] [1-8] (\"+\")?\n";
    for seed in 0..3 {
        let o = run(&m, seed, &["--grammar", g]);
        assert!(o.status.success(), "{}", stderr(&o));
        let t = stdout(&o);
        let b = t.as_bytes();
        assert!(
            t.starts_with("move ")
                && (7..=8).contains(&b.len())
                && (b'a'..=b'h').contains(&b[5])
                && (b'1'..=b'8').contains(&b[6]),
            "{t:?}"
        );
    }
}

#[test]
fn grammar_files_and_json_schemas_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_model(dir.path());
    let gf = dir.path().join("g.gbnf");
    std::fs::write(
        &gf,
        "# digits then a dot\nroot ::= digit{2,3} \".\"\ndigit ::= [0-9]\n",
    )
    .unwrap();
    let o = run(&m, 1, &["--grammar-file", gf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(
        (3..=4).contains(&t.len())
            && t.ends_with('.')
            && t[..t.len() - 1].bytes().all(|c| c.is_ascii_digit()),
        "{t:?}"
    );
    let schema = r#"{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false}"#;
    let o = run(&m, 2, &["--json-schema", schema]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|_| panic!("{}", stdout(&o)));
    assert!(
        v["ok"].is_boolean() && v.as_object().unwrap().len() == 1,
        "{v}"
    );
    let sf = dir.path().join("s.json");
    std::fs::write(&sf, schema).unwrap();
    let o = run(&m, 3, &["--json-schema", sf.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|_| panic!("{}", stdout(&o)));
    assert!(v["ok"].is_boolean(), "{v}");
}

#[test]
fn json_gives_an_object_or_its_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_model(dir.path());
    let o = run_n(&m, 4, 400, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    // 400 tokens of random weights may not close it; it is still JSON so far.
    match serde_json::from_str::<serde_json::Value>(&t) {
        Ok(v) => assert!(v.is_object()),
        Err(e) => assert!(e.is_eof() && t.starts_with('{'), "{t:?}: {e}"),
    }
}

#[test]
fn a_broken_grammar_file_names_its_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_model(dir.path());
    let gf = dir.path().join("bad.gbnf");
    std::fs::write(&gf, "root ::= item+\nitem ::= \"a\" | [b-\n").unwrap();
    let o = run(&m, 0, &["--grammar-file", gf.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("bad.gbnf: GBNF line 2, column") && e.contains("unterminated character class"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn bad_schemas_and_two_constraints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_model(dir.path());
    let o = run(
        &m,
        0,
        &["--json-schema", "{\"type\": \"object\",\n \"x\": }"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not valid JSON (line 2"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &m,
        0,
        &["--json-schema", r#"{"type": "array", "uniqueItems": true}"#],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("uniqueItems"), "{}", stderr(&o));
    let o = run(&m, 0, &["--json", "--grammar", "root ::= \"a\""]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}
