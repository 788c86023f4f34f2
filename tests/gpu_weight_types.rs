//! Which weight types the GPU kernels read: every type the CPU computes
//! with is either read by every GPU kernel that takes weights (the matmul
//! variants a plan compiles on NVIDIA and AMD, the embedding gather) or
//! refused by name, never specialized into a kernel that would read it
//! wrongly; the IQ, TQ and MXFP4 types take the int8 kernels (decode,
//! narrow product, prefill tiles) like the legacy and K-quants; and a GPU
//! target plans whole tiny models of each of them.

use std::process::Command;

use rocmforge::backend::Vendor;
use rocmforge::codegen::lattice_grids::LatticeGrid;
use rocmforge::codegen::{MatMulSpec, MatMulVariant, RowOp, Template, GPU_TYPES};
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

/// A matrix of `ty` large enough for the int8 decode matvec, k in whole
/// 256-element blocks and 128-element chunks.
fn large(ty: GgmlType) -> MatMulSpec {
    MatMulSpec::plain(ty, 4096, 1024)
}

fn embed(ty: GgmlType) -> RowOp {
    RowOp::Embed {
        ty,
        dim: 1024,
        vocab: 1000,
    }
}

#[test]
fn every_type_the_cpu_computes_with_is_read_by_the_gpu_kernels_or_refused_by_name() {
    let computable = GgmlType::ALL.into_iter().filter(|t| t.is_supported());
    let mut refused = Vec::new();
    for ty in computable {
        let spec = large(ty);
        let mut variants = spec.variants(Vendor::Cuda);
        variants.extend(spec.variants(Vendor::Hip));
        if GPU_TYPES.contains(&ty) {
            for v in variants {
                let src = spec.source(v).unwrap_or_else(|e| panic!("{ty} {v}: {e}"));
                assert!(!src.text().is_empty());
            }
            embed(ty)
                .source()
                .unwrap_or_else(|e| panic!("{ty} embed: {e}"));
        } else {
            for v in variants {
                let e = spec.source(v).unwrap_err().to_string();
                assert!(e.contains(ty.name()), "{ty} {v}: {e}");
            }
            let e = embed(ty).source().unwrap_err().to_string();
            assert!(e.contains(ty.name()), "{ty} embed: {e}");
            refused.push(ty);
        }
    }
    // Only the activation formats (never a weight in GGUF files) are left.
    assert_eq!(refused, [GgmlType::Q8_1, GgmlType::Q8_K]);
}

#[test]
fn the_newer_weight_types_take_the_int8_kernels() {
    let t1 = MatMulVariant::Vector { tokens: 1 };
    let t64 = MatMulVariant::Tiled { tokens: 64 };
    let t128 = MatMulVariant::Tiled { tokens: 128 };
    let n16 = MatMulVariant::Narrow { tokens: 16 };
    for ty in GgmlType::NEWER_WEIGHT_QUANTS {
        let spec = large(ty);
        assert!(GPU_TYPES.contains(&ty), "{ty}");
        assert_eq!(
            spec.source(t1).unwrap().template,
            Template::MatVecQ8,
            "{ty}"
        );
        assert!(spec.has_narrow(), "{ty}");
        assert!(
            !spec.f16_tiles_read(),
            "{ty}: the f16 tiles read K-quants only"
        );
        for v in [t64, t128, n16] {
            let src = spec.source(v).unwrap();
            assert_eq!(src.template, Template::MatMulQ8, "{ty} {v}");
            // Scale groups of 16 where the type has two scales per 32.
            let per16 = matches!(ty, GgmlType::IQ2_XS | GgmlType::IQ2_S | GgmlType::IQ1_M);
            assert_eq!(src.defines["SUB"], if per16 { "16" } else { "32" }, "{ty}");
            assert_eq!(src.defines["HAS_MIN"], "0", "{ty}");
        }
        assert!(spec.repacks_weights(t128) && spec.repacks_weights(n16));
    }
}

#[test]
fn a_kernel_carries_exactly_the_lattice_grids_of_its_weights() {
    use GgmlType::*;
    for ty in GPU_TYPES {
        for src in [
            large(ty)
                .source(MatMulVariant::Vector { tokens: 1 })
                .unwrap(),
            embed(ty).source().unwrap(),
        ] {
            let text = src.text();
            for g in [
                LatticeGrid::Iq2Xxs,
                LatticeGrid::Iq2Xs,
                LatticeGrid::Iq2S,
                LatticeGrid::Iq3Xxs,
                LatticeGrid::Iq3S,
                LatticeGrid::Iq1S,
            ] {
                let wanted = LatticeGrid::of(ty) == Some(g);
                let has = text.contains(&format!("#define {} 1\n", g.guard()));
                assert_eq!(has, wanted, "{} {g:?}", src.label);
            }
        }
    }
    // Segments of two lattice types: both grids, once each.
    let mixed = MatMulSpec::concatenated(
        1024,
        vec![
            rocmforge::codegen::Segment::unbiased(IQ2_XXS, 64),
            rocmforge::codegen::Segment::unbiased(IQ1_M, 64),
            rocmforge::codegen::Segment::unbiased(IQ1_S, 64),
        ],
    );
    let text = mixed
        .source(MatMulVariant::Tiled { tokens: 64 })
        .unwrap()
        .text();
    assert_eq!(text.matches("#define RFC_GRID_IQ2XXS 1").count(), 1);
    assert_eq!(text.matches("#define RFC_GRID_IQ1S 1").count(), 1);
    assert!(!text.contains("RFC_GRID_IQ3S 1"));
}

/// `rfc compile --target TARGET --emit-kernels DIR` of a tiny Llama of `ty`.
fn emit(ty: GgmlType, target: &str) -> (bool, String, usize) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    let spec = TinySpec {
        d_model: 256,
        n_heads: 4,
        n_kv_heads: 2,
        ..TinySpec::for_type(TinyArch::Llama, ty)
    };
    std::fs::write(&model, spec.to_bytes(7).unwrap()).unwrap();
    let kernels = dir.path().join("k");
    let out = Command::new(env!("CARGO_BIN_EXE_rfc"))
        .args([
            "compile",
            model.to_str().unwrap(),
            "--target",
            target,
            "--emit-kernels",
        ])
        .arg(&kernels)
        .output()
        .unwrap();
    let n = std::fs::read_dir(&kernels).map_or(0, |d| d.count());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        n,
    )
}

#[test]
fn gpu_targets_plan_tiny_models_of_every_newer_weight_type() {
    for ty in GgmlType::NEWER_WEIGHT_QUANTS {
        for target in ["sm_90", "gfx1100"] {
            let (ok, stderr, kernels) = emit(ty, target);
            assert!(ok, "{ty} {target}: {stderr}");
            assert!(kernels > 10, "{ty} {target}: {kernels} kernel sources");
        }
    }
}
