//! The mixture-of-experts kernels against the CPU backend: the router's
//! ids (exactly, ties included) and weights, and the routed feed-forward
//! (RMSNorm prologue, each slot's gate/up SwiGLU and down, weighted into
//! the residual) at several token counts, k and weight types. Every case
//! name starts with "experts:".

use super::{dequantized, random_weights, ref_matmul, rel_err, Check, Res, Suite, F32_TOL};
use rocmforge::backend::DevicePtr;
use rocmforge::codegen::{ExpertsArgs, ExpertsSpec, RouterSpec, RowOp};
use rocmforge::exec::cpu;
use rocmforge::quant::GgmlType;

pub fn all(s: &mut Suite) {
    for (e, k) in [(8, 2), (4, 4), (60, 4), (128, 8)] {
        for t in [1, 5, 130] {
            s.case(&format!("experts: router e{e} k{k} T={t}"), |s| {
                router(s, e, k, t)
            });
        }
    }
    use GgmlType::*;
    let types = [
        ("f32", [F32, F32, F32]),
        ("q4_k/q6_k", [Q4_K, Q4_K, Q6_K]),
        ("q8_0", [Q8_0, Q8_0, Q8_0]),
        ("iq4_xs", [IQ4_XS, IQ4_XS, IQ4_XS]),
    ];
    for (name, tys) in types {
        for (t, k) in [(1, 2), (2, 8), (7, 1), (33, 2)] {
            s.case(
                &format!("experts: ffn {name} T={t} k={k} rms+residual"),
                |s| experts(s, tys, t, k, true, 0),
            );
        }
    }
    s.case("experts: ffn f32 T=5 k=2 plain, strided input", |s| {
        experts(s, [F32, F32, F32], 5, 2, false, 64)
    });
}

/// Router logits of `t` tokens over `e` experts, rounded to quarters so
/// that rows hold ties (which the lower id must win, as on the CPU).
fn logits(s: &mut Suite, t: usize, e: usize) -> Vec<f32> {
    s.rng
        .vec(t * e, -2.0, 2.0)
        .iter()
        .map(|v| (v * 4.0).round() / 4.0)
        .collect()
}

/// The CPU's route rows ([ids as f32, weights], 2k a token) of `l`.
fn cpu_routes(l: &[f32], e: usize, k: usize) -> Vec<f32> {
    let mut out = Vec::new();
    let (mut ids, mut w) = (vec![0u32; k], vec![0f32; k]);
    for row in l.chunks_exact(e) {
        cpu::route_top_k(row, &mut ids, &mut w);
        out.extend(ids.iter().map(|&i| i as f32));
        out.extend_from_slice(&w);
    }
    out
}

fn router(s: &mut Suite, e: usize, k: usize, t: usize) -> Res<Check> {
    let spec = RouterSpec {
        n_expert: e as u32,
        top_k: k as u32,
    };
    let l = logits(s, t, e);
    let want = cpu_routes(&l, e, k);
    let kern = s.kernel(&spec.source()?, RouterSpec::ENTRY)?;
    let (lb, out) = (s.upload(&l)?, s.poisoned(t * 2 * k)?);
    // SAFETY: t rows of e logits in, t rows of 2k out.
    unsafe {
        spec.launch(
            &kern,
            &s.stream,
            lb.ptr(),
            e as u32,
            out.ptr(),
            2 * k as u32,
            t as u32,
        )?
    };
    let got = s.read(&out)?;
    let split = |v: &[f32]| -> (Vec<f32>, Vec<f32>) {
        let rows = v.chunks_exact(2 * k);
        let ids = rows.clone().flat_map(|r| r[..k].to_vec()).collect();
        (ids, rows.flat_map(|r| r[k..].to_vec()).collect())
    };
    let ((gi, gw), (wi, ww)) = (split(&got), split(&want));
    let wrong_ids = gi.iter().zip(&wi).filter(|(a, b)| a != b).count();
    let err = if wrong_ids > 0 {
        f64::INFINITY
    } else {
        rel_err(&gw, &ww)
    };
    Ok(Check::new(err, F32_TOL).note(format!("{wrong_ids} ids differ")))
}

/// Expert weights `[E, rows, cols]` of `ty`: the device bytes and the
/// dequantized values.
fn expert_weights(
    s: &mut Suite,
    ty: GgmlType,
    e: usize,
    rows: usize,
    cols: usize,
) -> Res<(rocmforge::backend::DeviceBuffer, Vec<f32>)> {
    let data = random_weights(&mut s.rng, ty, e * rows, cols);
    let values = dequantized(ty, &data, e * rows, cols)?;
    Ok((s.upload(&data)?, values))
}

/// `t` tokens through 8 experts of width 512 over d = 256, `k` each,
/// with the RMSNorm prologue and residual epilogue (`fused`) or neither;
/// input rows `pad` wider than d.
fn experts(
    s: &mut Suite,
    tys: [GgmlType; 3],
    t: usize,
    k: usize,
    fused: bool,
    pad: usize,
) -> Res<Check> {
    let (d, ff, e, eps) = (256usize, 512usize, 8usize, 1e-6f32);
    let spec = ExpertsSpec {
        d: d as u32,
        ff: ff as u32,
        n_expert: e as u32,
        top_k: k as u32,
        gate: tys[0],
        up: tys[1],
        down: tys[2],
    };
    let ldx = d + pad;
    let x = s.rng.vec(t * ldx, -1.0, 1.0);
    let g = s.rng.vec(d, 0.5, 1.5);
    let res = s.rng.vec(t * d, -1.0, 1.0);
    let l = logits(s, t, e);
    let route = cpu_routes(&l, e, k);
    let (gate, wg) = expert_weights(s, tys[0], e, ff, d)?;
    let (up, wu) = expert_weights(s, tys[1], e, ff, d)?;
    let (down, wd) = expert_weights(s, tys[2], e, d, ff)?;

    // The CPU reference, slot after slot.
    let mut want = vec![0f32; t * d];
    for r in 0..t {
        let mut xr = x[r * ldx..r * ldx + d].to_vec();
        if fused {
            let mut n = vec![0f32; d];
            cpu::rms_norm(&xr, &g, eps, &mut n);
            xr = n;
        }
        let o = &mut want[r * d..(r + 1) * d];
        if fused {
            o.copy_from_slice(&res[r * d..(r + 1) * d]);
        }
        for j in 0..k {
            let ex = route[r * 2 * k + j] as usize;
            let w = route[r * 2 * k + k + j];
            let mut gu = ref_matmul(&xr, &wg[ex * ff * d..(ex + 1) * ff * d], 1, d, ff);
            gu.extend(ref_matmul(
                &xr,
                &wu[ex * ff * d..(ex + 1) * ff * d],
                1,
                d,
                ff,
            ));
            let mut act = vec![0f32; ff];
            cpu::silu_mul(&gu, ff, &mut act);
            let y = ref_matmul(&act, &wd[ex * d * ff..(ex + 1) * d * ff], 1, ff, d);
            for (o, v) in o.iter_mut().zip(y) {
                *o += w * v;
            }
        }
    }

    let src = spec.source()?;
    let (up_k, down_k) = (
        s.kernel(&src, ExpertsSpec::UP)?,
        s.kernel(&src, ExpertsSpec::DOWN)?,
    );
    let (xb, rb, resb) = (s.upload(&x)?, s.upload(&route)?, s.upload(&res)?);
    let (act, out) = (s.poisoned(t * ff)?, s.poisoned(t * d)?);
    let mut args = ExpertsArgs {
        x: xb.ptr(),
        ldx: ldx as u32,
        route: rb.ptr(),
        ldr: 2 * k as u32,
        gate: gate.ptr(),
        up: up.ptr(),
        down: down.ptr(),
        residual: DevicePtr::default(),
        ldres: 0,
        act: act.ptr(),
        out: out.ptr(),
        ldo: d as u32,
        tokens: t as u32,
    };
    let normed = s.poisoned(t * d)?;
    let gb = s.upload(&g)?;
    if fused {
        // As the executor does: the prologue's row kernel first.
        let op = RowOp::RmsNorm { dim: d as u32, eps };
        let nk = s.kernel(&op.source()?, op.entry())?;
        // SAFETY: t rows of ldx in, t rows of d out, d norm weights.
        unsafe {
            op.launch(
                &nk,
                &s.stream,
                xb.ptr(),
                ldx as u32,
                gb.ptr(),
                normed.ptr(),
                d as u32,
                t as u32,
            )?
        };
        (args.x, args.ldx) = (normed.ptr(), d as u32);
        (args.residual, args.ldres) = (resb.ptr(), d as u32);
    }
    // SAFETY: every buffer sized for t tokens of the spec's shapes.
    unsafe { spec.launch(&up_k, &down_k, &s.stream, s.warp, &args)? };
    let got = s.read(&out)?;
    Ok(Check::new(rel_err(&got, &want), F32_TOL))
}
