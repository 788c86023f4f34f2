//! The text form reads back: `print(parse(print(g))) == print(g)` for every
//! IR snapshot under snapshots/, for each pass's output on tiny models and
//! the real model, and parse errors say where.

mod common;
use common::real_model_or_skip;

use rocmforge::frontend::build_graph;
use rocmforge::frontend::synthetic::{SyntheticArch, SyntheticModel};
use rocmforge::gguf::GgufFile;
use rocmforge::ir::parse::parse;
use rocmforge::ir::text::print;
use rocmforge::ir::Graph;

/// Asserts the round trip and returns the reprinted text.
fn assert_round_trip(g: &Graph, what: &str) -> String {
    let text = print(g);
    let back = parse(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    let again = print(&back);
    assert_eq!(again, text, "{what}: the reprinted text differs");
    again
}

/// The body of an insta snapshot file (after its `---` header).
fn snapshot_body(file: &str) -> &str {
    let mut parts = file.splitn(3, "---\n");
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(_header), Some(body)) => body,
        _ => file,
    }
}

/// Whether `ir` holds as many node lines as its header says (snapshots of
/// one layer's excerpt do not, and cannot parse alone).
fn is_whole_graph(ir: &str) -> bool {
    let declared = ir
        .lines()
        .next()
        .and_then(|h| h.strip_prefix("# rocmforge IR: "))
        .and_then(|h| h.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    let nodes = ir.lines().filter(|l| l.starts_with('%')).count();
    declared == Some(nodes)
}

#[test]
fn every_ir_snapshot_round_trips() {
    let dir = common::repo_root().join("snapshots");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "snap") {
            continue;
        }
        let file = std::fs::read_to_string(&path).unwrap();
        let body = snapshot_body(&file);
        // Other snapshots (kernels, reports) are not IR; IR dumps start so.
        let Some(start) = body.find("# rocmforge IR") else {
            continue;
        };
        let ir = &body[start..];
        if !is_whole_graph(ir) {
            continue;
        }
        let g = parse(ir).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reprinted = assert_round_trip(&g, &path.display().to_string());
        if start == 0 && !ir.contains(" arena[") {
            assert_eq!(reprinted.trim_end(), ir.trim_end(), "{}", path.display());
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} IR snapshots found in {}",
        dir.display()
    );
}

#[test]
fn graphs_after_every_pass_round_trip() {
    for arch in SyntheticArch::ALL {
        let mut m = SyntheticModel::tiny(arch);
        m.rope_freqs = arch == SyntheticArch::Llama;
        let (_, g) = build_graph(&m.to_gguf().unwrap()).unwrap();
        for pass in rocmforge::passes::pass_names() {
            let after = rocmforge::passes::run_until(g.clone(), pass).unwrap();
            assert_round_trip(&after, &format!("{arch:?} after {pass}"));
        }
    }
}

#[test]
fn qwen3_phi3_moe_and_gemma3_graphs_round_trip_after_every_pass() {
    // Their new ops (gelu, scale, head_rms_norm, router, experts) and
    // per-layer attributes.
    let qwen3 = rocmforge::synth::TinySpec {
        arch: rocmforge::synth::TinyArch::Qwen3,
        ..Default::default()
    };
    let mut files = vec![(
        "qwen3",
        GgufFile::from_bytes(qwen3.to_bytes(3).unwrap()).unwrap(),
    )];
    let phi3 = rocmforge::synth::TinySpec {
        arch: rocmforge::synth::TinyArch::Phi3,
        ..Default::default()
    };
    files.push((
        "phi3",
        GgufFile::from_bytes(phi3.to_bytes(3).unwrap()).unwrap(),
    ));
    // The mixture-of-experts ops (router, experts with fused parts).
    for (what, arch) in [
        ("qwen3moe", rocmforge::synth::TinyArch::Qwen3Moe),
        ("mixtral", rocmforge::synth::TinyArch::Mixtral),
    ] {
        let spec = rocmforge::synth::TinySpec {
            arch,
            ..Default::default()
        };
        files.push((
            what,
            GgufFile::from_bytes(spec.to_bytes(3).unwrap()).unwrap(),
        ));
    }
    if let Some(p) = common::gemma3_model() {
        files.push(("gemma3", GgufFile::open(p).unwrap()));
    }
    for (what, file) in files {
        let (_, g) = build_graph(&file).unwrap();
        for pass in rocmforge::passes::pass_names() {
            let after = rocmforge::passes::run_until(g.clone(), pass).unwrap();
            assert_round_trip(&after, &format!("{what} after {pass}"));
        }
    }
}

#[test]
fn the_real_models_graph_round_trips_before_and_after_the_passes() {
    let path = real_model_or_skip!();
    let (_, g) = build_graph(&GgufFile::open(&path).unwrap()).unwrap();
    assert_round_trip(&g, "unfused");
    let fused = rocmforge::passes::run_until(g, "dce").unwrap();
    assert_round_trip(&fused, "after dce");
}

#[test]
fn odd_names_and_placements_read_back() {
    let text = "\
# rocmforge IR: 2 nodes, 1 output
%0 = input(tokens) : i32[T]  # \"tokens with \\\"quotes\\\" \"
%1 = weight(\"a b#c\") : q4_k[8,256] @L3 arena[0..256]  # name with # inside
output \"the out\" = %1
";
    let g = parse(text).unwrap();
    let id = g.output("the out").unwrap();
    assert_eq!(g.node(id).name, "name with # inside");
    assert_eq!(g.node(id).layer, Some(3));
    assert_round_trip(&g, "odd names");
}

#[test]
fn parse_errors_give_line_and_column() {
    let cases = [
        (
            "%0 = input(tokens) : i32[T]\n%1 = silu x=%7 : f32[T,4]\n",
            2,
            13,
            "not defined",
        ),
        ("%0 = frobnicate : f32[4]\n", 1, 1, "unknown op"),
        ("%0 = input(tokens) : i33[T]\n", 1, 22, "unknown dtype"),
        ("%0 = rms_norm(eps=x) : f32[4]\n", 1, 15, "eps"),
        ("%0 = silu y=%0 : f32[4]\n", 1, 11, "not an operand role"),
        (
            "%0 = input(tokens) : i32[T]\n%0 = input(tokens) : i32[T]\n",
            2,
            1,
            "twice",
        ),
        ("%0 = input(tokens) i32[T]\n", 1, 20, "expected"),
    ];
    for (text, line, column, words) in cases {
        let e = parse(text).expect_err(text);
        assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
        assert!(e.message.contains(words), "{text:?}: {e}");
    }
}

#[test]
fn gemma2_and_longrope_phi3_graphs_round_trip_after_every_pass() {
    // softcap, attention's softcap= and rope's scaling=longrope(...).
    for spec in [
        rocmforge::synth::TinySpec {
            arch: rocmforge::synth::TinyArch::Gemma2,
            window: Some(4),
            ..Default::default()
        },
        rocmforge::synth::TinySpec {
            arch: rocmforge::synth::TinyArch::Phi3,
            longrope: Some(256),
            ..Default::default()
        },
    ] {
        let file = GgufFile::from_bytes(spec.to_bytes(3).unwrap()).unwrap();
        let (_, g) = build_graph(&file).unwrap();
        for pass in rocmforge::passes::pass_names() {
            let after = rocmforge::passes::run_until(g.clone(), pass).unwrap();
            assert_round_trip(&after, &format!("{} after {pass}", spec.arch));
        }
    }
}
