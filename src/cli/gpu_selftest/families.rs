//! The kernels the Gemma 2/3, Qwen3 and Phi-3 families and the YaRN and
//! LongRoPE scalings add, against the CPU backend: the unary ops (GELU,
//! scale, soft-cap), the per-head Q/K RMSNorm, the standalone RoPE and the
//! QKV epilogue's RoPE under each scaling, the GeGLU epilogue and SwiGLU
//! over one fused gate|up matrix, and attention with a soft-cap and at
//! Gemma's head size 256. Every case name starts with "families:".

use super::cases::{matmul_args, operands, qkv_spec, reference_rows, step_tokens, variant_name};
use super::steps::{f16_cache_row, filled_cache, Places};
use super::{matmul_tol, rel_err, Check, Res, Suite, F16_TOL, F32_TOL};
use rocmforge::backend::{DeviceBuffer, DevicePtr};
use rocmforge::codegen::elementwise::{self as ew, RopeArgs, UnaryOp};
use rocmforge::codegen::{
    AttentionArgs, AttentionKernelSpec, KvLayout, MatMulSpec, MatMulVariant, RopeEpilogue, RowOp,
    Segment,
};
use rocmforge::exec::cpu;
use rocmforge::ir::{RopeScaling, RopeSpec, RopeStyle};
use rocmforge::quant::GgmlType;

const PAGE: usize = 16;

pub fn all(s: &mut Suite) {
    s.case("families: gelu, scale, softcap (elementwise)", unary);
    for (hd, heads, pad, in_place) in [
        (128, 16, 0, false),
        (256, 4, 0, true),
        (256, 1, 1280, false),
        (64, 6, 64, true),
    ] {
        s.case(
            &format!(
                "families: head_rms_norm d{hd} x{heads}{}{}",
                if pad > 0 { " strided" } else { "" },
                if in_place { " in place" } else { "" }
            ),
            |s| head_norm(s, hd, heads, pad, in_place),
        );
    }
    for (name, case) in rope_cases() {
        s.case(&format!("families: rope standalone {name}"), |s| {
            rope_standalone(s, &case)
        });
    }
    let by_size = |t: usize| MatMulVariant::for_tokens(t as u32);
    let sizes: Vec<(usize, MatMulVariant)> = [1, 3, 40, 150]
        .iter()
        .map(|&t| (t, by_size(t)))
        .chain([
            (2, MatMulVariant::Narrow { tokens: 16 }),
            (29, MatMulVariant::Narrow { tokens: 32 }),
            (
                6,
                MatMulVariant::Fragment {
                    tokens: 8,
                    tiles: 2,
                    pipe: true,
                },
            ),
            (
                29,
                MatMulVariant::Fragment {
                    tokens: 32,
                    tiles: 2,
                    pipe: false,
                },
            ),
        ])
        .collect();
    for scaling in ["yarn", "longrope"] {
        for &(t, v) in &sizes {
            s.case(
                &format!(
                    "families: qkv rms+bias+rope({scaling})+kv T={t} {}",
                    variant_name(v)
                ),
                |s| qkv_scaled(s, scaling, t, v),
            );
        }
    }
    for &(t, v) in &sizes {
        s.case(
            &format!("families: gate_up rms+geglu T={t} {}", variant_name(v)),
            |s| gated(s, true, false, t, v),
        );
        s.case(
            &format!(
                "families: fused gate|up (one matrix) rms+swiglu T={t} {}",
                variant_name(v)
            ),
            |s| gated(s, false, true, t, v),
        );
    }
    for (hd, softcap, window) in [
        (64, None, None),
        (64, Some(50.0), None),
        (64, Some(20.0), Some(40)),
        (256, None, Some(40)),
        (256, Some(50.0), None),
    ] {
        let what = format!(
            "head_dim {hd}{}{}",
            softcap.map_or(String::new(), |c| format!(" softcap {c}")),
            window.map_or(String::new(), |w| format!(" window {w}"))
        );
        for prefill in [false, true] {
            let kernel = if prefill { "prefill" } else { "decode" };
            s.case(
                &format!("families: attention {kernel} kernel, mixed step, {what}"),
                |s| attention(s, hd, softcap, window, prefill),
            );
        }
    }
}

/// GELU, scale and soft-cap over 7 rows of 300, the soft-cap's inputs
/// reaching past its bend, the scale in place.
fn unary(s: &mut Suite) -> Res<Check> {
    let n = 7 * 300;
    let x = s.rng.vec(n, -6.0, 6.0);
    let big = s.rng.vec(n, -120.0, 120.0);
    let src = ew::binary_source();
    let ops = [
        (UnaryOp::Gelu, &x, false),
        (UnaryOp::Scale(8.0), &x, true),
        (UnaryOp::SoftCap(30.0), &big, false),
    ];
    let mut check: Option<Check> = None;
    for (op, input, in_place) in ops {
        let want: Vec<f32> = input
            .iter()
            .map(|&v| match op {
                UnaryOp::Gelu => cpu::gelu_tanh(v),
                UnaryOp::Scale(c) => v * c,
                UnaryOp::SoftCap(c) => cpu::softcap(v, c),
                UnaryOp::Silu => unreachable!("not listed"),
            })
            .collect();
        let k = s.kernel(&src, op.entry())?;
        let xb = s.upload(input)?;
        let out = if in_place { None } else { Some(s.poisoned(n)?) };
        let dst = out.as_ref().unwrap_or(&xb);
        // SAFETY: both buffers hold n floats.
        unsafe { ew::launch_unary(op, &k, &s.stream, xb.ptr(), dst.ptr(), n as u64)? };
        let c = Check::new(rel_err(&s.read(dst)?, &want), F32_TOL).note(op.entry());
        check = Some(match check {
            Some(prev) => prev.and(c),
            None => c,
        });
    }
    Ok(check.expect("three ops ran"))
}

/// The per-head RMSNorm of 5 tokens' `heads` heads of `hd`, rows `pad`
/// wider than the heads (a slice of a wider value), into a fresh buffer or
/// in place.
fn head_norm(s: &mut Suite, hd: usize, heads: usize, pad: usize, in_place: bool) -> Res<Check> {
    let (t, eps) = (5, 1e-6);
    let (w, ld) = (hd * heads, hd * heads + pad);
    let x = s.rng.vec(t * ld, -3.0, 3.0);
    let g = s.rng.vec(hd, 0.5, 1.5);
    let mut want = vec![0f32; t * w];
    for r in 0..t {
        cpu::rms_norm(
            &x[r * ld..r * ld + w],
            &g,
            eps,
            &mut want[r * w..(r + 1) * w],
        );
    }
    let op = RowOp::HeadRmsNorm {
        head_dim: hd as u32,
        heads: heads as u32,
        eps,
    };
    let k = s.kernel(&op.source()?, op.entry())?;
    let (xb, gb) = (s.upload(&x)?, s.upload(&g)?);
    let out = if in_place {
        None
    } else {
        Some(s.poisoned(t * w)?)
    };
    let (dst, ldo) = out.as_ref().map_or((&xb, ld), |o| (o, w));
    // SAFETY: x holds t rows of ld, the output t rows of ldo, g hd floats.
    unsafe {
        op.launch(
            &k,
            &s.stream,
            xb.ptr(),
            ld as u32,
            gb.ptr(),
            dst.ptr(),
            ldo as u32,
            t as u32,
        )?
    };
    let all = s.read(dst)?;
    let got: Vec<f32> = (0..t)
        .flat_map(|r| all[r * ldo..r * ldo + w].to_vec())
        .collect();
    Ok(Check::new(rel_err(&got, &want), F32_TOL))
}

/// A standalone RoPE case: the spec, its heads, per-pair factors and
/// whether the input rows are wider than the heads.
struct RopeCase {
    spec: RopeSpec,
    heads: usize,
    freqs: bool,
    strided: bool,
}

fn rope_spec(head_dim: u32, base: f32, style: RopeStyle, scaling: RopeScaling) -> RopeSpec {
    RopeSpec {
        head_dim,
        n_rot: head_dim,
        base,
        style,
        scaling,
    }
}

fn rope_cases() -> Vec<(&'static str, RopeCase)> {
    use RopeStyle::{Neox, Normal};
    let case = |spec, heads, freqs, strided| RopeCase {
        spec,
        heads,
        freqs,
        strided,
    };
    let linear = RopeScaling::Linear { factor: 2.0 };
    let yarn = RopeScaling::Yarn {
        factor: 4.0,
        orig_ctx: 4096,
        beta_fast: 32.0,
        beta_slow: 1.0,
    };
    let longrope = RopeScaling::LongRope {
        attn_factor: 1.190_238_4,
    };
    vec![
        (
            "neox, linear",
            case(rope_spec(64, 1e4, Neox, linear), 4, false, false),
        ),
        (
            "normal, linear",
            case(rope_spec(64, 1e4, Normal, linear), 4, false, false),
        ),
        (
            "neox, YaRN x4 of 4096, d128",
            case(rope_spec(128, 1e6, Neox, yarn), 6, false, false),
        ),
        (
            "normal, YaRN x4 of 4096, d128",
            case(rope_spec(128, 5e5, Normal, yarn), 6, false, true),
        ),
        (
            "neox, LongRoPE factors + attn_factor, d96",
            case(rope_spec(96, 1e4, Neox, longrope), 8, true, false),
        ),
        (
            "neox, base 1e6, d256, strided (Gemma 3 global)",
            case(rope_spec(256, 1e6, Neox, RopeScaling::None), 4, false, true),
        ),
    ]
}

/// The CPU's rotation of `x` (contiguous rows of `heads` heads) by `spec`.
fn cpu_rope(
    spec: &RopeSpec,
    heads: usize,
    freqs: Option<&[f32]>,
    x: &mut [f32],
    pos: &[i32],
) -> Res<()> {
    let attn_factor = match spec.scaling {
        RopeScaling::LongRope { attn_factor } => attn_factor,
        _ => 1.0,
    };
    let p = cpu::RopeParams {
        head_dim: spec.head_dim as usize,
        n_heads: heads,
        base: spec.base,
        style: match spec.style {
            RopeStyle::Neox => cpu::RopeStyle::Neox,
            RopeStyle::Normal => cpu::RopeStyle::Normal,
        },
        freq_scale: spec.freq_scale(),
        freq_factors: freqs,
        yarn: spec
            .yarn_corr_dims()
            .map(|corr_dims| cpu::Yarn { corr_dims }),
        attn_factor,
    };
    Ok(cpu::rope_with(&p, x, pos)?)
}

/// LongRoPE-like factors: one per pair, growing from 1 to about 8.
fn pair_factors(s: &mut Suite, hd: usize) -> Vec<f32> {
    (0..hd / 2)
        .map(|i| 1.0 + 7.0 * (i as f32 / (hd / 2) as f32) + s.rng.f32(0.0, 0.1))
        .collect()
}

fn rope_standalone(s: &mut Suite, c: &RopeCase) -> Res<Check> {
    let t = 6;
    let hd = c.spec.head_dim as usize;
    let w = c.heads * hd;
    let ld = if c.strided { w + 3 * hd } else { w };
    let pos: Vec<i32> = (0..t).map(|_| s.rng.below(20_000) as i32).collect();
    let x = s.rng.vec(t * ld, -1.0, 1.0);
    let freqs = c.freqs.then(|| pair_factors(s, hd));
    let mut want: Vec<f32> = (0..t)
        .flat_map(|r| x[r * ld..r * ld + w].to_vec())
        .collect();
    cpu_rope(&c.spec, c.heads, freqs.as_deref(), &mut want, &pos)?;
    let r = RopeEpilogue::of(&c.spec, c.heads as u32, c.freqs);
    let k = s.kernel(&ew::rope_source(&r), "rope")?;
    let (xb, pb, out) = (s.upload(&x)?, s.upload(&pos)?, s.poisoned(t * w)?);
    let fb = freqs.as_ref().map(|f| s.upload(f)).transpose()?;
    let args = RopeArgs {
        x: xb.ptr(),
        ldx: ld as u32,
        out: out.ptr(),
        ldo: w as u32,
        pos: pb.ptr(),
        freqs: fb.as_ref().map_or(DevicePtr::NULL, |b| b.ptr()),
        tokens: t as u32,
    };
    // SAFETY: x holds t rows of ld, out t rows of w, pos t ids, freqs hd/2.
    unsafe { ew::launch_rope(&k, &s.stream, &args)? };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), F32_TOL))
}

/// The real model's QKV matmul (cases::qkv) with its RoPE scaled by YaRN
/// (x4 of 4,096 positions) or LongRoPE (factors, attn_factor), positions
/// far past the original context.
fn qkv_scaled(s: &mut Suite, scaling: &str, t: usize, v: MatMulVariant) -> Res<Check> {
    let mut spec = qkv_spec();
    let base = spec.rope.expect("qkv_spec has RoPE");
    let (hd, heads) = (base.head_dim, base.heads);
    let rspec = rope_spec(
        hd,
        base.base,
        RopeStyle::Neox,
        if scaling == "yarn" {
            RopeScaling::Yarn {
                factor: 4.0,
                orig_ctx: 4096,
                beta_fast: 32.0,
                beta_slow: 1.0,
            }
        } else {
            RopeScaling::LongRope {
                attn_factor: 1.190_238_4,
            }
        },
    );
    let freqs = (scaling == "longrope").then(|| pair_factors(s, hd as usize));
    spec.rope = Some(RopeEpilogue::of(&rspec, heads, freqs.is_some()));
    let kv = spec.kv.expect("qkv_spec stores K and V");
    let (n, kv_dim) = (spec.rows() as usize, kv.kv_dim as usize);
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * spec.k as usize, -1.0, 1.0);
    // Positions of up to ~10,000: the step's sequences start deep.
    let (caps, tokens) = step_tokens(t);
    let deep: Vec<(usize, usize)> = tokens.iter().map(|&(sq, p)| (sq, p * 97 + 3)).collect();
    let caps: Vec<usize> = caps.iter().map(|c| c * 97 + 4).collect();
    let pl = Places::new(&mut s.rng, PAGE, &caps, &deep);
    let mut want = reference_rows(&spec, &o, &x, t);
    let rope_w = (heads * hd) as usize;
    let mut rot: Vec<f32> = (0..t)
        .flat_map(|i| want[i * n..i * n + rope_w].to_vec())
        .collect();
    cpu_rope(&rspec, heads as usize, freqs.as_deref(), &mut rot, &pl.pos)?;
    for i in 0..t {
        want[i * n..i * n + rope_w].copy_from_slice(&rot[i * rope_w..(i + 1) * rope_w]);
    }
    let kern = s.matmul_kernel(&spec, v)?;
    let (xb, out) = (s.upload(&x)?, s.poisoned(t * n)?);
    let [pos, seq, pages] = pl.upload(s)?;
    // The f16 cache's pages: a page's key rows, then its value rows.
    let layout = KvLayout {
        types: cpu::KvTypes::default(),
        n_kv_heads: kv_dim as u32 / hd,
        head_dim: hd,
        page_size: PAGE as u32,
    };
    let mut cache = DeviceBuffer::new(&s.gpu, layout.layer_bytes(pl.n_pages))?;
    s.stream.fill_buffer_u32(&mut cache, 0x7e00_7e00)?; // f16 NaN
    let fb = freqs.as_ref().map(|f| s.upload(f)).transpose()?;
    let mut args = matmul_args(&spec, &o, &xb, &out, t);
    s.int8_scratch(&spec, v, t as u32, &mut args)?;
    (args.pos, args.seq, args.pages, args.kv) = (pos.ptr(), seq.ptr(), pages.ptr(), cache.ptr());
    args.pages_per_seq = pl.pages_per_seq as u32;
    args.freqs = fb.as_ref().map_or(DevicePtr::NULL, |b| b.ptr());
    // SAFETY: buffers sized by the spec and the page table.
    unsafe { spec.launch(&kern, &s.stream, v, s.warp, &args)? };
    let got = s.read(&out)?;
    let stored: Vec<u16> = cache.to_vec()?;
    let (mut kv_got, mut kv_want) = (Vec::new(), Vec::new());
    for (i, &(sq, p)) in deep.iter().enumerate() {
        kv_got.extend(f16_cache_row(&layout, &stored, pl.row(sq, p), kv_dim));
        kv_want.extend_from_slice(&want[i * n + kv.k_col as usize..(i + 1) * n]);
    }
    let c = Check::new(rel_err(&got, &want), matmul_tol(&spec, v)).note(variant_name(v));
    Ok(c.and(Check::new(rel_err(&kv_got, &kv_want), F16_TOL).note("kv cache")))
}

/// A gated feed-forward product (RMSNorm prologue): GeGLU over separate
/// gate and up matrices (Gemma), or SwiGLU over one matrix holding both
/// (Phi-3's `ffn_up`, gate rows first).
fn gated(s: &mut Suite, gelu: bool, one_matrix: bool, t: usize, v: MatMulVariant) -> Res<Check> {
    let (d, ff) = (896u32, 4096u32);
    let segments = if one_matrix {
        vec![Segment::unbiased(GgmlType::Q5_0, 2 * ff)]
    } else {
        vec![
            Segment::unbiased(GgmlType::Q5_0, ff),
            Segment::unbiased(GgmlType::Q5_0, ff),
        ]
    };
    let spec = MatMulSpec {
        rms_eps: Some(1e-6),
        swiglu: true,
        gelu,
        ..MatMulSpec::concatenated(d, segments)
    };
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * d as usize, -1.0, 1.0);
    let rows = reference_rows(&spec, &o, &x, t);
    let mut want = vec![0f32; t * ff as usize];
    if gelu {
        cpu::gelu_mul(&rows, ff as usize, &mut want);
    } else {
        cpu::silu_mul(&rows, ff as usize, &mut want);
    }
    let kern = s.matmul_kernel(&spec, v)?;
    let (xb, out) = (s.upload(&x)?, s.poisoned(t * ff as usize)?);
    let mut args = matmul_args(&spec, &o, &xb, &out, t);
    s.int8_scratch(&spec, v, t as u32, &mut args)?;
    // SAFETY: buffers sized by the spec.
    unsafe { spec.launch(&kern, &s.stream, v, s.warp, &args)? };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), matmul_tol(&spec, v)).note(variant_name(v)))
}

/// A mixed step (a chunk of sequence 0, a chunk of 1, one token of 2) of
/// 4 query heads over 2 kv heads of `hd`, through the decode or the
/// prefill kernel, with Gemma 2's soft-cap and a window where given.
fn attention(
    s: &mut Suite,
    hd: usize,
    softcap: Option<f32>,
    window: Option<u32>,
    prefill: bool,
) -> Res<Check> {
    let (heads, kv_heads) = (4usize, 2usize);
    let lens = [37usize, 300, 150];
    let mut tokens: Vec<(usize, usize)> = (10..37).map(|p| (0, p)).collect();
    tokens.extend((280..300).map(|p| (1, p)));
    tokens.push((2, 149));
    let t = tokens.len();
    let pl = Places::new(&mut s.rng, PAGE, &lens, &tokens);
    let cache = filled_cache(
        &mut s.rng,
        &pl,
        &lens,
        kv_heads,
        hd,
        cpu::KvTypes::default(),
    )?;
    let spec = AttentionKernelSpec {
        n_heads: heads as u32,
        n_kv_heads: kv_heads as u32,
        head_dim: hd as u32,
        // Scores of several units, so that a cap of 20-50 bends them.
        scale: 8.0 / (hd as f32).sqrt(),
        window,
        page_size: PAGE as u32,
        kv: cpu::KvTypes::default(),
        softcap,
    };
    let q = s.rng.vec(t * heads * hd, -1.0, 1.0);
    let mut want = vec![0f32; t * heads * hd];
    let shape = cpu::AttentionShape {
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim: hd,
        scale: spec.scale,
        sliding_window: window.map(|w| w as usize),
        softcap,
    };
    let places = cpu::TokenPlaces {
        positions: &pl.pos,
        seq_ids: &pl.seq,
        page_table: &pl.pages,
        pages_per_seq: pl.pages_per_seq,
    };
    cpu::attention_with(
        cpu::SimdPath::detect(),
        &shape,
        &q,
        &cache.cpu,
        0,
        &places,
        &mut want,
    )?;
    let src = spec.source()?;
    let (qb, kvb, out) = (
        s.upload(&q)?,
        s.upload(&cache.gpu)?,
        s.poisoned(t * heads * hd)?,
    );
    let [pos, seq, pages] = pl.upload(s)?;
    let max_chunks = spec.chunks_for(300);
    let scratch = DeviceBuffer::new(&s.gpu, spec.scratch_bytes(t as u32, max_chunks))?;
    let args = AttentionArgs {
        q: qb.ptr(),
        ldq: (heads * hd) as u32,
        kv: kvb.ptr(),
        pos: pos.ptr(),
        seq: seq.ptr(),
        pages: pages.ptr(),
        pages_per_seq: pl.pages_per_seq as u32,
        out: out.ptr(),
        ldo: (heads * hd) as u32,
        tokens: t as u32,
        scratch: scratch.ptr(),
        max_chunks,
    };
    let combine = s.kernel(&src, "attn_combine")?;
    if prefill {
        let k = s.kernel(&src, "attn_prefill")?;
        // SAFETY: buffers sized as the kernel's contract, one split.
        unsafe { spec.launch_prefill(&k, &combine, &s.stream, &args, 1)? };
    } else {
        let k = s.kernel(&src, "attn_decode")?;
        // SAFETY: as above; scratch sized by scratch_bytes.
        unsafe { spec.launch_decode(&k, &combine, &s.stream, &args)? };
    }
    let path = if prefill && spec.flash_prefill(s.gpu.info().vendor) {
        "flash"
    } else if prefill {
        "staged"
    } else {
        "split-K"
    };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), F16_TOL).note(format!("T={t} {path}")))
}
