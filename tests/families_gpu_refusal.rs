//! The mixture-of-experts ops (`router`, `experts`) have no GPU kernels
//! yet: compiling such a model for a GPU target must fail with an error
//! naming the node and the op, exit code 1, no panic and no file.

mod common;

use rocmforge::synth::{TinyArch, TinySpec};

fn compile(arch: TinyArch, target: &str) -> (i32, String, bool) {
    // The attention compiles for the GPU where heads are 64 wide.
    let spec = TinySpec {
        arch,
        n_heads: 1,
        n_kv_heads: 1,
        ..TinySpec::default()
    };
    common::compile_tiny(&spec, 5, target)
}

#[test]
fn a_gpu_target_refuses_the_moe_ops_by_node_and_op_name() {
    for (arch, first) in [
        // Their attention runs on the GPU; the first MoE op does not.
        (TinyArch::Mixtral, "node blk.0.route (router)"),
        (TinyArch::Qwen3Moe, "node blk.0.route (router)"),
    ] {
        for target in ["sm_90", "gfx1100"] {
            let (code, stderr, left) = compile(arch, target);
            assert_eq!(code, 1, "{arch} {target}: {stderr}");
            assert!(
                stderr.contains(first) && stderr.contains("no GPU kernel for this op yet"),
                "{arch} {target}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(!left, "{arch} {target}: a failed compile left a file");
        }
    }
}

#[test]
fn the_cpu_target_compiles_every_family() {
    for arch in [
        TinyArch::Qwen3,
        TinyArch::Gemma3,
        TinyArch::Gemma2,
        TinyArch::Phi3,
        TinyArch::Qwen3Moe,
        TinyArch::Mixtral,
    ] {
        let (code, stderr, _) = compile(arch, "cpu");
        assert_eq!(code, 0, "{arch}: {stderr}");
    }
}
