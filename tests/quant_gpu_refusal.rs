//! The IQ, TQ and MXFP4 weight types have CPU kernels but no GPU kernels
//! yet: compiling such a model for a GPU target must fail with an error
//! naming the type (exit code 1, no panic, no file), never run with
//! garbage; the CPU target compiles them.

use std::process::Command;

use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

fn compile(ty: GgmlType, embd: Option<GgmlType>, target: &str) -> (i32, String, bool) {
    let dir = std::env::temp_dir().join(format!(
        "rfc-quant-gpu-refusal-{}-{ty}-{target}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.gguf");
    let spec = TinySpec {
        embd_ty: embd,
        ..TinySpec::for_type(TinyArch::Llama, ty)
    };
    std::fs::write(&model, spec.to_bytes(7).unwrap()).unwrap();
    let out_file = dir.join("m.rfc");
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args(["compile", model.to_str().unwrap(), "--target", target, "-o"])
        .arg(&out_file)
        .output()
        .unwrap();
    let left = out_file.exists();
    std::fs::remove_dir_all(&dir).ok();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        left,
    )
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
