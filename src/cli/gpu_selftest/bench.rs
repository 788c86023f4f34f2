//! Timings of the real model's shapes (Qwen2.5-0.5B, synthetic weights):
//! each fused matmul alone, attention, and a whole decode step (24 layers
//! with distinct weights + logits + argmax) captured as one graph.

use std::sync::Arc;

use half::f16;

use super::cases::{attention_spec, qkv_spec, BASE, D, EPS, HD, HEADS, KV_HEADS, PAGE};
use super::{random_weights, Res, Suite};
use rocmforge::backend::{Capture, DeviceBuffer, DevicePtr, Event, Gpu};
use rocmforge::codegen::{
    AttentionArgs, MatMulArgs, MatMulKernel, MatMulSpec, MatMulVariant, RowOp, Segment,
};
use rocmforge::quant::GgmlType;

const FF: u32 = 4864;
const VOCAB: u32 = 151_936;
const LAYERS: usize = 24;
/// Position of the decoded token (keys 0..=POS are read).
const POS: usize = 1000;
const CTX: usize = 4096;

pub fn all(s: &mut Suite) -> Vec<String> {
    let mut lines = Vec::new();
    let mut run = |name: &str, r: Res<String>| match r {
        Ok(l) => lines.push(format!("{name:<44} {l}")),
        Err(e) => lines.push(format!("{name:<44} ERROR: {e}")),
    };
    for (name, spec) in shapes() {
        for t in [1u32, 512] {
            let v = MatMulVariant::for_tokens(t);
            run(
                &format!("{name} T={t} {}", super::cases::variant_name(v)),
                matmul(s, &spec, v, t),
            );
        }
    }
    // Llama-3-8B's qkv at 512 tokens in both tiles that
    // MatMulSpec::variant_for weighs (weights repacked in every launch).
    let qkv8b = MatMulSpec::concatenated(
        4096,
        vec![
            Segment::unbiased(GgmlType::Q4_K, 4096),
            Segment::unbiased(GgmlType::Q6_K, 1024),
            Segment::unbiased(GgmlType::Q4_K, 1024),
        ],
    );
    // And its gate|up, each on the int8 tiles and on the f16 ones.
    let mut gate_up8b = MatMulSpec::concatenated(
        4096,
        vec![
            Segment::unbiased(GgmlType::Q4_K, 14336),
            Segment::unbiased(GgmlType::Q4_K, 14336),
        ],
    );
    gate_up8b.swiglu = true;
    let vendor = s.gpu.info().vendor;
    for (name, spec) in [("qkv", qkv8b), ("gate_up", gate_up8b)] {
        for f16 in [false, true] {
            let spec = if f16 {
                spec.clone().with_f16_tiles(vendor)
            } else {
                spec.clone()
            };
            let tiles = if spec.f16_tiles { " f16" } else { "" };
            for v in [
                MatMulVariant::Tiled { tokens: 128 },
                MatMulVariant::TiledTall,
            ] {
                if v == MatMulVariant::TiledTall && name == "gate_up" {
                    continue;
                }
                run(
                    &format!("8B {name} T=512 {}{tiles}", super::cases::variant_name(v)),
                    matmul(s, &spec, v, 512),
                );
            }
        }
    }
    for len in [1024usize, 4096] {
        run(
            &format!("attention decode kv={len}"),
            attention(s, len, false, len - 1, 1),
        );
    }
    run(
        "attention prefill T=512 (one sequence)",
        attention(s, 512, true, 0, 1),
    );
    // A 512-token chunk after 3,584 tokens of context: few query tiles,
    // long key loops; one split, and the splits prefill_splits picks.
    let info = s.gpu.info();
    let deep =
        attention_spec(None).prefill_splits(info.vendor, 512, CTX as u32, info.multiprocessors);
    for splits in [1, deep] {
        run(
            &format!("attention prefill T=512 at 3584, {splits} key splits"),
            attention(s, 512, true, CTX - 512, splits),
        );
    }
    run(
        "decode step, 24 layers (graph replay)",
        decode_step(s, true),
    );
    run(
        "decode step, 24 layers (direct launches)",
        decode_step(s, false),
    );
    lines
}

/// The five fused matmuls of the real model (layer 0's types).
fn shapes() -> Vec<(&'static str, MatMulSpec)> {
    let mut o =
        MatMulSpec::concatenated(D as u32, vec![Segment::unbiased(GgmlType::Q5_0, D as u32)]);
    o.residual = true;
    let mut gu = MatMulSpec::concatenated(
        D as u32,
        vec![
            Segment::unbiased(GgmlType::Q5_0, FF),
            Segment::unbiased(GgmlType::Q5_0, FF),
        ],
    );
    gu.rms_eps = Some(EPS);
    gu.swiglu = true;
    let mut down = MatMulSpec::concatenated(FF, vec![Segment::unbiased(GgmlType::Q6_K, D as u32)]);
    down.residual = true;
    let mut logits =
        MatMulSpec::concatenated(D as u32, vec![Segment::unbiased(GgmlType::Q8_0, VOCAB)]);
    logits.rms_eps = Some(EPS);
    vec![
        ("qkv", qkv_spec()),
        ("attn_output+res", o),
        ("gate_up+swiglu", gu),
        ("down Q6_K+res", down),
        ("logits Q8_0", logits),
    ]
}

fn weight_bytes(spec: &MatMulSpec) -> usize {
    spec.segments
        .iter()
        .map(|s| s.ty.bytes_for(s.rows as u64 * spec.k as u64).unwrap_or(0) as usize)
        .sum()
}

/// Median microseconds per call of `f` (events around `reps` calls, five
/// samples, after a warm-up).
fn time_us(s: &Suite, reps: usize, mut f: impl FnMut(usize) -> Res<()>) -> Res<f64> {
    for i in 0..3 {
        f(i)?;
    }
    s.stream.synchronize()?;
    let (a, b) = (Event::new(&s.gpu)?, Event::new(&s.gpu)?);
    let mut samples = Vec::new();
    for _ in 0..5 {
        a.record(&s.stream)?;
        for i in 0..reps {
            f(i)?;
        }
        b.record(&s.stream)?;
        b.synchronize()?;
        samples.push(b.elapsed_ms_since(&a)? as f64 * 1000.0 / reps as f64);
    }
    samples.sort_by(|x, y| x.total_cmp(y));
    Ok(samples[samples.len() / 2])
}

/// Device weights of `spec`: `copies` distinct copies, so repeated calls
/// rotate through more memory than the L2 cache holds.
struct Weights {
    w: Vec<Vec<DeviceBuffer>>,
    bias: Vec<DeviceBuffer>,
    norm: DeviceBuffer,
}

fn weights(s: &mut Suite, spec: &MatMulSpec, copies: usize) -> Res<Weights> {
    let mut w = Vec::new();
    for seg in &spec.segments {
        let data = random_weights(&mut s.rng, seg.ty, seg.rows as usize, spec.k as usize);
        let first = DeviceBuffer::from_slice(&s.gpu, &data)?;
        let mut v = vec![];
        for _ in 1..copies {
            v.push(first.duplicate()?);
        }
        v.insert(0, first);
        w.push(v);
    }
    let bias = spec
        .segments
        .iter()
        .map(|seg| s.random_buffer(seg.rows as usize, -0.1, 0.1))
        .collect::<Res<Vec<_>>>()?;
    let norm = s.random_buffer(spec.k as usize, 0.5, 1.5)?;
    Ok(Weights { w, bias, norm })
}

/// Position/sequence/page-table/cache operands for one sequence of CTX
/// positions (the KV cache holds random values).
struct Kv {
    pos: DeviceBuffer,
    seq: DeviceBuffer,
    pages: DeviceBuffer,
    cache: DeviceBuffer,
}

fn kv_for(s: &mut Suite, tokens: usize, first_pos: usize) -> Res<Kv> {
    let n_pages = CTX / PAGE;
    let cache_vals: Vec<u16> = (0..n_pages * PAGE * 2 * KV_HEADS * HD)
        .map(|_| f16::from_f32(s.rng.f32(-1.0, 1.0)).to_bits())
        .collect();
    let pos: Vec<i32> = (0..tokens).map(|i| (first_pos + i) as i32).collect();
    Ok(Kv {
        pos: s.upload(&pos)?,
        seq: s.upload(&vec![0i32; tokens])?,
        pages: s.upload(&(0..n_pages as i32).collect::<Vec<_>>())?,
        cache: s.upload(&cache_vals)?,
    })
}

fn fill_args(a: &mut MatMulArgs, w: &Weights, copy: usize, kv: &Kv) {
    for (i, segs) in w.w.iter().enumerate() {
        a.w[i] = segs[copy % segs.len()].ptr();
        a.bias[i] = w.bias[i].ptr();
    }
    a.norm = w.norm.ptr();
    (a.pos, a.seq, a.pages, a.kv) = (kv.pos.ptr(), kv.seq.ptr(), kv.pages.ptr(), kv.cache.ptr());
    a.pages_per_seq = (CTX / PAGE) as u32;
}

fn matmul(s: &mut Suite, spec: &MatMulSpec, v: MatMulVariant, t: u32) -> Res<String> {
    let bytes = weight_bytes(spec);
    let copies = ((256usize << 20) / bytes.max(1)).clamp(1, 400);
    let w = weights(s, spec, copies)?;
    let kern = s.matmul_kernel(spec, v)?;
    let x = s.random_buffer(t as usize * spec.k as usize, -1.0, 1.0)?;
    let res = s.random_buffer(t as usize * spec.out_cols() as usize, -1.0, 1.0)?;
    let out = DeviceBuffer::new(&s.gpu, t as usize * spec.out_cols() as usize * 4)?;
    let kv = kv_for(s, t as usize, 0)?;
    let mut a = MatMulArgs {
        x: x.ptr(),
        ldx: spec.k,
        residual: res.ptr(),
        ldr: spec.out_cols(),
        out: out.ptr(),
        ldo: spec.out_cols(),
        tokens: t,
        ..Default::default()
    };
    s.int8_scratch(spec, v, t, &mut a)?;
    let us = time_us(s, 20, |i| {
        fill_args(&mut a, &w, i, &kv);
        // SAFETY: buffers sized by the spec for t tokens.
        unsafe { spec.launch(&kern, &s.stream, v, s.warp, &a)? };
        Ok(())
    })?;
    let flops = 2.0 * t as f64 * spec.rows() as f64 * spec.k as f64;
    Ok(format!(
        "{us:>9.1} us  {:>7.1} GB/s weights  {:>6.2} TFLOP/s",
        bytes as f64 / us / 1e3,
        flops / us / 1e6
    ))
}

/// Attention of `len` tokens (prefill) or one (decode) from position
/// `first`; the prefill's keys in `splits` splits.
fn attention(s: &mut Suite, len: usize, prefill: bool, first: usize, splits: u32) -> Res<String> {
    let spec = attention_spec(None);
    let src = spec.source()?;
    let t = if prefill { len } else { 1 };
    let kv = kv_for(s, t, first)?;
    let ldq = (HEADS + 2 * KV_HEADS) * HD;
    let q = s.random_buffer(t * ldq, -1.0, 1.0)?;
    let out = DeviceBuffer::new(&s.gpu, t * HEADS * HD * 4)?;
    let max_chunks = spec.chunks_for(CTX as u32);
    let scratch_bytes = spec
        .scratch_bytes(t as u32, max_chunks)
        .max(spec.scratch_bytes(t as u32, splits));
    let scratch = DeviceBuffer::new(&s.gpu, scratch_bytes)?;
    let args = AttentionArgs {
        q: q.ptr(),
        ldq: ldq as u32,
        kv: kv.cache.ptr(),
        pos: kv.pos.ptr(),
        seq: kv.seq.ptr(),
        pages: kv.pages.ptr(),
        pages_per_seq: (CTX / PAGE) as u32,
        out: out.ptr(),
        ldo: (HEADS * HD) as u32,
        tokens: t as u32,
        scratch: scratch.ptr(),
        max_chunks,
    };
    let us = if prefill {
        let (k, c) = (
            s.kernel(&src, "attn_prefill")?,
            s.kernel(&src, "attn_combine")?,
        );
        // SAFETY: buffers sized for t tokens, CTX positions and the splits.
        time_us(s, 5, |_| {
            unsafe { spec.launch_prefill(&k, &c, &s.stream, &args, splits)? };
            Ok(())
        })?
    } else {
        let (d, c) = (
            s.kernel(&src, "attn_decode")?,
            s.kernel(&src, "attn_combine")?,
        );
        // SAFETY: as above.
        time_us(s, 20, |_| {
            unsafe { spec.launch_decode(&d, &c, &s.stream, &args)? };
            Ok(())
        })?
    };
    // K and V of `len` positions, f16.
    let kv_bytes = len * 2 * KV_HEADS * HD * 2;
    Ok(format!(
        "{us:>9.1} us  {:>7.1} GB/s of K/V read once",
        kv_bytes as f64 / us / 1e3
    ))
}

/// One layer's device weights for the decode step.
struct Layer {
    mm: Vec<Weights>,
    kv: Kv,
}

/// A whole decode step of the real model's shapes: embed, 24 × (qkv,
/// attention, o+res, gate_up, down+res), logits, argmax.
fn decode_step(s: &mut Suite, graph: bool) -> Res<String> {
    let specs: Vec<MatMulSpec> = shapes().into_iter().map(|(_, sp)| sp).collect();
    let v = MatMulVariant::Vector { tokens: 1 };
    let kernels: Vec<MatMulKernel> = specs
        .iter()
        .map(|sp| s.matmul_kernel(sp, v))
        .collect::<Res<_>>()?;
    let att = attention_spec(None);
    let asrc = att.source()?;
    let (adec, acomb) = (
        s.kernel(&asrc, "attn_decode")?,
        s.kernel(&asrc, "attn_combine")?,
    );
    let emb_op = RowOp::Embed {
        ty: GgmlType::Q5_0,
        dim: D as u32,
        vocab: VOCAB,
    };
    let emb = s.kernel(&emb_op.source()?, emb_op.entry())?;
    let am_op = RowOp::Argmax { n: VOCAB };
    let am = s.kernel(&am_op.source()?, am_op.entry())?;

    let mut layers = Vec::new();
    let mut bytes = 0usize;
    for _ in 0..LAYERS {
        let mm = specs[..4]
            .iter()
            .map(|sp| weights(s, sp, 1))
            .collect::<Res<Vec<_>>>()?;
        bytes += specs[..4].iter().map(weight_bytes).sum::<usize>();
        layers.push(Layer {
            mm,
            kv: kv_for(s, 1, POS)?,
        });
    }
    let logits_w = weights(s, &specs[4], 1)?;
    bytes += weight_bytes(&specs[4]);
    bytes += LAYERS * (POS + 1) * 2 * KV_HEADS * HD * 2;
    let table_data = random_weights(&mut s.rng, GgmlType::Q5_0, VOCAB as usize, D);
    let table = s.upload(&table_data)?;
    let token = s.upload(&[4242i32])?;
    let gpu: Arc<Gpu> = s.gpu.clone();
    let buf = |floats: usize| DeviceBuffer::new(&gpu, floats * 4);
    let (x, qkv, attn, ff, logits) = (
        buf(D)?,
        buf(1152)?,
        buf(D)?,
        buf(FF as usize)?,
        buf(VOCAB as usize)?,
    );
    let next = DeviceBuffer::new(&gpu, 4)?;
    let max_chunks = att.chunks_for(CTX as u32);
    let scratch = DeviceBuffer::new(&gpu, att.scratch_bytes(1, max_chunks))?;

    let step = |s: &Suite| -> Res<()> {
        // SAFETY: every buffer above is sized for one token of these shapes.
        unsafe {
            emb_op.launch(
                &emb,
                &s.stream,
                table.ptr(),
                0,
                token.ptr(),
                x.ptr(),
                D as u32,
                1,
            )?;
            for l in &layers {
                let io = [
                    (x.ptr(), qkv.ptr(), DevicePtr::NULL),
                    (attn.ptr(), x.ptr(), x.ptr()),
                    (x.ptr(), ff.ptr(), DevicePtr::NULL),
                    (ff.ptr(), x.ptr(), x.ptr()),
                ];
                for (i, (inp, out, res)) in io.iter().enumerate() {
                    let mut a = MatMulArgs {
                        x: *inp,
                        ldx: specs[i].k,
                        out: *out,
                        ldo: specs[i].out_cols(),
                        residual: *res,
                        ldr: specs[i].out_cols(),
                        tokens: 1,
                        ..Default::default()
                    };
                    fill_args(&mut a, &l.mm[i], 0, &l.kv);
                    specs[i].launch(&kernels[i], &s.stream, v, s.warp, &a)?;
                    if i == 0 {
                        let aa = AttentionArgs {
                            q: qkv.ptr(),
                            ldq: 1152,
                            kv: l.kv.cache.ptr(),
                            pos: l.kv.pos.ptr(),
                            seq: l.kv.seq.ptr(),
                            pages: l.kv.pages.ptr(),
                            pages_per_seq: (CTX / PAGE) as u32,
                            out: attn.ptr(),
                            ldo: D as u32,
                            tokens: 1,
                            scratch: scratch.ptr(),
                            max_chunks,
                        };
                        att.launch_decode(&adec, &acomb, &s.stream, &aa)?;
                    }
                }
            }
            let mut a = MatMulArgs {
                x: x.ptr(),
                ldx: D as u32,
                out: logits.ptr(),
                ldo: VOCAB,
                tokens: 1,
                ..Default::default()
            };
            fill_args(&mut a, &logits_w, 0, &layers[0].kv);
            specs[4].launch(&kernels[4], &s.stream, v, s.warp, &a)?;
            am_op.launch(
                &am,
                &s.stream,
                logits.ptr(),
                VOCAB,
                DevicePtr::NULL,
                next.ptr(),
                0,
                1,
            )?;
        }
        Ok(())
    };
    let launches = 1 + LAYERS * 6 + 2;
    let ms = if graph {
        let cap = Capture::begin(&s.stream)?;
        step(s)?;
        let g = cap.finish()?;
        time_us(s, 10, |_| Ok(g.launch(&s.stream)?))? / 1000.0
    } else {
        time_us(s, 10, |_| step(s))? / 1000.0
    };
    let _ = (BASE, PAGE);
    Ok(format!(
        "{:>9.3} ms  {:>7.1} tok/s  {:>6.0} GB/s of {:.0} MB/token, {launches} launches",
        ms,
        1000.0 / ms,
        bytes as f64 / ms / 1e6,
        bytes as f64 / 1e6
    ))
}
