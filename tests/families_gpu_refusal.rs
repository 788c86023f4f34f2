//! The mixture-of-experts ops (`router`, `experts`) on GPU targets: both
//! vendors' code generation gives every MoE node its kernels (the kernels
//! themselves are checked against the CPU by `rfc gpu-selftest`'s
//! "experts:" cases and whole models by `rfc gpu-check` on a GPU), and
//! what the kernels cannot read is refused by node and op name, with no
//! panic.

mod common;

use std::collections::BTreeMap;

use rocmforge::backend::Vendor;
use rocmforge::codegen::plan::{kernel_sources, PlanOptions};
use rocmforge::codegen::{CodegenError, KernelSource};
use rocmforge::gguf::GgufFile;
use rocmforge::ir::Graph;
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

/// A tiny MoE model whose heads are 64 wide (the GPU attention's size),
/// 8 experts, `k` a token.
fn moe(arch: TinyArch, ty: GgmlType, ffn: usize, k: usize) -> TinySpec {
    TinySpec {
        arch,
        d_model: 256,
        n_heads: 4,
        n_kv_heads: 2,
        ffn,
        ty,
        n_experts: 8,
        experts_used: k,
        ..TinySpec::default()
    }
}

fn compiled(spec: &TinySpec) -> Graph {
    let file = GgufFile::from_bytes(spec.to_bytes(7).unwrap()).unwrap();
    let (_, graph) = rocmforge::frontend::build_graph(&file).unwrap();
    rocmforge::passes::compile(graph, Default::default())
        .unwrap()
        .graph
}

fn sources(g: &Graph, vendor: Vendor) -> Result<BTreeMap<String, KernelSource>, CodegenError> {
    kernel_sources(
        g,
        &PlanOptions {
            page_size: 16,
            vendor,
            kv: Default::default(),
        },
    )
}

#[test]
fn moe_models_get_a_router_and_an_experts_kernel_on_both_vendors() {
    for (arch, ffn, expert_ffn, k) in [
        (TinyArch::Mixtral, 512, 512, 2),
        (TinyArch::Qwen3Moe, 1024, 512, 4),
    ] {
        let g = compiled(&moe(arch, GgmlType::Q4_K, ffn, k));
        for vendor in [Vendor::Cuda, Vendor::Hip] {
            let s = sources(&g, vendor).unwrap();
            let router = format!("router_e8_k{k}");
            let experts = format!("experts_d256_ff{expert_ffn}_e8_k{k}_q4_k_q4_k_q4_k");
            assert!(s.contains_key(&router), "{arch}: {:?}", s.keys());
            assert!(s.contains_key(&experts), "{arch}: {:?}", s.keys());
            assert_eq!(s[&router].entries, ["router"]);
            assert_eq!(s[&experts].entries, ["experts_up", "experts_down"]);
            let d = &s[&experts].defines;
            assert_eq!(d["EXPERTS_K"], k.to_string());
            assert_eq!(d["GATE_TYPE"], GgmlType::Q4_K.id().to_string());
            // The fused RMSNorm prologue runs as the row kernel first.
            assert!(s.contains_key("rms_norm_d256"), "{arch}: {:?}", s.keys());
        }
    }
}

#[test]
fn experts_rows_the_kernels_cannot_read_are_refused_by_node_and_op() {
    // The kernels take rows in 8-element parts, 32 lanes at a time.
    let g = compiled(&moe(TinyArch::Mixtral, GgmlType::F16, 200, 2));
    for vendor in [Vendor::Cuda, Vendor::Hip] {
        let err = sources(&g, vendor).unwrap_err().to_string();
        assert!(
            err.contains("node blk.0.x.experts (experts)")
                && err.contains("down rows of 200 F16 values"),
            "{err}"
        );
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
        let spec = TinySpec {
            arch,
            n_heads: 1,
            n_kv_heads: 1,
            ..TinySpec::default()
        };
        let (code, stderr, _) = common::compile_tiny(&spec, 5, "cpu");
        assert_eq!(code, 0, "{arch}: {stderr}");
    }
}
