//! Every kernel template, specialized for representative shapes and every
//! weight type, compiles through the runtime compilers available here:
//! Debian's hiprtc (ROCm 5.2, in libamdhip64.so.5) for gfx1030 — it runs
//! without a GPU but aborts on gfx11, which scripts/ci-gfx1100.sh covers
//! offline — and NVRTC for sm_90 when `RFC_NVRTC_LIB` names a libnvrtc.
//! The hiprtc part skips without the library and fails under CI=true.

mod common;

use rocmforge::backend::{BackendError, RtcApi, Vendor};
use rocmforge::codegen::elementwise::{binary_source, rope_source};
use rocmforge::codegen::{
    AttentionKernelSpec, ExpertsSpec, KernelCache, KernelSource, KvEpilogue, KvLayout, KvStoreSpec,
    MatMulSpec, MatMulVariant, RopeEpilogue, RouterSpec, RowOp, Segment, Target, GPU_TYPES,
};
use rocmforge::exec::cpu::{KvType, KvTypes};
use rocmforge::quant::GgmlType;

fn plain(k: u32, segments: Vec<Segment>) -> MatMulSpec {
    MatMulSpec {
        k,
        segments,
        rms_eps: None,
        rope: None,
        kv: None,
        swiglu: false,
        gelu: false,
        residual: false,
        f16_tiles: false,
    }
}

fn seg(ty: GgmlType, rows: u32, bias: bool) -> Segment {
    Segment { ty, rows, bias }
}

/// One source of every template and epilogue combination, and every type.
fn sources() -> Vec<KernelSource> {
    let mut out = vec![binary_source()];
    let rope = RopeEpilogue::plain(64, 16, true, 1e6);
    // YaRN's ramp and magnitude; LongRoPE's factors and attn_factor.
    let yarn = RopeEpilogue {
        freq_scale: 0.25,
        mscale: 1.138_629_4,
        yarn: Some([9.0, 23.0]),
        ..rope
    };
    let longrope = RopeEpilogue {
        freqs: true,
        mscale: 1.190_238_4,
        ..rope
    };
    out.push(rope_source(&rope));
    out.push(rope_source(&RopeEpilogue {
        neox: false,
        head_dim: 128,
        ..rope
    }));
    out.push(rope_source(&yarn));
    out.push(rope_source(&longrope));
    for (head_dim, heads) in [(128, 16), (256, 4)] {
        let op = RowOp::HeadRmsNorm {
            head_dim,
            heads,
            eps: 1e-6,
        };
        out.push(op.source().unwrap());
    }
    let mut qkv = plain(
        896,
        vec![
            seg(GgmlType::Q5_0, 896, true),
            seg(GgmlType::Q5_0, 128, true),
            seg(GgmlType::Q8_0, 128, true),
        ],
    );
    qkv.rms_eps = Some(1e-6);
    qkv.rope = Some(rope);
    qkv.kv = Some(KvEpilogue {
        k_col: 896,
        v_col: 1024,
        kv_dim: 128,
        page_size: 16,
    });
    let mut gu = plain(
        896,
        vec![
            seg(GgmlType::Q4_K, 4864, false),
            seg(GgmlType::Q4_K, 4864, false),
        ],
    );
    gu.k = 1024;
    gu.rms_eps = Some(1e-5);
    gu.swiglu = true;
    let mut down = plain(4864, vec![seg(GgmlType::Q6_K, 896, false)]);
    down.residual = true;
    // Llama-3.1-style frequency factors in the RoPE epilogue.
    let mut qkv_freqs = qkv.clone();
    qkv_freqs.rope = Some(RopeEpilogue {
        freqs: true,
        neox: false,
        ..rope
    });
    let mut qkv_yarn = qkv.clone();
    qkv_yarn.rope = Some(yarn);
    let mut qkv_longrope = qkv.clone();
    qkv_longrope.rope = Some(longrope);
    let mut geglu = gu.clone();
    geglu.gelu = true;
    let mut specs = vec![qkv, qkv_freqs, qkv_yarn, qkv_longrope, gu, geglu, down];
    for ty in GPU_TYPES {
        specs.push(plain(1024, vec![seg(ty, 64, false)]));
        out.push(
            RowOp::Embed {
                ty,
                dim: 1024,
                vocab: 1000,
            }
            .source()
            .unwrap(),
        );
    }
    // Large enough for the int8-input matvec (matvec_q8.hip).
    for ty in GPU_TYPES.into_iter().filter(|t| t.block_len() > 1) {
        let spec = plain(1024, vec![seg(ty, 4096, false)]);
        let v = MatMulVariant::Vector { tokens: 1 };
        assert!(spec.quantizes_input(v), "{} takes matvec_q8", ty.name());
        out.push(spec.source(v).unwrap());
    }
    for spec in &specs {
        // Tiled 64: weights decoded in the tiles; 128: repacked per step.
        for v in [
            MatMulVariant::Vector { tokens: 1 },
            MatMulVariant::Vector { tokens: 4 },
            MatMulVariant::Tiled { tokens: 64 },
            MatMulVariant::Tiled { tokens: 128 },
        ] {
            out.push(spec.source(v).unwrap());
        }
    }
    // Every prefill key tile: 32 keys up to head_dim 128, 16 at 256; the
    // soft-cap in the flash and the staged prefill.
    for (hd, window, softcap) in [
        (64, None, None),
        (80, None, None),
        (96, Some(64), None),
        (128, Some(4096), Some(50.0)),
        (256, None, None),
        (256, Some(512), Some(50.0)),
    ] {
        let a = AttentionKernelSpec {
            n_heads: 14,
            n_kv_heads: 2,
            head_dim: hd,
            scale: 0.125,
            window,
            page_size: 16,
            kv: KvTypes::default(),
            softcap,
        };
        out.push(a.source().unwrap());
    }
    out.extend(kv_cache_sources());
    out.push(
        RowOp::RmsNorm {
            dim: 896,
            eps: 1e-6,
        }
        .source()
        .unwrap(),
    );
    out.push(RowOp::GatherRows { dim: 896 }.source().unwrap());
    out.push(RowOp::Argmax { n: 151_936 }.source().unwrap());
    // Mixture of experts: Mixtral's and Qwen3-MoE's routers, the experts
    // of every weight type (Q6_K down under Q4_K gate/up, as files mix them).
    for (n_expert, top_k) in [(8, 2), (128, 8)] {
        out.push(RouterSpec { n_expert, top_k }.source().unwrap());
    }
    for ty in GPU_TYPES {
        let down = if ty == GgmlType::Q4_K {
            GgmlType::Q6_K
        } else {
            ty
        };
        let e = ExpertsSpec {
            d: 1024,
            ff: 512,
            n_expert: 8,
            top_k: 2,
            gate: ty,
            up: ty,
            down,
        };
        out.push(e.source().unwrap());
    }
    out
}

/// Attention and the KV store for every cache type (each as keys and as
/// values), at heads with the keys' rotation over 64, over 128 (values
/// over 64), over 256 and without one (96).
fn kv_cache_sources() -> Vec<KernelSource> {
    let mut out = Vec::new();
    for (i, k) in KvType::ALL.into_iter().enumerate() {
        let v = KvType::ALL[(i + 3) % KvType::ALL.len()];
        for hd in [64, 96, 128, 256] {
            let types = KvTypes { k, v };
            if types.fit(hd as usize).is_err() {
                continue;
            }
            let a = AttentionKernelSpec {
                n_heads: 8,
                n_kv_heads: 2,
                head_dim: hd,
                scale: 0.125,
                window: None,
                page_size: 16,
                kv: types,
                softcap: None,
            };
            out.push(a.source().unwrap());
            let layout = KvLayout {
                types,
                n_kv_heads: 2,
                head_dim: hd,
                page_size: 16,
            };
            out.push(KvStoreSpec { layout }.source().unwrap());
        }
    }
    out
}

/// The NVIDIA-only sources: K-quant matrices on the f16 tiles
/// (matmul_f16k.hip), every type they read, square and tall tiles, with
/// the epilogues of gate|up, down and a qkv.
fn nvidia_sources() -> Vec<KernelSource> {
    let t128 = MatMulVariant::Tiled { tokens: 128 };
    let mut gu = plain(
        1024,
        vec![
            seg(GgmlType::Q4_K, 4096, false),
            seg(GgmlType::Q5_K, 4096, false),
        ],
    );
    gu.rms_eps = Some(1e-5);
    gu.swiglu = true;
    let mut down = plain(4864, vec![seg(GgmlType::Q6_K, 896, false)]);
    down.residual = true;
    let mut qkv = plain(
        4096,
        vec![
            seg(GgmlType::Q4_K, 4096, false),
            seg(GgmlType::Q6_K, 1024, false),
            seg(GgmlType::Q3_K, 1024, false),
        ],
    );
    qkv.rms_eps = Some(1e-5);
    qkv.rope = Some(RopeEpilogue::plain(128, 40, false, 5e5));
    qkv.kv = Some(KvEpilogue {
        k_col: 4096,
        v_col: 5120,
        kv_dim: 1024,
        page_size: 16,
    });
    let mut out = Vec::new();
    for spec in [gu, down, qkv] {
        let spec = spec.with_f16_tiles(Vendor::Cuda);
        assert!(spec.takes_f16_tiles(t128), "{}", spec.label(t128));
        out.push(spec.source(t128).unwrap());
        if spec.has_tall() {
            out.push(spec.source(MatMulVariant::TiledTall).unwrap());
        }
    }
    out
}

/// Compiles every source; returns the failures' messages.
fn compile_all(rtc: &RtcApi, target: &Target) -> Vec<String> {
    let cache = KernelCache::new(None);
    let mut all = sources();
    if target.vendor() == Vendor::Cuda {
        all.extend(nvidia_sources());
    }
    all.iter()
        .filter_map(|src| {
            cache
                .code_object(rtc, target, src)
                .err()
                .map(|e| format!("{}: {e}", src.label))
        })
        .collect()
}

#[test]
fn every_template_compiles_with_hiprtc_for_gfx1030() {
    let rtc = match RtcApi::load(Vendor::Hip) {
        Ok(r) => r,
        Err(e @ BackendError::LibraryNotFound { .. }) => {
            common::require::<()>(&format!("hiprtc ({e})"), None);
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let failures = compile_all(&rtc, &Target::parse("gfx1030").unwrap());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_template_compiles_with_nvrtc_for_sm90_when_available() {
    if std::env::var_os("RFC_NVRTC_LIB").is_none() {
        eprintln!("SKIPPED: RFC_NVRTC_LIB does not name a libnvrtc");
        return;
    }
    let rtc = RtcApi::load(Vendor::Cuda).unwrap();
    // sm_86 too: the f16 tiles' stages are smaller where blocks take 99 KiB.
    for arch in ["sm_90", "sm_86"] {
        let failures = compile_all(&rtc, &Target::parse(arch).unwrap());
        assert!(failures.is_empty(), "{arch}: {}", failures.join("\n\n"));
    }
}

#[test]
fn a_compile_error_carries_the_kernel_name_and_the_log() {
    let Ok(rtc) = RtcApi::load(Vendor::Hip) else {
        eprintln!("SKIPPED: no hiprtc");
        return;
    };
    let src = RowOp::RmsNorm {
        dim: 640,
        eps: 1e-6,
    }
    .source()
    .unwrap()
    .define("NORM_D", "(640");
    let err = KernelCache::new(None)
        .code_object(&rtc, &Target::parse("gfx1030").unwrap(), &src)
        .unwrap_err();
    match err {
        BackendError::Compile { kernel, log, .. } => {
            assert_eq!(kernel, src.label);
            assert!(log.contains("error"), "{log}");
        }
        other => panic!("expected a compile error, got {other}"),
    }
}
