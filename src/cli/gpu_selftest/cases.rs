//! The correctness cases: each kernel against the CPU backend.

use super::steps::{f16_cache_row, filled_cache, Places};
use super::{
    dequantized, matmul_tol, random_weights, ref_matmul, rel_err, Check, Res, Suite, F16_TOL,
    F32_TOL,
};
use rocmforge::backend::{Capture, DeviceBuffer, DevicePtr};
use rocmforge::codegen::elementwise as ew;
use rocmforge::codegen::{
    AttentionArgs, AttentionKernelSpec, KvEpilogue, KvLayout, MatMulArgs, MatMulSpec,
    MatMulVariant, RopeEpilogue, RowOp, Segment, GPU_TYPES,
};
use rocmforge::exec::cpu;
use rocmforge::quant::GgmlType;

/// Qwen2.5-0.5B's shapes.
pub const D: usize = 896;
pub const HEADS: usize = 14;
pub const KV_HEADS: usize = 2;
pub const HD: usize = 64;
pub const EPS: f32 = 1e-6;
pub const BASE: f32 = 1_000_000.0;
pub const PAGE: usize = 16;

pub fn all(s: &mut Suite) {
    for ty in GPU_TYPES {
        s.case(&format!("embed {}", ty.name()), |s| embed(s, ty));
    }
    s.case("rms_norm d896", rms_norm);
    for ty in GPU_TYPES {
        for (t, v) in [
            (1, MatMulVariant::Vector { tokens: 1 }),
            (3, MatMulVariant::Vector { tokens: 4 }),
            (7, MatMulVariant::Vector { tokens: 8 }),
            (21, MatMulVariant::Vector { tokens: 16 }),
            (37, MatMulVariant::Tiled { tokens: 32 }),
            (70, MatMulVariant::Tiled { tokens: 64 }),
            (150, MatMulVariant::Tiled { tokens: 128 }),
        ] {
            s.case(
                &format!("matmul {} T={t} {}", ty.name(), variant_name(v)),
                |s| plain_matmul(s, ty, t, v),
            );
        }
    }
    for ty in GPU_TYPES.into_iter().filter(|t| t.block_len() > 1) {
        s.case(
            &format!("matmul {} T=1 large (int8 input)", ty.name()),
            |s| large_matvec(s, ty),
        );
        // Several tokens per pass on int8 input terms (a pass cut short by
        // the step's end, and two passes).
        for (t, n) in [(2, 2), (3, 4), (13, 8)] {
            let v = MatMulVariant::VectorQ8 { tokens: n };
            s.case(
                &format!("matmul {} T={t} {}", ty.name(), variant_name(v)),
                |s| plain_matmul(s, ty, t, v),
            );
        }
    }
    // Inputs far beyond f16's range (65504): the tiled kernel scales each
    // token's row by a power of two before its f16 staging.
    s.case("matmul Q4_K T=70 tiled/64, |x| up to 1e6", |s| {
        scaled_matmul(
            s,
            GgmlType::Q4_K,
            70,
            MatMulVariant::Tiled { tokens: 64 },
            1e6,
        )
    });
    // Per-16 and per-32 scale groups in one kernel (Llama-3 Q4_K_M's q, k
    // Q4_K and v Q6_K): blocks of only 32-group rows, of only Q6_K rows,
    // and one that holds both.
    for (t, v) in [
        (70, MatMulVariant::Tiled { tokens: 64 }),
        (150, MatMulVariant::Tiled { tokens: 128 }),
    ] {
        s.case(
            &format!("matmul Q4_K|Q6_K|Q4_K T={t} {}", variant_name(v)),
            |s| mixed_groups_matmul(s, [128, 96, 96], t, v),
        );
    }
    // The same at Llama-3-8B's qkv rows (4096 | 1024 | 1024): the 128 x 128
    // tiles and the 64 x 192 ones, past the last token tile.
    for v in [
        MatMulVariant::Tiled { tokens: 128 },
        MatMulVariant::TiledTall,
    ] {
        s.case(
            &format!("matmul Q4_K|Q6_K|Q4_K x6144 T=150 {}", variant_name(v)),
            |s| mixed_groups_matmul(s, [4096, 1024, 1024], 150, v),
        );
    }
    // K-quant weights as f16 sc·q (NVIDIA's 128-token tiles): each type,
    // narrow and wide tiles, Llama-3-8B's qkv mix in the square and the
    // tall tile, super-blocks whose scale is zero, tiny or large next to
    // their neighbours', inputs far beyond f16's range and far below it.
    use GgmlType::{Q3_K, Q4_K, Q5_K, Q6_K};
    let t128 = MatMulVariant::Tiled { tokens: 128 };
    let f16_cases: [F16Case; 11] = [
        ("Q4_K", &[(Q4_K, 96)], t128, 1.0, false),
        ("Q5_K", &[(Q5_K, 96)], t128, 1.0, false),
        ("Q6_K", &[(Q6_K, 96)], t128, 1.0, false),
        ("Q3_K", &[(Q3_K, 96)], t128, 1.0, false),
        (
            "Q4_K|Q6_K|Q4_K x6144",
            &[(Q4_K, 4096), (Q6_K, 1024), (Q4_K, 1024)],
            t128,
            1.0,
            false,
        ),
        (
            "Q4_K|Q6_K|Q4_K x6144",
            &[(Q4_K, 4096), (Q6_K, 1024), (Q4_K, 1024)],
            MatMulVariant::TiledTall,
            1.0,
            false,
        ),
        (
            "Q4_K|Q5_K|Q6_K, odd super-block scales",
            &[(Q4_K, 160), (Q5_K, 64), (Q6_K, 32)],
            t128,
            1.0,
            true,
        ),
        (
            "Q4_K x4096, odd super-block scales",
            &[(Q4_K, 4096)],
            t128,
            1.0,
            true,
        ),
        (
            "Q6_K|Q3_K x4096, odd super-block scales",
            &[(Q6_K, 2048), (Q3_K, 2048)],
            t128,
            1.0,
            true,
        ),
        ("Q4_K, |x| up to 1e6", &[(Q4_K, 96)], t128, 1e6, false),
        ("Q4_K, |x| up to 1e-30", &[(Q4_K, 96)], t128, 1e-30, false),
    ];
    for (name, segs, v, amp, odd) in f16_cases {
        s.case(
            &format!("matmul {name} T=150 {} f16", variant_name(v)),
            |s| f16_tiles_matmul(s, segs, v, 150, amp, odd),
        );
    }
    let by_size = |t: usize| MatMulVariant::for_tokens(t as u32);
    let n16 = MatMulVariant::Narrow { tokens: 16 };
    let n32 = MatMulVariant::Narrow { tokens: 32 };
    let frag = |tokens, tiles, pipe| MatMulVariant::Fragment {
        tokens,
        tiles,
        pipe,
    };
    let (f8, f8p4, f16p2, f32p1, f32_) = (
        frag(8, 1, false),
        frag(8, 4, true),
        frag(16, 2, true),
        frag(32, 1, true),
        frag(32, 2, false),
    );
    // The narrow and fragment products beside each: a token tile cut
    // short, a whole one, and two tiles; the fragment product in forms
    // with 1, 2 and 4 tiles per block, pipelined or not.
    let sizes = |v: &'static [usize]| {
        v.iter().map(move |&t| (t, by_size(t))).chain([
            (2, n16),
            (16, n16),
            (29, n32),
            (37, n32),
            (3, f8),
            (8, f8p4),
            (13, f16p2),
            (29, f32p1),
            (37, f32_),
        ])
    };
    for (t, v) in sizes(&[1, 3, 40, 150]) {
        s.case(
            &format!("qkv rms+bias+rope+kv T={t} {}", variant_name(v)),
            |s| qkv(s, t, v),
        );
    }
    for (t, v) in sizes(&[1, 3, 40, 150]) {
        s.case(
            &format!("gate_up rms+swiglu T={t} {}", variant_name(v)),
            |s| gate_up(s, t, v),
        );
    }
    for ty in [GgmlType::Q6_K, GgmlType::Q4_K] {
        for (t, v) in sizes(&[1, 40, 150]) {
            s.case(
                &format!("down {} +residual T={t} {}", ty.name(), variant_name(v)),
                |s| down(s, ty, t, v),
            );
        }
    }
    // Every int8-read weight type on the narrow product (k in 128s).
    for ty in GPU_TYPES
        .into_iter()
        .filter(|&t| MatMulSpec::plain(t, 96, 512).has_narrow())
    {
        for (t, v) in [
            (5, n16),
            (21, n32),
            (5, f8),
            (21, f32_),
            (6, f8p4),
            (19, f32p1),
        ] {
            s.case(
                &format!("matmul {} T={t} {}", ty.name(), variant_name(v)),
                |s| matmul_of_rows(s, ty, 512, 96, t, v, 1.0),
            );
        }
    }
    for (t, v) in [
        (13, n16),
        (32, n32),
        (13, f16p2),
        (32, f32_),
        (9, frag(16, 4, false)),
    ] {
        s.case(
            &format!("matmul Q4_K|Q6_K|Q4_K x6144 T={t} {}", variant_name(v)),
            |s| mixed_groups_matmul(s, [4096, 1024, 1024], t, v),
        );
    }
    // The IQ/TQ/MXFP4 types beside each other and the K-quants in one
    // kernel: scale groups of 16 (IQ2_XS, IQ1_M, Q6_K) and of 32 (IQ4_XS,
    // IQ3_S, MXFP4, TQ1_0) in one block's rows; the decode matvec at T=1
    // (int8 input: 6,144 rows of 1,024), the narrow product and the tiles.
    use GgmlType::{IQ1_M, IQ2_XS, IQ3_S, IQ4_XS, MXFP4, TQ1_0};
    let mixes: [(&str, [(GgmlType, u32); 3]); 2] = [
        (
            "IQ2_XS|IQ4_XS|IQ1_M",
            [(IQ2_XS, 128), (IQ4_XS, 96), (IQ1_M, 96)],
        ),
        ("IQ3_S|Q6_K|MXFP4", [(IQ3_S, 128), (Q6_K, 96), (MXFP4, 96)]),
    ];
    for (name, segs) in mixes {
        for (t, v) in [
            (1, MatMulVariant::Vector { tokens: 1 }),
            (16, n16),
            (70, MatMulVariant::Tiled { tokens: 64 }),
            (150, MatMulVariant::Tiled { tokens: 128 }),
        ] {
            s.case(&format!("matmul {name} T={t} {}", variant_name(v)), |s| {
                segments_matmul(s, 512, &segs, t, v)
            });
        }
    }
    let wide = [(IQ4_XS, 4096), (IQ2_XS, 1024), (TQ1_0, 1024)];
    for (t, v) in [(1, MatMulVariant::Vector { tokens: 1 }), (21, n32)] {
        s.case(
            &format!("matmul IQ4_XS|IQ2_XS|TQ1_0 x6144 T={t} {}", variant_name(v)),
            |s| segments_matmul(s, 1024, &wide, t, v),
        );
    }
    for window in [None, Some(40)] {
        let w = window.map_or("".into(), |w| format!(" window {w}"));
        s.case(&format!("attention decode kernel, decode step{w}"), |s| {
            attention(s, false, false, window, None)
        });
        s.case(&format!("attention decode kernel, mixed step{w}"), |s| {
            attention(s, true, false, window, None)
        });
        // One split of up to 300 keys: several tiles in one block.
        s.case(&format!("attention decode kernel, one split{w}"), |s| {
            attention(s, false, false, window, Some(1))
        });
        s.case(&format!("attention prefill kernel, mixed step{w}"), |s| {
            attention(s, true, true, window, None)
        });
        s.case(&format!("attention prefill kernel, decode step{w}"), |s| {
            attention(s, false, true, window, None)
        });
        // Head sizes whose decode tile is not 128 keys (160 and 192).
        for hd in [80, 96] {
            s.case(
                &format!("attention decode kernel, mixed step{w}, head_dim {hd}"),
                |s| attention_hd(s, hd, true, false, window, None),
            );
            s.case(
                &format!("attention prefill kernel, mixed step{w}, head_dim {hd}"),
                |s| attention_hd(s, hd, true, true, window, None),
            );
        }
        // Keys split over blocks and merged (NVIDIA's flash kernel): splits
        // of whole tiles, some empty for the short run, more splits than
        // the long run has tiles.
        if s.gpu.info().vendor == rocmforge::backend::Vendor::Cuda {
            for n in [3, 7] {
                s.case(
                    &format!("attention prefill kernel, mixed step{w}, {n} key splits"),
                    |s| attention(s, true, true, window, Some(n)),
                );
            }
        }
    }
    s.case("gather_rows", gather_rows);
    s.case("argmax (ties -> first)", argmax);
    s.case(
        "top candidates + log-sum-exp (ties, NaN, short row)",
        top_candidates,
    );
    s.case(
        "sampler on the device's candidates (exact greedy, chi-square draws)",
        super::sampling::device_candidates,
    );
    s.case("add/mul/silu", elementwise);
    super::kv_types::all(s);
    s.case("graph capture replay = direct launches", graph_replay);
}

pub fn variant_name(v: MatMulVariant) -> String {
    v.to_string()
}

fn embed(s: &mut Suite, ty: GgmlType) -> Res<Check> {
    let (vocab, dim, t) = (50, 512, 9);
    let table = random_weights(&mut s.rng, ty, vocab, dim);
    let tokens: Vec<i32> = (0..t).map(|_| s.rng.below(vocab) as i32).collect();
    let mut want = vec![0f32; t * dim];
    cpu::embed_rows(
        &cpu::WeightMatrix::new(ty, &table, vocab, dim),
        &tokens,
        &mut want,
    )?;
    let op = RowOp::Embed {
        ty,
        dim: dim as u32,
        vocab: vocab as u32,
    };
    let k = s.kernel(&op.source()?, op.entry())?;
    let (tb, tk, out) = (s.upload(&table)?, s.upload(&tokens)?, s.poisoned(t * dim)?);
    // SAFETY: buffers of the sizes the kernel reads and writes.
    unsafe {
        op.launch(
            &k,
            &s.stream,
            tb.ptr(),
            0,
            tk.ptr(),
            out.ptr(),
            dim as u32,
            t as u32,
        )?
    };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), 1e-6))
}

fn rms_norm(s: &mut Suite) -> Res<Check> {
    rms_norm_rows(s, 5)
}

/// RMSNorm of `t` random rows against the CPU (also the faults' proof
/// that the device still computes).
pub fn rms_norm_rows(s: &mut Suite, t: usize) -> Res<Check> {
    let x = s.rng.vec(t * D, -2.0, 2.0);
    let g = s.rng.vec(D, 0.5, 1.5);
    let mut want = vec![0f32; t * D];
    cpu::rms_norm(&x, &g, EPS, &mut want);
    let op = RowOp::RmsNorm {
        dim: D as u32,
        eps: EPS,
    };
    let k = s.kernel(&op.source()?, op.entry())?;
    let (xb, gb, out) = (s.upload(&x)?, s.upload(&g)?, s.poisoned(t * D)?);
    // SAFETY: sizes as the kernel's contract.
    unsafe {
        op.launch(
            &k,
            &s.stream,
            xb.ptr(),
            D as u32,
            gb.ptr(),
            out.ptr(),
            D as u32,
            t as u32,
        )?
    };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), F32_TOL))
}

/// Device weights, biases and norm of a fused matmul, with their f32
/// reference forms.
pub(super) struct Operands {
    pub(super) w: Vec<DeviceBuffer>,
    pub(super) w_ref: Vec<Vec<f32>>,
    pub(super) bias: Vec<Option<(DeviceBuffer, Vec<f32>)>>,
    pub(super) norm: Option<(DeviceBuffer, Vec<f32>)>,
}

pub(super) fn operands(s: &mut Suite, spec: &MatMulSpec) -> Res<Operands> {
    let k = spec.k as usize;
    let mut o = Operands {
        w: vec![],
        w_ref: vec![],
        bias: vec![],
        norm: None,
    };
    for seg in &spec.segments {
        let rows = seg.rows as usize;
        let data = random_weights(&mut s.rng, seg.ty, rows, k);
        o.w_ref.push(dequantized(seg.ty, &data, rows, k)?);
        o.w.push(s.upload(&data)?);
        o.bias.push(if seg.bias {
            let b = s.rng.vec(rows, -0.5, 0.5);
            Some((s.upload(&b)?, b))
        } else {
            None
        });
    }
    if spec.rms_eps.is_some() {
        let g = s.rng.vec(k, 0.5, 1.5);
        o.norm = Some((s.upload(&g)?, g));
    }
    Ok(o)
}

/// Launch arguments for `o`, `x` and `out` (strides = widths).
pub(super) fn matmul_args(
    spec: &MatMulSpec,
    o: &Operands,
    x: &DeviceBuffer,
    out: &DeviceBuffer,
    t: usize,
) -> MatMulArgs {
    let mut a = MatMulArgs {
        x: x.ptr(),
        ldx: spec.k,
        out: out.ptr(),
        ldo: spec.out_cols(),
        ldr: spec.out_cols(),
        tokens: t as u32,
        norm: o.norm.as_ref().map_or(DevicePtr::NULL, |n| n.0.ptr()),
        ..Default::default()
    };
    for (i, w) in o.w.iter().enumerate() {
        a.w[i] = w.ptr();
        a.bias[i] = o.bias[i].as_ref().map_or(DevicePtr::NULL, |b| b.0.ptr());
    }
    a
}

/// The f32 reference of the fused matmul before RoPE/KV/SwiGLU/residual:
/// normalize (if so), multiply in f64, add biases.
pub(super) fn reference_rows(spec: &MatMulSpec, o: &Operands, x: &[f32], t: usize) -> Vec<f32> {
    let k = spec.k as usize;
    let xn = match (&o.norm, spec.rms_eps) {
        (Some((_, g)), Some(eps)) => {
            let mut xn = vec![0f32; x.len()];
            cpu::rms_norm(x, g, eps, &mut xn);
            xn
        }
        _ => x.to_vec(),
    };
    let n = spec.rows() as usize;
    let mut y = vec![0f32; t * n];
    let mut col = 0;
    for (i, seg) in spec.segments.iter().enumerate() {
        let rows = seg.rows as usize;
        let part = ref_matmul(&xn, &o.w_ref[i], t, k, rows);
        for tt in 0..t {
            for j in 0..rows {
                let b = o.bias[i].as_ref().map_or(0.0, |b| b.1[j]);
                y[tt * n + col + j] = part[tt * rows + j] + b;
            }
        }
        col += rows;
    }
    y
}

fn plain_matmul(s: &mut Suite, ty: GgmlType, t: usize, v: MatMulVariant) -> Res<Check> {
    scaled_matmul(s, ty, t, v, 1.0)
}

/// A plain matmul of inputs drawn from [-amp, amp].
fn scaled_matmul(s: &mut Suite, ty: GgmlType, t: usize, v: MatMulVariant, amp: f32) -> Res<Check> {
    let k = if ty.block_len() == 256 { 512 } else { 320 };
    matmul_of_rows(s, ty, k, 96, t, v, amp)
}

/// A one-token matvec large enough for the int8-input kernel.
fn large_matvec(s: &mut Suite, ty: GgmlType) -> Res<Check> {
    let k = if ty.block_len() == 256 { 512 } else { 320 };
    let rows = ((4usize << 20) / k).next_multiple_of(64);
    matmul_of_rows(s, ty, k, rows, 1, MatMulVariant::Vector { tokens: 1 }, 1.0)
}

fn matmul_of_rows(
    s: &mut Suite,
    ty: GgmlType,
    k: usize,
    rows: usize,
    t: usize,
    v: MatMulVariant,
    amp: f32,
) -> Res<Check> {
    let spec = MatMulSpec::plain(ty, rows as u32, k as u32);
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * k, -amp, amp);
    let input = if spec.quantizes_input(v) {
        "int8 input"
    } else {
        "f32 input"
    };
    Ok(plain_rows_check(s, &spec, &o, &x, v, t)?.note(input))
}

/// Runs `spec`'s `v` on the rows `x` of `t` tokens (no epilogue operands)
/// and compares the output with the CPU's.
fn plain_rows_check(
    s: &mut Suite,
    spec: &MatMulSpec,
    o: &Operands,
    x: &[f32],
    v: MatMulVariant,
    t: usize,
) -> Res<Check> {
    let want = reference_rows(spec, o, x, t);
    let kern = s.matmul_kernel(spec, v)?;
    let (xb, out) = (s.upload(x)?, s.poisoned(t * spec.rows() as usize)?);
    let mut args = matmul_args(spec, o, &xb, &out, t);
    s.int8_scratch(spec, v, t as u32, &mut args)?;
    // SAFETY: buffers sized by the spec.
    unsafe { spec.launch(&kern, &s.stream, v, s.warp, &args)? };
    Ok(Check::new(
        rel_err(&s.read(&out)?, &want),
        matmul_tol(spec, v),
    ))
}

/// Segments of Q4_K, Q6_K, Q4_K rows (128, 96, 96: with 64-row tiles, the
/// fourth block holds Q6_K and Q4_K rows).
fn mixed_groups_matmul(s: &mut Suite, rows: [u32; 3], t: usize, v: MatMulVariant) -> Res<Check> {
    let k = 512;
    let spec = MatMulSpec::concatenated(
        k,
        vec![
            Segment::unbiased(GgmlType::Q4_K, rows[0]),
            Segment::unbiased(GgmlType::Q6_K, rows[1]),
            Segment::unbiased(GgmlType::Q4_K, rows[2]),
        ],
    );
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * k as usize, -1.0, 1.0);
    Ok(plain_rows_check(s, &spec, &o, &x, v, t)?.note(variant_name(v)))
}

/// Segments of the given types and rows, k inputs, on `v`.
fn segments_matmul(
    s: &mut Suite,
    k: u32,
    segs: &[(GgmlType, u32)],
    t: usize,
    v: MatMulVariant,
) -> Res<Check> {
    let spec = MatMulSpec::concatenated(
        k,
        segs.iter()
            .map(|&(ty, rows)| Segment::unbiased(ty, rows))
            .collect(),
    );
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * k as usize, -1.0, 1.0);
    let input = if spec.quantizes_input(v) {
        "int8 input"
    } else {
        "f32 input"
    };
    Ok(plain_rows_check(s, &spec, &o, &x, v, t)?.note(input))
}

/// A case of the f16 tiles: name, segments (type, rows), variant, input
/// amplitude, odd super-block scales.
type F16Case = (
    &'static str,
    &'static [(GgmlType, u32)],
    MatMulVariant,
    f32,
    bool,
);

/// K-quant weight segments (k = 1,024) on the f16 tiles where the device
/// runs them. With `odd`, some super-blocks get a zero scale d (only their
/// mins count), a subnormal one or a large one, so that the accumulators'
/// unit changes by up to 2^30 between neighbours.
fn f16_tiles_matmul(
    s: &mut Suite,
    segs: &[(GgmlType, u32)],
    v: MatMulVariant,
    t: usize,
    amp: f32,
    odd: bool,
) -> Res<Check> {
    let k = 1024u32;
    let segments = segs.iter().map(|&(ty, rows)| Segment::unbiased(ty, rows));
    let spec = MatMulSpec::concatenated(k, segments.collect()).with_f16_tiles(s.gpu.info().vendor);
    let mut o = Operands {
        w: vec![],
        w_ref: vec![],
        bias: segs.iter().map(|_| None).collect(),
        norm: None,
    };
    for seg in &spec.segments {
        let n = seg.rows as usize;
        let mut data = random_weights(&mut s.rng, seg.ty, n, k as usize);
        // Where the super-block's d sits.
        let at = match seg.ty {
            GgmlType::Q3_K => 108,
            GgmlType::Q6_K => 208,
            _ => 0,
        };
        if odd {
            let bytes = seg.ty.block_bytes();
            for (b, block) in data.chunks_mut(bytes).enumerate() {
                let d: u16 = match b % 7 {
                    0 => 0x0000, // zero: the block is its mins
                    3 => 0x0003, // 1.8e-7, subnormal
                    5 => 0x5a00, // 192
                    _ => continue,
                };
                block[at..at + 2].copy_from_slice(&d.to_le_bytes());
            }
        }
        o.w_ref.push(dequantized(seg.ty, &data, n, k as usize)?);
        o.w.push(s.upload(&data)?);
    }
    let x = s.rng.vec(t * k as usize, -amp, amp);
    let note = if spec.takes_f16_tiles(v) {
        "f16 tiles"
    } else {
        "int8 tiles"
    };
    Ok(plain_rows_check(s, &spec, &o, &x, v, t)?.note(note))
}

/// Tokens of a step: `t` of them over three sequences, positions new to
/// each sequence (as a real step: prefill chunks and decode tokens).
pub fn step_tokens(t: usize) -> (Vec<usize>, Vec<(usize, usize)>) {
    let start = [5usize, 40, 17];
    let mut next = start;
    let mut tokens = Vec::new();
    for i in 0..t {
        // Runs: most tokens to sequence 0 (a prefill chunk), a few to the others.
        let s = if t <= 3 {
            i % 3
        } else if i < t - 2 {
            0
        } else {
            1 + (i - (t - 2))
        };
        tokens.push((s, next[s]));
        next[s] += 1;
    }
    (next.to_vec(), tokens)
}

/// The real model's QKV matmul: q, k (Q5_0) and v (Q8_0) with biases,
/// RMSNorm, NeoX RoPE on the 14+2 heads, and the KV store.
pub fn qkv_spec() -> MatMulSpec {
    let kv_dim = (KV_HEADS * HD) as u32;
    MatMulSpec {
        k: D as u32,
        segments: vec![
            Segment {
                ty: GgmlType::Q5_0,
                rows: (HEADS * HD) as u32,
                bias: true,
            },
            Segment {
                ty: GgmlType::Q5_0,
                rows: kv_dim,
                bias: true,
            },
            Segment {
                ty: GgmlType::Q8_0,
                rows: kv_dim,
                bias: true,
            },
        ],
        rms_eps: Some(EPS),
        rope: Some(RopeEpilogue::plain(
            HD as u32,
            (HEADS + KV_HEADS) as u32,
            true,
            BASE,
        )),
        kv: Some(KvEpilogue {
            k_col: (HEADS * HD) as u32,
            v_col: (HEADS * HD) as u32 + kv_dim,
            kv_dim,
            page_size: PAGE as u32,
        }),
        swiglu: false,
        gelu: false,
        residual: false,
        f16_tiles: false,
    }
}

fn qkv(s: &mut Suite, t: usize, v: MatMulVariant) -> Res<Check> {
    let spec = qkv_spec();
    let (n, kv_dim) = (spec.rows() as usize, (KV_HEADS * HD));
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * D, -1.0, 1.0);
    let (caps, tokens) = step_tokens(t);
    let pl = Places::new(&mut s.rng, PAGE, &caps, &tokens);
    // Reference: rows, then RoPE over the first 16 heads.
    let mut want = reference_rows(&spec, &o, &x, t);
    let rope_w = (HEADS + KV_HEADS) * HD;
    let mut heads: Vec<f32> = (0..t)
        .flat_map(|i| want[i * n..i * n + rope_w].to_vec())
        .collect();
    cpu::rope(
        &mut heads,
        &pl.pos,
        HD,
        HEADS + KV_HEADS,
        BASE,
        cpu::RopeStyle::Neox,
        1.0,
        None,
    )?;
    for i in 0..t {
        want[i * n..i * n + rope_w].copy_from_slice(&heads[i * rope_w..(i + 1) * rope_w]);
    }
    let kern = s.matmul_kernel(&spec, v)?;
    let (xb, out) = (s.upload(&x)?, s.poisoned(t * n)?);
    let [pos, seq, pages] = pl.upload(s)?;
    let layout = KvLayout {
        types: cpu::KvTypes::default(),
        n_kv_heads: KV_HEADS as u32,
        head_dim: HD as u32,
        page_size: PAGE as u32,
    };
    let mut kv = DeviceBuffer::new(&s.gpu, layout.layer_bytes(pl.n_pages))?;
    s.stream.fill_buffer_u32(&mut kv, 0x7e00_7e00)?; // f16 NaN
    let mut args = matmul_args(&spec, &o, &xb, &out, t);
    s.int8_scratch(&spec, v, t as u32, &mut args)?;
    (args.pos, args.seq, args.pages, args.kv) = (pos.ptr(), seq.ptr(), pages.ptr(), kv.ptr());
    args.pages_per_seq = pl.pages_per_seq as u32;
    // SAFETY: buffers sized by the spec and the page table.
    unsafe { spec.launch(&kern, &s.stream, v, s.warp, &args)? };
    let got = s.read(&out)?;
    let cache: Vec<u16> = kv.to_vec()?;
    let (mut kv_got, mut kv_want) = (Vec::new(), Vec::new());
    for (i, &(sq, p)) in tokens.iter().enumerate() {
        kv_got.extend(f16_cache_row(&layout, &cache, pl.row(sq, p), kv_dim));
        kv_want.extend_from_slice(&want[i * n + HEADS * HD..(i + 1) * n]);
    }
    let c = Check::new(rel_err(&got, &want), matmul_tol(&spec, v)).note(variant_name(v));
    Ok(c.and(Check::new(rel_err(&kv_got, &kv_want), F16_TOL).note("kv cache")))
}

fn gate_up(s: &mut Suite, t: usize, v: MatMulVariant) -> Res<Check> {
    // 2 x 4096 rows: wide enough for the tiled kernel's 128-row tiles.
    let ff = 4096;
    let spec = MatMulSpec {
        k: D as u32,
        segments: vec![
            Segment {
                ty: GgmlType::Q5_0,
                rows: ff,
                bias: false,
            },
            Segment {
                ty: GgmlType::Q5_0,
                rows: ff,
                bias: false,
            },
        ],
        rms_eps: Some(EPS),
        rope: None,
        kv: None,
        swiglu: true,
        gelu: false,
        residual: false,
        f16_tiles: false,
    };
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * D, -1.0, 1.0);
    let rows = reference_rows(&spec, &o, &x, t);
    let mut want = vec![0f32; t * ff as usize];
    cpu::silu_mul(&rows, ff as usize, &mut want);
    let kern = s.matmul_kernel(&spec, v)?;
    let (xb, out) = (s.upload(&x)?, s.poisoned(t * ff as usize)?);
    let mut args = matmul_args(&spec, &o, &xb, &out, t);
    s.int8_scratch(&spec, v, t as u32, &mut args)?;
    // SAFETY: buffers sized by the spec.
    unsafe { spec.launch(&kern, &s.stream, v, s.warp, &args)? };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), matmul_tol(&spec, v)).note(variant_name(v)))
}

fn down(s: &mut Suite, ty: GgmlType, t: usize, v: MatMulVariant) -> Res<Check> {
    let k = 4864;
    let spec = MatMulSpec {
        residual: true,
        ..MatMulSpec::plain(ty, D as u32, k)
    };
    let o = operands(s, &spec)?;
    let x = s.rng.vec(t * k as usize, -1.0, 1.0);
    let res = s.rng.vec(t * D, -1.0, 1.0);
    let mut want = reference_rows(&spec, &o, &x, t);
    cpu::add_in_place(&mut want, &res);
    let kern = s.matmul_kernel(&spec, v)?;
    let (xb, rb, out) = (s.upload(&x)?, s.upload(&res)?, s.poisoned(t * D)?);
    let mut args = matmul_args(&spec, &o, &xb, &out, t);
    s.int8_scratch(&spec, v, t as u32, &mut args)?;
    args.residual = rb.ptr();
    // SAFETY: buffers sized by the spec.
    unsafe { spec.launch(&kern, &s.stream, v, s.warp, &args)? };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), matmul_tol(&spec, v)).note(variant_name(v)))
}

pub fn attention_spec(window: Option<u32>) -> AttentionKernelSpec {
    AttentionKernelSpec {
        n_heads: HEADS as u32,
        n_kv_heads: KV_HEADS as u32,
        head_dim: HD as u32,
        scale: 1.0 / (HD as f32).sqrt(),
        window,
        page_size: PAGE as u32,
        kv: cpu::KvTypes::default(),
        softcap: None,
    }
}

/// A decode step (one token per sequence, at its last position) or a
/// mixed step (a chunk of sequence 0, a chunk of 1, one token of 2);
/// `splits` overrides the decode splits the context would get, or gives
/// the prefill kernel's key splits (1 without). Qwen2.5-0.5B's heads at
/// their head_dim 64 or at `hd`.
fn attention(
    s: &mut Suite,
    mixed: bool,
    prefill_kernel: bool,
    window: Option<u32>,
    splits: Option<u32>,
) -> Res<Check> {
    attention_hd(s, HD, mixed, prefill_kernel, window, splits)
}

fn attention_hd(
    s: &mut Suite,
    hd: usize,
    mixed: bool,
    prefill_kernel: bool,
    window: Option<u32>,
    splits: Option<u32>,
) -> Res<Check> {
    attention_typed(
        s,
        hd,
        cpu::KvTypes::default(),
        mixed,
        prefill_kernel,
        window,
        splits,
    )
}

/// [`attention_hd`] over a cache of `types`: both backends read the same
/// cache bytes.
pub fn attention_typed(
    s: &mut Suite,
    hd: usize,
    types: cpu::KvTypes,
    mixed: bool,
    prefill_kernel: bool,
    window: Option<u32>,
    splits: Option<u32>,
) -> Res<Check> {
    let lens = [37usize, 300, 150];
    let tokens: Vec<(usize, usize)> = if mixed {
        let mut v: Vec<_> = (10..37).map(|p| (0, p)).collect();
        v.extend((280..300).map(|p| (1, p)));
        v.push((2, 149));
        v
    } else {
        lens.iter()
            .enumerate()
            .map(|(sq, &l)| (sq, l - 1))
            .collect()
    };
    let t = tokens.len();
    let pl = Places::new(&mut s.rng, PAGE, &lens, &tokens);
    let cache = filled_cache(&mut s.rng, &pl, &lens, KV_HEADS, hd, types)?;
    let spec = AttentionKernelSpec {
        head_dim: hd as u32,
        scale: 1.0 / (hd as f32).sqrt(),
        kv: types,
        ..attention_spec(window)
    };
    // q inside a wider row, as the QKV output holds it.
    let ldq = (HEADS + 2 * KV_HEADS) * hd;
    let qfull = s.rng.vec(t * ldq, -1.0, 1.0);
    let q: Vec<f32> = (0..t)
        .flat_map(|i| qfull[i * ldq..i * ldq + HEADS * hd].to_vec())
        .collect();
    let mut want = vec![0f32; t * HEADS * hd];
    cpu::attention(
        &q,
        &cache.cpu,
        0,
        &pl.pos,
        &pl.seq,
        &pl.pages,
        pl.pages_per_seq,
        HEADS,
        KV_HEADS,
        hd,
        spec.scale,
        window.map(|w| w as usize),
        &mut want,
    )?;
    let src = spec.source()?;
    let (qb, kvb, out) = (
        s.upload(&qfull)?,
        s.upload(&cache.gpu)?,
        s.poisoned(t * HEADS * hd)?,
    );
    let [pos, seq, pages] = pl.upload(s)?;
    let max_chunks =
        splits.unwrap_or_else(|| spec.chunks_for(*lens.iter().max().unwrap_or(&1) as u32));
    let prefill_splits = splits.unwrap_or(1);
    let scratch_bytes = spec
        .scratch_bytes(t as u32, max_chunks)
        .max(spec.scratch_bytes(t as u32, prefill_splits));
    let scratch = DeviceBuffer::new(&s.gpu, scratch_bytes)?;
    let args = AttentionArgs {
        q: qb.ptr(),
        ldq: ldq as u32,
        kv: kvb.ptr(),
        pos: pos.ptr(),
        seq: seq.ptr(),
        pages: pages.ptr(),
        pages_per_seq: pl.pages_per_seq as u32,
        out: out.ptr(),
        ldo: (HEADS * hd) as u32,
        tokens: t as u32,
        scratch: scratch.ptr(),
        max_chunks,
    };
    if prefill_kernel {
        let (k, c) = (
            s.kernel(&src, "attn_prefill")?,
            s.kernel(&src, "attn_combine")?,
        );
        // SAFETY: buffers sized as the kernel's contract; scratch for the
        // splits.
        unsafe { spec.launch_prefill(&k, &c, &s.stream, &args, prefill_splits)? };
    } else {
        let (d, c) = (
            s.kernel(&src, "attn_decode")?,
            s.kernel(&src, "attn_combine")?,
        );
        // SAFETY: as above; scratch sized by scratch_bytes.
        unsafe { spec.launch_decode(&d, &c, &s.stream, &args)? };
    }
    Ok(Check::new(rel_err(&s.read(&out)?, &want), F16_TOL).note(format!("T={t}")))
}

fn gather_rows(s: &mut Suite) -> Res<Check> {
    let (t, r) = (20, 4);
    let x = s.rng.vec(t * D, -1.0, 1.0);
    let rows: Vec<i32> = (0..r).map(|_| s.rng.below(t) as i32).collect();
    let want: Vec<f32> = rows
        .iter()
        .flat_map(|&i| x[i as usize * D..(i as usize + 1) * D].to_vec())
        .collect();
    let op = RowOp::GatherRows { dim: D as u32 };
    let k = s.kernel(&op.source()?, op.entry())?;
    let (xb, rb, out) = (s.upload(&x)?, s.upload(&rows)?, s.poisoned(r * D)?);
    // SAFETY: sizes as the contract.
    unsafe {
        op.launch(
            &k,
            &s.stream,
            xb.ptr(),
            D as u32,
            rb.ptr(),
            out.ptr(),
            D as u32,
            r as u32,
        )?
    };
    Ok(Check::new(rel_err(&s.read(&out)?, &want), 0.0))
}

fn argmax(s: &mut Suite) -> Res<Check> {
    let (r, n) = (3, 151_936);
    let mut x = s.rng.vec(r * n, -10.0, 10.0);
    // Row 1: a tie between two maxima (the first must win); row 2: a NaN.
    x[n + 1000] = 50.0;
    x[n + 90_000] = 50.0;
    x[2 * n + 5] = f32::NAN;
    let want: Vec<i32> = x
        .chunks_exact(n)
        .map(|row| cpu::argmax(row).map_or(-1, |i| i as i32))
        .collect();
    let op = RowOp::Argmax { n: n as u32 };
    let k = s.kernel(&op.source()?, op.entry())?;
    let xb = s.upload(&x)?;
    let out = s.upload(&[-7i32; 3])?;
    // SAFETY: sizes as the contract.
    unsafe {
        op.launch(
            &k,
            &s.stream,
            xb.ptr(),
            n as u32,
            DevicePtr::NULL,
            out.ptr(),
            0,
            r as u32,
        )?
    };
    s.stream.synchronize()?;
    let got: Vec<i32> = out.to_vec()?;
    let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    Ok(Check::new(wrong as f64, 0.0).note(format!("got {got:?}, want {want:?}")))
}

/// The device's top candidates against the host's selection of the same
/// rows: ids and logits exactly, the log-sum-exp within 1e-5 relative.
fn top_candidates(s: &mut Suite) -> Res<Check> {
    use rocmforge::codegen::rows::TOP_CANDIDATES;
    let k = TOP_CANDIDATES as usize;
    let mut worst = 0f64;
    let mut notes = Vec::new();
    for (r, n) in [(6usize, 151_936usize), (2, 259), (1, 20)] {
        let mut x = s.rng.vec(r * n, -10.0, 10.0);
        if n > 1000 {
            // Row 1: a run of equal maxima (smaller ids first); row 2: NaNs;
            // row 3: -inf entries; row 4: all equal; row 5 below.
            for j in [7, 900, 40_000, 151_000] {
                x[n + j] = 42.0;
            }
            x[2 * n + 3] = f32::NAN;
            x[2 * n + 77] = f32::NAN;
            x[3 * n + 11] = f32::NEG_INFINITY;
            for v in &mut x[4 * n..5 * n] {
                *v = 1.5;
            }
            // Row 5: the largest values in the strides of few of the
            // kernel's threads, so that far more than a block's worth
            // pass its first bound (its refining rounds).
            let block = rocmforge::codegen::rows::TOPK_BLOCK as usize;
            for (j, v) in x[5 * n..6 * n].iter_mut().enumerate() {
                if j % block < k {
                    *v += 50.0;
                }
            }
        }
        let want = rocmforge::exec::step::top_rows_of(&x, n, k);
        let op = RowOp::TopK {
            n: n as u32,
            k: TOP_CANDIDATES,
        };
        let kern = s.kernel(&op.source()?, op.entry())?;
        let xb = s.upload(&x)?;
        let out = s.upload(&vec![-7i32; r * (2 * k + 1)])?;
        // SAFETY: x holds r rows of n floats; out r rows of 2k+1 words.
        unsafe {
            op.launch(
                &kern,
                &s.stream,
                xb.ptr(),
                n as u32,
                DevicePtr::NULL,
                out.ptr(),
                0,
                r as u32,
            )?
        };
        s.stream.synchronize()?;
        let got: Vec<i32> = out.to_vec()?;
        for row in 0..r {
            let w = 2 * k + 1;
            let (g, e) = (&got[row * w..(row + 1) * w], &want[row * w..(row + 1) * w]);
            if g[..2 * k] != e[..2 * k] {
                worst = f64::INFINITY;
                notes.push(format!(
                    "n {n} row {row}: ids/logits differ: {:?} vs {:?}",
                    &g[..4],
                    &e[..4]
                ));
            }
            let (gl, el) = (
                f32::from_bits(g[2 * k] as u32),
                f32::from_bits(e[2 * k] as u32),
            );
            let rel = ((gl - el) / el.abs().max(1e-6)).abs() as f64;
            worst = worst.max(if gl.is_finite() { rel } else { f64::INFINITY });
        }
    }
    Ok(Check::new(worst, 1e-5).note(notes.join("; ")))
}

fn elementwise(s: &mut Suite) -> Res<Check> {
    let (t, d) = (7, 300);
    let a = s.rng.vec(t * d, -3.0, 3.0);
    let b = s.rng.vec(d, -3.0, 3.0);
    let src = ew::binary_source();
    let (add, mul, silu) = (
        s.kernel(&src, "add")?,
        s.kernel(&src, "mul")?,
        s.kernel(&src, ew::UnaryOp::Silu.entry())?,
    );
    let (ab, bb) = (s.upload(&a)?, s.upload(&b)?);
    let (o1, o2, o3) = (s.poisoned(t * d)?, s.poisoned(t * d)?, s.poisoned(t * d)?);
    let n = (t * d) as u64;
    // SAFETY: a and the outputs hold n floats, b holds d.
    unsafe {
        ew::launch_binary(&add, &s.stream, ab.ptr(), bb.ptr(), o1.ptr(), n, d as u64)?;
        ew::launch_binary(&mul, &s.stream, ab.ptr(), bb.ptr(), o2.ptr(), n, d as u64)?;
        ew::launch_unary(ew::UnaryOp::Silu, &silu, &s.stream, ab.ptr(), o3.ptr(), n)?;
    }
    let want_add: Vec<f32> = a.iter().enumerate().map(|(i, x)| x + b[i % d]).collect();
    let want_mul: Vec<f32> = a.iter().enumerate().map(|(i, x)| x * b[i % d]).collect();
    // silu(a) = silu_mul over [a | 1].
    let mut want_silu = vec![0f32; t * d];
    let gu: Vec<f32> = a
        .chunks(d)
        .flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(1.0, d)))
        .collect();
    cpu::silu_mul(&gu, d, &mut want_silu);
    let c = Check::new(rel_err(&s.read(&o1)?, &want_add), F32_TOL);
    let c = c.and(Check::new(rel_err(&s.read(&o2)?, &want_mul), F32_TOL));
    Ok(c.and(Check::new(rel_err(&s.read(&o3)?, &want_silu), F32_TOL)))
}

/// Two launches (rms_norm, then a matvec reading its output) captured into
/// a graph and replayed give what the direct launches give.
fn graph_replay(s: &mut Suite) -> Res<Check> {
    let t = 2;
    let x = s.rng.vec(t * D, -1.0, 1.0);
    let g = s.rng.vec(D, 0.5, 1.5);
    let norm = RowOp::RmsNorm {
        dim: D as u32,
        eps: EPS,
    };
    let spec = MatMulSpec::plain(GgmlType::Q8_0, 256, D as u32);
    let v = MatMulVariant::Vector { tokens: 4 };
    let o = operands(s, &spec)?;
    let (nk, mk) = (
        s.kernel(&norm.source()?, norm.entry())?,
        s.matmul_kernel(&spec, v)?,
    );
    let (xb, gb, h) = (s.upload(&x)?, s.upload(&g)?, s.poisoned(t * D)?);
    let (direct, replayed) = (s.poisoned(t * 256)?, s.poisoned(t * 256)?);
    let launch = |s: &Suite, out: &DeviceBuffer| -> Res<()> {
        let args = matmul_args(&spec, &o, &h, out, t);
        // SAFETY: buffers sized by the ops.
        unsafe {
            norm.launch(
                &nk,
                &s.stream,
                xb.ptr(),
                D as u32,
                gb.ptr(),
                h.ptr(),
                D as u32,
                t as u32,
            )?;
            spec.launch(&mk, &s.stream, v, s.warp, &args)?;
        }
        Ok(())
    };
    launch(s, &direct)?;
    s.stream.synchronize()?;
    let capture = Capture::begin(&s.stream)?;
    launch(s, &replayed)?;
    let graph = capture.finish()?;
    for _ in 0..3 {
        graph.launch(&s.stream)?;
    }
    let (a, b) = (s.read(&direct)?, s.read(&replayed)?);
    Ok(Check::new(rel_err(&b, &a), 0.0).note("bit-identical"))
}
