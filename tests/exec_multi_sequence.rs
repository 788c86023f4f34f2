//! A step may carry tokens of several sequences (ARCHITECTURE.md decision
//! 9): each token with its own sequence and position, the KV cache reached
//! through each sequence's page table row. One mixed step must give every
//! sequence exactly the logits it gets when run alone.

mod common;

use std::sync::Arc;

use common::rel_err;
use rocmforge::exec::cpu_model::CpuModel;
use rocmforge::exec::session::StepBackend;
use rocmforge::exec::step::StepInputs;
use rocmforge::frontend::build_graph;
use rocmforge::gguf::GgufFile;
use rocmforge::ir::DimEnv;
use rocmforge::passes::compile;
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

const PAGE: usize = 4;
const PAGES_PER_SEQ: usize = 4;

/// A CPU model of a tiny Q8_0 qwen2 planned for two sequences a step.
fn model() -> CpuModel {
    let bytes = TinySpec::for_type(TinyArch::Qwen2, GgmlType::Q8_0)
        .to_bytes(7)
        .unwrap();
    let file = Arc::new(GgufFile::from_bytes(bytes).unwrap());
    let (_, graph) = build_graph(&file).unwrap();
    let env = DimEnv {
        tokens: 16,
        rows: 4,
        seqs: 2,
        pages: PAGES_PER_SEQ as u64,
        kv_len: (PAGES_PER_SEQ * PAGE) as u64,
    };
    let c = compile(graph, env).unwrap();
    CpuModel::new(file, c.graph, c.plan, PAGE).unwrap()
}

/// A step of one sequence in page-table row 0 with pages `pages`.
fn alone(tokens: &[i32], start: i32, pages: &[i32]) -> StepInputs {
    let mut page_table = vec![-1; PAGES_PER_SEQ];
    page_table[..pages.len()].copy_from_slice(pages);
    StepInputs {
        tokens: tokens.to_vec(),
        positions: (start..start + tokens.len() as i32).collect(),
        seq_ids: vec![0; tokens.len()],
        page_table,
        pages_per_seq: PAGES_PER_SEQ,
        output_rows: vec![tokens.len() as i32 - 1],
    }
}

fn last_logits(m: &mut CpuModel, step: &StepInputs) -> Vec<Vec<f32>> {
    let vocab = m.vocab();
    m.run_step(step)
        .unwrap()
        .chunks(vocab)
        .map(<[f32]>::to_vec)
        .collect()
}

#[test]
fn a_mixed_step_of_two_sequences_gives_each_its_own_logits() {
    let (a, b) = ([5, 9, 14, 3, 7, 30], [11, 2, 8]);
    // Alone: a's prompt then one decode token; b's prompt alone.
    let mut m = model();
    let a_prompt = last_logits(&mut m, &alone(&a[..5], 0, &[0, 1]));
    let a_next = last_logits(&mut m, &alone(&a[5..], 5, &[0, 1]));
    let mut m = model();
    let b_prompt = last_logits(&mut m, &alone(&b, 0, &[2]));

    // Together: a's prompt in one step; then a's decode token and b's whole
    // prompt share a step, interleaved, with pages of their own.
    let mut m = model();
    let first = last_logits(&mut m, &alone(&a[..5], 0, &[0, 1]));
    assert_eq!(first, a_prompt, "the same step twice is deterministic");
    let mixed = StepInputs {
        tokens: vec![b[0], a[5], b[1], b[2]],
        positions: vec![0, 5, 1, 2],
        seq_ids: vec![1, 0, 1, 1],
        page_table: vec![0, 1, -1, -1, 2, -1, -1, -1],
        pages_per_seq: PAGES_PER_SEQ,
        output_rows: vec![1, 3],
    };
    let got = last_logits(&mut m, &mixed);
    assert_eq!(got.len(), 2);
    // Same arithmetic per token; only the grouping of tokens in the matmul
    // tiles may differ, so allow float reassociation and nothing more.
    assert!(
        rel_err(&got[0], &a_next[0]) < 1e-5,
        "sequence a's decode token"
    );
    assert!(rel_err(&got[1], &b_prompt[0]) < 1e-5, "sequence b's prompt");
}
