//! Gemma 3, Gemma 2, Qwen3, Phi-3 with LongRoPE and YaRN-scaled models
//! compile to GPU kernels (code generation for NVIDIA and AMD; the kernels
//! themselves are checked against the CPU by `rfc gpu-selftest` and whole
//! models by `rfc gpu-check` on a GPU): every node gets its sources, and
//! the specializations carry what each family needs — per-layer RoPE bases,
//! the per-head norm, GeGLU, the soft-caps, LongRoPE's factors and
//! attn_factor, YaRN's correction range.

use std::collections::BTreeMap;

use rocmforge::backend::Vendor;
use rocmforge::codegen::plan::{kernel_sources, PlanOptions};
use rocmforge::codegen::KernelSource;
use rocmforge::gguf::GgufFile;
use rocmforge::ir::{Graph, Op, RopeScaling};
use rocmforge::synth::{TinyArch, TinySpec};

/// A tiny model of `arch` whose heads are 64 wide (the GPU attention's
/// smallest head size is 32), compiled for its own context.
fn compiled(spec: TinySpec) -> Graph {
    let spec = TinySpec {
        d_model: 256,
        n_heads: 4,
        n_kv_heads: 2,
        ffn: 512,
        ..spec
    };
    let file = GgufFile::from_bytes(spec.to_bytes(7).unwrap()).unwrap();
    let (_, graph) = rocmforge::frontend::build_graph(&file).unwrap();
    rocmforge::passes::compile(graph, Default::default())
        .unwrap()
        .graph
}

/// The kernels `g` needs on both vendors' GPUs (they must agree on labels).
fn sources(g: &Graph) -> BTreeMap<String, KernelSource> {
    let mut all = BTreeMap::new();
    for vendor in [Vendor::Cuda, Vendor::Hip] {
        let opts = PlanOptions {
            page_size: 16,
            vendor,
            kv: Default::default(),
        };
        all.extend(kernel_sources(g, &opts).unwrap());
    }
    all
}

fn with(s: &BTreeMap<String, KernelSource>, part: &str) -> Vec<String> {
    s.keys().filter(|l| l.contains(part)).cloned().collect()
}

#[test]
fn gemma3_gets_a_rope_per_base_head_norms_geglu_and_both_attentions() {
    let g = compiled(TinySpec {
        arch: TinyArch::Gemma3,
        n_layers: 6,
        window: Some(8),
        ..TinySpec::default()
    });
    let s = sources(&g);
    // Local layers rotate with base 1e4, the global layer with the file's 1e6.
    for label in [
        "rope_h4_d64_neox_b10000",
        "rope_h4_d64_neox_b1000000",
        "rope_h2_d64_neox_b10000",
        "rope_h2_d64_neox_b1000000",
        "head_rms_norm_h4_d64",
        "head_rms_norm_h2_d64",
        "attention_h4_kv2_d64_p16",
        "attention_h4_kv2_d64_p16_w8",
    ] {
        assert!(s.contains_key(label), "{label}: {:?}", s.keys());
    }
    let geglu = with(&s, "_geglu");
    assert!(
        !geglu.is_empty() && with(&s, "_swiglu").is_empty(),
        "{geglu:?}"
    );
    for l in &geglu {
        assert_eq!(s[l].defines["EPI_GEGLU"], "1", "{l}");
        assert_eq!(s[l].defines["EPI_SWIGLU"], "1", "{l}");
    }
    // The embedding scale and the post-norm residual adds: element-wise.
    assert!(s.contains_key("elementwise"));
    assert!(g
        .node_ids()
        .any(|id| matches!(g.node(id).op, Op::Scale { .. })));
}

#[test]
fn gemma2_soft_caps_reach_the_attention_and_the_logits() {
    let g = compiled(TinySpec {
        arch: TinyArch::Gemma2,
        window: Some(4),
        ..TinySpec::default()
    });
    let s = sources(&g);
    let capped = with(&s, "attention_");
    assert!(!capped.is_empty());
    for l in &capped {
        let cap = g
            .node_ids()
            .find_map(|id| match g.node(id).op {
                Op::Attention(a) => a.softcap,
                _ => None,
            })
            .unwrap();
        assert!(l.contains(&format!("_cap{cap}")), "{l}");
        assert_eq!(
            s[l].defines["SOFTCAP_BITS"],
            format!("0x{:08x}u", cap.to_bits())
        );
    }
    let logits = g.output("logits").unwrap();
    assert!(matches!(g.node(logits).op, Op::SoftCap { .. }));
    assert!(s["elementwise"].entries.contains(&"softcap_kernel"));
}

#[test]
fn qwen3_norms_each_head_then_rotates_it() {
    let g = compiled(TinySpec {
        arch: TinyArch::Qwen3,
        ..TinySpec::default()
    });
    let s = sources(&g);
    for label in [
        "head_rms_norm_h4_d64",
        "head_rms_norm_h2_d64",
        "rope_h4_d64_neox_b10000",
        "rope_h2_d64_neox_b10000",
        "kv_store_d128_h64_p16",
    ] {
        assert!(s.contains_key(label), "{label}: {:?}", s.keys());
    }
}

#[test]
fn phi3_longrope_takes_its_factors_and_attn_factor_in_the_qkv_epilogue() {
    let g = compiled(TinySpec {
        arch: TinyArch::Phi3,
        longrope: Some(256),
        ..TinySpec::default()
    });
    let attn_factor = g
        .node_ids()
        .find_map(|id| match &g.node(id).op {
            Op::MatMul(m) => m.epilogue.iter().find_map(|e| match e {
                rocmforge::ir::Epilogue::Rope { spec, .. } => match spec.scaling {
                    RopeScaling::LongRope { attn_factor } => Some(attn_factor),
                    _ => None,
                },
                _ => None,
            }),
            _ => None,
        })
        .expect("the qkv matmul rotates with LongRoPE");
    let s = sources(&g);
    let qkv = with(&s, "_rope_freqs_mscale_kv");
    assert!(!qkv.is_empty(), "{:?}", s.keys());
    for l in &qkv {
        assert_eq!(s[l].defines["ROPE_FREQS"], "1");
        assert_eq!(
            s[l].defines["ROPE_MSCALE_BITS"],
            format!("0x{:08x}u", attn_factor.to_bits())
        );
    }
    // The fused gate|up matrix (one segment of 2·ffn rows) with SwiGLU.
    let gate_up = with(&s, "x1024_rms_swiglu");
    assert!(!gate_up.is_empty(), "{:?}", s.keys());
    assert!(g.node_ids().all(|id| !matches!(g.node(id).op, Op::Silu)));
}

#[test]
fn yarn_reaches_the_qkv_epilogue_with_the_cpus_correction_range() {
    for arch in [TinyArch::Qwen2, TinyArch::Llama] {
        let g = compiled(TinySpec {
            arch,
            yarn: Some((4.0, 64)),
            ..TinySpec::default()
        });
        let spec = g
            .node_ids()
            .find_map(|id| match &g.node(id).op {
                Op::MatMul(m) => m.epilogue.iter().find_map(|e| match e {
                    rocmforge::ir::Epilogue::Rope { spec, .. } => Some(*spec),
                    _ => None,
                }),
                _ => None,
            })
            .expect("a fused rope");
        let [lo, hi] = spec.yarn_corr_dims().unwrap();
        let s = sources(&g);
        let qkv = with(&s, "_rope_mscale_yarn_kv");
        assert!(!qkv.is_empty(), "{arch}: {:?}", s.keys());
        let bits = |v: f32| format!("0x{:08x}u", v.to_bits());
        for l in &qkv {
            let d = &s[l].defines;
            assert_eq!(d["ROPE_YARN"], "1");
            assert_eq!(d["ROPE_YARN_LOW_BITS"], bits(lo));
            assert_eq!(d["ROPE_YARN_HIGH_BITS"], bits(hi));
            assert_eq!(d["ROPE_MSCALE_BITS"], bits(1.0 + 0.1 * 4f32.ln()));
            assert_eq!(d["ROPE_FREQ_SCALE_BITS"], bits(0.25));
        }
    }
}
