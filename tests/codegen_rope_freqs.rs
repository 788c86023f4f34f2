//! RoPE frequency factors (`rope_freqs.weight`, Llama 3.1) on the GPU path:
//! `rfc synth tiny --rope-freqs` writes them, and code generation passes
//! them to the fused QKV matmul's RoPE epilogue (`ROPE_FREQS`) instead of
//! refusing the model; a model without them gets the same kernel sources
//! as before (`ROPE_FREQS` defined nowhere). GPU vs CPU: `rfc gpu-check`
//! (docs/PERFORMANCE.md); every template compiles with it in
//! tests/backend_kernels_compile.rs.

use rocmforge::codegen::plan::{kernel_sources, PlanOptions};
use rocmforge::gguf::GgufFile;
use rocmforge::ir::DimEnv;
use rocmforge::quant::GgmlType;
use rocmforge::synth::{TinyArch, TinySpec};

fn tiny(rope_freqs: bool) -> GgufFile {
    let spec = TinySpec {
        d_model: 128,
        n_heads: 2,
        n_kv_heads: 1,
        rope_freqs,
        ..TinySpec::for_type(TinyArch::Llama, GgmlType::Q8_0)
    };
    GgufFile::from_bytes(spec.to_bytes(3).unwrap()).unwrap()
}

/// Every kernel source of the compiled model, as (label, text).
fn sources(file: &GgufFile) -> Vec<(String, String)> {
    let (_, graph) = rocmforge::frontend::build_graph(file).unwrap();
    let env = DimEnv {
        tokens: 64,
        rows: 1,
        seqs: 1,
        pages: 16,
        kv_len: 256,
    };
    let compiled = rocmforge::passes::compile(graph, env).unwrap();
    kernel_sources(&compiled.graph, &PlanOptions::default())
        .unwrap()
        .into_iter()
        .map(|(label, src)| (label, src.text()))
        .collect()
}

#[test]
fn synth_writes_half_a_head_of_positive_frequency_factors() {
    let file = tiny(true);
    let t = file.tensor("rope_freqs.weight").unwrap();
    assert_eq!(t.info.dims, vec![32]);
    assert_eq!(t.ty(), GgmlType::F32);
    let values: Vec<f32> = t
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(values.iter().all(|&f| f > 0.5 && f < 5.0), "{values:?}");
    assert!(tiny(false).tensor("rope_freqs.weight").is_err());
}

#[test]
fn the_qkv_epilogue_reads_the_frequency_factors() {
    let rope: Vec<_> = sources(&tiny(true))
        .into_iter()
        .filter(|(_, text)| text.contains("#define EPI_ROPE 1"))
        .collect();
    // One fused QKV matmul: every variant, the int8 passes its short
    // quantized rows take, the narrow product's token tiles and (NVIDIA,
    // the default options' vendor) the fragment product's.
    use rocmforge::codegen::matmul::{
        FRAG_VARIANTS, MATMUL_VARIANTS, NARROW_TOKENS, Q8_PASS_TOKENS,
    };
    assert_eq!(
        rope.len(),
        MATMUL_VARIANTS.len() + Q8_PASS_TOKENS.len() + NARROW_TOKENS.len() + FRAG_VARIANTS.len(),
        "one fused QKV matmul"
    );
    for (label, text) in rope {
        assert!(label.contains("_rope_freqs"), "{label}");
        assert!(text.contains("#define ROPE_FREQS 1"), "{label}");
    }
}

#[test]
fn a_model_without_frequency_factors_gets_no_rope_freqs_define() {
    assert!(sources(&tiny(false))
        .iter()
        .all(|(label, text)| !text.contains("#define ROPE_FREQS 1") && !label.contains("freqs")));
}
