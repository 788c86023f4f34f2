//! The worked example of docs/ARCHITECTURE.md ("Adding an architecture"):
//! the spec block printed there, read from the document, builds a model.

use rocmforge::frontend::synthetic::{edit_gguf, SyntheticArch, SyntheticModel};
use rocmforge::frontend::{build_graph_with, detect_among, ArchSpec};
use rocmforge::gguf::{GgufFile, Value};
use rocmforge::ir::{verify::verify, Op};

/// The ```toml block after the `example-spec` marker.
fn example_spec() -> ArchSpec {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let after = &doc[doc.find("<!-- example-spec").expect("marker")..];
    let start = after.find("```toml\n").expect("toml block") + "```toml\n".len();
    let body = &after[start..];
    let toml = &body[..body.find("```").expect("end of block")];
    ArchSpec::from_toml("docs/ARCHITECTURE.md", toml).unwrap()
}

/// The LLaMA synthetic model as a `tinypar` file without `ffn_norm`.
fn tinypar_file() -> GgufFile {
    let src = SyntheticModel::tiny(SyntheticArch::Llama)
        .to_gguf()
        .unwrap();
    let mut set = vec![("general.architecture".to_string(), Value::from("tinypar"))];
    let mut remove = Vec::new();
    for (k, v) in src.metadata().iter() {
        if let Some(rest) = k.strip_prefix("llama.") {
            set.push((format!("tinypar.{rest}"), v.clone()));
            remove.push(k.to_string());
        }
    }
    let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
    edit_gguf(
        &src,
        |name| name.ends_with("ffn_norm.weight"),
        &remove,
        &set,
    )
    .unwrap()
}

#[test]
fn the_documented_spec_is_detected_for_its_architecture() {
    let mut specs = ArchSpec::builtin();
    specs.push(example_spec());
    let d = detect_among(&tinypar_file(), &specs).unwrap();
    assert_eq!(d.spec.name, "tinypar");
}

#[test]
fn the_documented_spec_builds_a_parallel_block_that_verifies_and_compiles() {
    let (cfg, g) = build_graph_with(&tinypar_file(), &example_spec()).unwrap();
    verify(&g).unwrap();
    assert_eq!(cfg.arch, "tinypar");
    // One norm per layer plus the final one: the block is parallel.
    let norms = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::RmsNorm { .. }))
        .count();
    assert_eq!(norms, cfg.n_layer + 1);
    rocmforge::passes::compile(g, Default::default()).unwrap();
}
