//! The IR of a tiny model of each architecture after each pass, as text,
//! under snapshots/ (review changes with `cargo insta review`); and the real
//! model's first layer after all passes.

// Each test file uses some of the shared helpers.
mod common;

use rocmforge::frontend::build_graph;
use rocmforge::frontend::synthetic::{SyntheticArch, SyntheticModel};
use rocmforge::gguf::GgufFile;
use rocmforge::ir::{text, DimEnv, Graph};
use rocmforge::passes::{compile, run_until, MemoryPlan};

fn tiny(arch: SyntheticArch) -> Graph {
    let mut m = SyntheticModel::tiny(arch);
    // One layer shows the block; the others repeat it.
    m.n_layer = 1;
    build_graph(&m.to_gguf().unwrap()).unwrap().1
}

/// The graph as text with each arena value's byte range.
fn print_planned(g: &Graph, p: &MemoryPlan) -> String {
    let header = format!(
        "# arena {} bytes (lower bound {}, naive {}) for T={}\n",
        p.arena_bytes, p.lower_bound, p.naive_bytes, p.env.tokens
    );
    header
        + &text::print_with_placement(g, |id| p.slot_of(id).map(|s| s.offset..s.offset + s.bytes))
}

fn after(arch: SyntheticArch, pass: &str) -> String {
    let g = tiny(arch);
    if pass == "plan_memory" {
        let c = compile(
            g,
            DimEnv {
                tokens: 16,
                ..DimEnv::default()
            },
        )
        .unwrap();
        return print_planned(&c.graph, &c.plan);
    }
    text::print(&run_until(g, pass).unwrap())
}

macro_rules! snapshot_after {
    ($test:ident, $arch:ident, $pass:literal) => {
        #[test]
        fn $test() {
            let name = format!("{}_after_{}", SyntheticArch::$arch.spec_name(), $pass);
            let dump = after(SyntheticArch::$arch, $pass);
            insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
                insta::assert_snapshot!(name, dump);
            });
        }
    };
}

snapshot_after!(llama_after_qkv_concat, Llama, "qkv_concat");
snapshot_after!(llama_after_fuse, Llama, "fuse");
snapshot_after!(llama_after_dce, Llama, "dce");
snapshot_after!(llama_after_plan_memory, Llama, "plan_memory");
snapshot_after!(qwen2_after_qkv_concat, Qwen2, "qkv_concat");
snapshot_after!(qwen2_after_fuse, Qwen2, "fuse");
snapshot_after!(qwen2_after_dce, Qwen2, "dce");
snapshot_after!(qwen2_after_plan_memory, Qwen2, "plan_memory");
snapshot_after!(mistral_after_qkv_concat, Mistral, "qkv_concat");
snapshot_after!(mistral_after_fuse, Mistral, "fuse");
snapshot_after!(mistral_after_dce, Mistral, "dce");
snapshot_after!(mistral_after_plan_memory, Mistral, "plan_memory");

#[test]
fn real_model_first_layer_after_all_passes() {
    let path = common::real_model_or_skip!();
    let (_, g) = build_graph(&GgufFile::open(path).unwrap()).unwrap();
    let c = compile(g, DimEnv::default()).unwrap();
    // Layer 0's lines and the inputs; the other layers repeat layer 0.
    let dump: String = print_planned(&c.graph, &c.plan)
        .lines()
        .filter(|l| l.starts_with('#') || l.contains(" @L0") || l.contains("= input("))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("qwen2_real_layer0_after_all", dump);
    });
}
