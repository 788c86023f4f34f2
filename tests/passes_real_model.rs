//! The passes on the real model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M):
//! arena size against the lower bound, launches per token, and the mixed
//! q/k/v quant types the multi-segment matmul keeps.

// Each test file uses some of the shared helpers.
mod common;

use std::collections::BTreeMap;

use rocmforge::frontend::build_graph;
use rocmforge::gguf::GgufFile;
use rocmforge::ir::{DimEnv, Graph, Op, Role};
use rocmforge::passes::stats::{stats, weight_bytes_per_token};
use rocmforge::passes::{compile, run_until};

fn real_graph(path: std::path::PathBuf) -> Graph {
    build_graph(&GgufFile::open(path).unwrap()).unwrap().1
}

#[test]
fn arena_at_512_tokens_is_within_5_percent_of_the_lower_bound() {
    let path = common::real_model_or_skip!();
    let p = compile(real_graph(path), DimEnv::default()).unwrap().plan;
    assert_eq!(p.env.tokens, 512);
    assert!(
        p.arena_bytes as f64 <= 1.05 * p.lower_bound as f64,
        "arena {} vs lower bound {}",
        p.arena_bytes,
        p.lower_bound
    );
}

#[test]
fn decoding_a_token_is_five_launches_a_layer_plus_embed_gather_and_logits() {
    let path = common::real_model_or_skip!();
    let s = stats(&compile(real_graph(path), DimEnv::default()).unwrap().graph);
    assert_eq!(s.launches_per_token, 24 * 5 + 3);
}

#[test]
fn passes_leave_the_weight_bytes_per_token_unchanged() {
    let path = common::real_model_or_skip!();
    let g = real_graph(path);
    let before = weight_bytes_per_token(&g);
    let after = weight_bytes_per_token(&run_until(g, "dce").unwrap());
    assert_eq!(before, after);
}

#[test]
fn qkv_segments_keep_q5_0_q5_0_and_a_v_that_is_q8_0_in_half_the_layers() {
    let path = common::real_model_or_skip!();
    let g = run_until(real_graph(path), "dce").unwrap();
    let mut segment_types: BTreeMap<[&str; 3], usize> = BTreeMap::new();
    for id in g.node_ids() {
        let Op::MatMul(_) = g.node(id).op else {
            continue;
        };
        let ws = g.operand_list(id, Role::W);
        if ws.len() == 3 {
            let t = |i: usize| g.node(ws[i]).ty.dtype.name();
            *segment_types.entry([t(0), t(1), t(2)]).or_default() += 1;
        }
    }
    let expected = BTreeMap::from([
        (["Q5_0", "Q5_0", "Q5_0"], 12),
        (["Q5_0", "Q5_0", "Q8_0"], 12),
    ]);
    assert_eq!(segment_types, expected);
}
