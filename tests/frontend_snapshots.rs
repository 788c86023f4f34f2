//! The unfused graph of a tiny model of each architecture, as text, under
//! snapshots/ (review changes with `cargo insta review`).

use rocmforge::frontend::build_graph;
use rocmforge::frontend::synthetic::{SyntheticArch, SyntheticModel};
use rocmforge::ir::text::print;

fn unfused(arch: SyntheticArch) -> String {
    let mut m = SyntheticModel::tiny(arch);
    // One layer shows the block; the others repeat it.
    m.n_layer = 1;
    let (_, g) = build_graph(&m.to_gguf().unwrap()).unwrap();
    print(&g)
}

#[test]
fn llama_unfused_graph() {
    insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("llama_unfused", unfused(SyntheticArch::Llama));
    });
}

#[test]
fn qwen2_unfused_graph() {
    insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("qwen2_unfused", unfused(SyntheticArch::Qwen2));
    });
}

#[test]
fn mistral_unfused_graph() {
    insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("mistral_unfused", unfused(SyntheticArch::Mistral));
    });
}
