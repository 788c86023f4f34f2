//! The passes on mixture-of-experts graphs (tiny synthetic Mixtral and
//! Qwen3-MoE): what fusion leaves of a MoE layer, the weight bytes a token
//! reads (only its routed experts'), and the experts op's scratch.

use rocmforge::frontend::build_graph;
use rocmforge::gguf::GgufFile;
use rocmforge::ir::{DimEnv, Epilogue, Op, Prologue};
use rocmforge::passes::stats::stats;
use rocmforge::passes::{compile, run_until};
use rocmforge::synth::{TinyArch, TinySpec};

fn tiny(arch: TinyArch, experts: usize, used: usize) -> GgufFile {
    let spec = TinySpec {
        arch,
        n_experts: experts,
        experts_used: used,
        ..TinySpec::default()
    };
    GgufFile::from_bytes(spec.to_bytes(4).unwrap()).unwrap()
}

#[test]
fn a_fused_mixtral_layer_is_six_launches_with_the_norm_and_residual_in_the_experts() {
    let (_, g) = build_graph(&tiny(TinyArch::Mixtral, 4, 2)).unwrap();
    let g = run_until(g, "dce").unwrap();
    // qkv, attention, output, router logits, router, experts.
    assert_eq!(stats(&g).ops_per_layer, 6);
    let experts: Vec<_> = g
        .node_ids()
        .filter_map(|id| match &g.node(id).op {
            Op::Experts(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(experts.len(), 2);
    for m in experts {
        assert!(matches!(m.prologue, Some(Prologue::RmsNorm { .. })));
        assert_eq!(m.epilogue, [Epilogue::Residual]);
    }
    assert!(!g
        .node_ids()
        .any(|id| matches!(g.node(id).op, Op::RmsNorm { .. } | Op::Add)));
}

#[test]
fn a_token_reads_only_its_routed_experts_weights() {
    for (arch, experts, used) in [(TinyArch::Qwen3Moe, 8, 2), (TinyArch::Mixtral, 4, 3)] {
        let file = tiny(arch, experts, used);
        // From the file's tensor table: every tensor in full, but the
        // embedding (one row) and the expert tensors (used of experts).
        let mut expected = 0u64;
        for t in file.tensors() {
            let bytes = t.size;
            expected += if t.name == "token_embd.weight" {
                bytes / t.n_rows()
            } else if t.name.contains("_exps.") {
                bytes / experts as u64 * used as u64
            } else {
                bytes
            };
        }
        let (_, g) = build_graph(&file).unwrap();
        for pass in ["frontend", "fuse", "dce"] {
            let g = match pass {
                "frontend" => g.clone(),
                p => run_until(g.clone(), p).unwrap(),
            };
            let s = stats(&g);
            assert_eq!(s.weight_bytes_per_token, expected, "{arch} after {pass}");
            let all: u64 = file.tensors().iter().map(|t| t.size).sum();
            assert_eq!(s.weight_bytes_stored, all, "{arch} after {pass}");
        }
    }
}

#[test]
fn the_experts_scratch_holds_five_disjoint_parts_for_every_row() {
    let (cfg, g) = build_graph(&tiny(TinyArch::Qwen3Moe, 4, 2)).unwrap();
    let env = DimEnv {
        tokens: 32,
        ..DimEnv::default()
    };
    let c = compile(g, env).unwrap();
    let (t, d, ff) = (32u64, cfg.d_model as u64, cfg.expert_ffn as u64);
    let mut seen = 0;
    for id in c.graph.node_ids() {
        if !matches!(c.graph.node(id).op, Op::Experts(_)) {
            continue;
        }
        seen += 1;
        let slot = c.plan.scratch_of(id).unwrap();
        let l = c.plan.scratch_layout(&c.graph, id);
        let parts = [
            (l.normalized.unwrap(), 4 * t * d),
            (l.pre_activation.unwrap(), 4 * t * 2 * ff),
            (l.gathered.unwrap(), 4 * t * d),
            (l.activated.unwrap(), 4 * t * ff),
            (l.expert_out.unwrap(), 4 * t * d),
        ];
        for (i, &(p, bytes)) in parts.iter().enumerate() {
            assert_eq!(p.bytes, bytes, "part {i}");
            assert!(p.offset >= slot.offset && p.offset + p.bytes <= slot.offset + slot.bytes);
            for &(q, _) in &parts[i + 1..] {
                assert!(
                    p.offset + p.bytes <= q.offset,
                    "parts {i} and a later one overlap"
                );
            }
        }
    }
    assert_eq!(seen, 2);
    assert!(c.plan.arena_bytes >= c.plan.lower_bound);
}
