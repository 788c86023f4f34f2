//! The IQ, TQ and MXFP4 weight types have CPU kernels but no GPU kernels
//! yet: compiling such a model for a GPU target must fail with an error
//! naming the type (exit code 1, no panic, no file), never run with
//! garbage; the CPU target compiles them.

mod common;

use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

fn compile(ty: GgmlType, embd: Option<GgmlType>, target: &str) -> (i32, String, bool) {
    let spec = TinySpec {
        embd_ty: embd,
        ..TinySpec::for_type(TinyArch::Llama, ty)
    };
    common::compile_tiny(&spec, 7, target)
}

#[test]
fn gpu_targets_refuse_the_cpu_only_weight_types_by_name() {
    for ty in GgmlType::CPU_ONLY_WEIGHT_QUANTS {
        // With a Q8_0 embedding the first refusal is a matmul's weight;
        // with the type's own, the embedding table.
        for (embd, target) in [(Some(GgmlType::Q8_0), "gfx1100"), (None, "sm_90")] {
            let (code, stderr, left) = compile(ty, embd, target);
            assert_eq!(code, 1, "{ty} {target}: {stderr}");
            assert!(stderr.contains(ty.name()), "{ty} {target}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(!left, "{ty} {target}: a failed compile left a file");
        }
    }
}

#[test]
fn the_cpu_target_compiles_the_cpu_only_weight_types() {
    for ty in [GgmlType::IQ4_XS, GgmlType::MXFP4, GgmlType::IQ2_XXS] {
        let (code, stderr, _) = compile(ty, None, "cpu");
        assert_eq!(code, 0, "{ty}: {stderr}");
    }
}
