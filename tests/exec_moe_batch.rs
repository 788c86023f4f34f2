//! Batched == alone for mixture-of-experts models (ARCHITECTURE.md decision
//! 10): the experts op groups a step's tokens by expert, so which tokens
//! share an expert's matmul depends on what else is in the step. A token's
//! logits must not: every sequence of a mixed step gets, bit for bit, the
//! logits it gets in a step of its own, in prefill and in decode.

use std::sync::Arc;

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
const SEQS: usize = 3;

/// A CPU model of a tiny MoE model (8 experts, 2 a token) planned for
/// three sequences a step.
fn model(arch: TinyArch, ty: GgmlType) -> CpuModel {
    let spec = TinySpec {
        n_experts: 8,
        experts_used: 2,
        ..TinySpec::for_type(arch, ty)
    };
    let file = Arc::new(GgufFile::from_bytes(spec.to_bytes(21).unwrap()).unwrap());
    let (_, graph) = build_graph(&file).unwrap();
    let env = DimEnv {
        tokens: 24,
        rows: SEQS as u64,
        seqs: SEQS as u64,
        pages: PAGES_PER_SEQ as u64,
        kv_len: (PAGES_PER_SEQ * PAGE) as u64,
    };
    let c = compile(graph, env).unwrap();
    CpuModel::new(file, c.graph, c.plan, PAGE).unwrap()
}

/// One step: `parts[i]` = (tokens, first position) of sequence `i`, whose
/// pages are `4i..4i+4`; the logits of each part's last token.
fn step(m: &mut CpuModel, parts: &[(usize, &[i32], i32)]) -> Vec<Vec<f32>> {
    let mut s = StepInputs {
        tokens: Vec::new(),
        positions: Vec::new(),
        seq_ids: Vec::new(),
        page_table: vec![-1; SEQS * PAGES_PER_SEQ],
        pages_per_seq: PAGES_PER_SEQ,
        output_rows: Vec::new(),
    };
    for &(seq, tokens, start) in parts {
        for p in 0..PAGES_PER_SEQ {
            s.page_table[seq * PAGES_PER_SEQ + p] = (seq * PAGES_PER_SEQ + p) as i32;
        }
        s.tokens.extend_from_slice(tokens);
        s.positions.extend(start..start + tokens.len() as i32);
        s.seq_ids
            .extend(std::iter::repeat_n(seq as i32, tokens.len()));
        s.output_rows.push(s.tokens.len() as i32 - 1);
    }
    let vocab = m.vocab();
    let logits = m.run_step(&s).unwrap();
    logits.chunks(vocab).map(<[f32]>::to_vec).collect()
}

fn check(arch: TinyArch, ty: GgmlType) {
    let prompts: [&[i32]; SEQS] = [
        &[5, 9, 14, 3, 7, 30, 41],
        &[11, 2, 8],
        &[200, 17, 64, 64, 250, 3, 99, 120, 18, 6],
    ];
    let next: [i32; SEQS] = [33, 7, 150];
    // Alone: each sequence's prompt, then one decode token, in steps of its own.
    let mut alone = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let mut m = model(arch, ty);
        let prefill = step(&mut m, &[(i, p, 0)]).remove(0);
        let decode = step(&mut m, &[(i, &next[i..i + 1], p.len() as i32)]).remove(0);
        alone.push((prefill, decode));
    }
    // Together: the three prompts in one step, then the three decode tokens.
    let mut m = model(arch, ty);
    let parts: Vec<_> = (0..SEQS).map(|i| (i, prompts[i], 0)).collect();
    let prefill = step(&mut m, &parts);
    let parts: Vec<_> = (0..SEQS)
        .map(|i| (i, &next[i..i + 1], prompts[i].len() as i32))
        .collect();
    let decode = step(&mut m, &parts);
    for i in 0..SEQS {
        assert!(
            prefill[i] == alone[i].0,
            "{arch} {ty:?}: sequence {i}'s prefill logits differ batched"
        );
        assert!(
            decode[i] == alone[i].1,
            "{arch} {ty:?}: sequence {i}'s decode logits differ batched"
        );
    }
}

#[test]
fn qwen3moe_sequences_get_the_same_logits_batched_as_alone() {
    check(TinyArch::Qwen3Moe, GgmlType::F32);
    check(TinyArch::Qwen3Moe, GgmlType::Q8_0);
}

#[test]
fn mixtral_sequences_get_the_same_logits_batched_as_alone() {
    check(TinyArch::Mixtral, GgmlType::Q4_K);
    check(TinyArch::Mixtral, GgmlType::Q6_K);
}
