//! The KV cache in its element types (--cache-type-k/-v) on the GPU,
//! against the CPU cache: the store (rotation and block encoding, byte for
//! byte, and nothing written outside the step's rows), and decode and
//! prefill attention reading the pages as the CPU backend stored them.

use super::cases::{attention_typed, step_tokens, KV_HEADS, PAGE};
use super::steps::Places;
use super::{Check, Res, Suite};
use rocmforge::backend::Vendor;
use rocmforge::codegen::{KvLayout, KvStoreArgs, KvStoreSpec};
use rocmforge::exec::cpu::{self, KvType, KvTypes};

use KvType::{Bf16, F16, F32, IQ4NL, Q4_0, Q5_1, Q8_0};

/// Key and value types stored and read: the block types alone and
/// against the float ones, and every float type.
const COMBOS: [(KvType, KvType); 9] = [
    (Q8_0, Q8_0),
    (Q4_0, Q4_0),
    (Q8_0, F16),
    (F16, Q4_0),
    (Q5_1, IQ4NL),
    (IQ4NL, Q5_1),
    (F32, Bf16),
    (Bf16, F32),
    (F16, F16),
];

pub fn all(s: &mut Suite) {
    for (k, v) in COMBOS {
        let types = KvTypes { k, v };
        // head_dim 64: keys rotated over 64; 128: over 128 (values 64).
        for hd in [64, 128] {
            s.case(&format!("kv cache store K {k} V {v} head_dim {hd}"), |s| {
                store(s, types, hd)
            });
            s.case(
                &format!("kv cache attention decode K {k} V {v} head_dim {hd}"),
                |s| attention_typed(s, hd, types, true, false, None, None),
            );
            s.case(
                &format!("kv cache attention prefill K {k} V {v} head_dim {hd}"),
                |s| attention_typed(s, hd, types, true, true, None, None),
            );
        }
    }
    // Blocks without rotation (head_dim 96 is not whole 64s), with a window.
    let q = KvTypes { k: Q8_0, v: Q4_0 };
    s.case("kv cache store K q8_0 V q4_0 head_dim 96", |s| {
        store(s, q, 96)
    });
    for prefill in [false, true] {
        let kind = if prefill { "prefill" } else { "decode" };
        s.case(
            &format!("kv cache attention {kind} K q8_0 V q4_0 head_dim 96 window 40"),
            |s| attention_typed(s, 96, q, true, prefill, Some(40), None),
        );
    }
    // Rotated values through attn_combine: decode's splits, and the flash
    // prefill's key splits (NVIDIA).
    s.case("kv cache attention decode K q4_0 V q8_0, one split", |s| {
        attention_typed(
            s,
            64,
            KvTypes { k: Q4_0, v: Q8_0 },
            false,
            false,
            None,
            Some(1),
        )
    });
    if s.gpu.info().vendor == Vendor::Cuda {
        s.case(
            "kv cache attention prefill K q8_0 V q4_0, 3 key splits",
            |s| attention_typed(s, 128, q, true, true, None, Some(3)),
        );
    }
}

/// A step's keys and values (inside wider rows, as the QKV output holds
/// them) through kv_store, against the CPU cache written with the same
/// rows: every written row's bytes, and every other byte left alone.
fn store(s: &mut Suite, types: KvTypes, hd: usize) -> Res<Check> {
    let kv_dim = KV_HEADS * hd;
    let (caps, tokens) = step_tokens(9);
    let pl = Places::new(&mut s.rng, PAGE, &caps, &tokens);
    let t = tokens.len();
    let ld = 2 * kv_dim + 32;
    let mut rows = s.rng.vec(t * ld, -1.0, 1.0);
    // One large key channel per head, as Qwen2's key biases make.
    for r in rows.chunks_exact_mut(ld) {
        for h in 0..KV_HEADS {
            r[h * hd + 3] += 6.0;
        }
    }
    let pick = |col: usize| -> Vec<f32> {
        rows.chunks_exact(ld)
            .flat_map(|r| r[col..col + kv_dim].to_vec())
            .collect()
    };
    let (k, v) = (pick(0), pick(kv_dim));
    let layout = KvLayout {
        types,
        n_kv_heads: KV_HEADS as u32,
        head_dim: hd as u32,
        page_size: PAGE as u32,
    };
    let spec = KvStoreSpec { layout };
    let kern = s.kernel(&spec.source()?, "kv_store")?;
    let xb = s.upload(&rows)?;
    let [pos, seq, pages] = pl.upload(s)?;
    let bytes = layout.layer_bytes(pl.n_pages);
    let kv = s.upload(&vec![0xffu8; bytes])?;
    let args = KvStoreArgs {
        k: xb.ptr(),
        ldk: ld as u32,
        v: xb.ptr().offset(kv_dim * 4),
        ldv: ld as u32,
        pos: pos.ptr(),
        seq: seq.ptr(),
        pages: pages.ptr(),
        pages_per_seq: pl.pages_per_seq as u32,
        kv: kv.ptr(),
        tokens: t as u32,
    };
    // SAFETY: the cache holds every page of the table; rows of `ld`.
    unsafe { spec.launch(&kern, &s.stream, &args)? };
    s.stream.synchronize()?;
    let got: Vec<u8> = kv.to_vec()?;
    let mut cache = cpu::KvCache::with_types(1, KV_HEADS, hd, PAGE, pl.n_pages, types)?;
    cache.write_tokens(0, &k, &v, &pl.pos, &pl.seq, &pl.pages, pl.pages_per_seq)?;
    let mut want = vec![0xffu8; bytes];
    for &(sq, p) in &tokens {
        let r = pl.row(sq, p);
        let (page, slot) = (r / PAGE, r % PAGE);
        let (ko, vo) = layout.row_offsets(page, slot);
        let (kb, vb) = (
            cache.key_bytes(0, page, slot)?,
            cache.value_bytes(0, page, slot)?,
        );
        want[ko..ko + kb.len()].copy_from_slice(kb);
        want[vo..vo + vb.len()].copy_from_slice(vb);
    }
    // Units of comparison: a block (one element of a float type).
    let (mut units, mut differ) = (0usize, 0usize);
    let mut chunks = |ty: KvType, a: &[u8], b: &[u8]| {
        let unit = ty.ggml_type().block_bytes();
        for (x, y) in a.chunks(unit).zip(b.chunks(unit)) {
            units += 1;
            differ += usize::from(x != y);
        }
    };
    let page = layout.page_bytes();
    let keys = PAGE * layout.key_row_bytes();
    for p in 0..pl.n_pages {
        let (g, w) = (
            &got[p * page..(p + 1) * page],
            &want[p * page..(p + 1) * page],
        );
        chunks(types.k, &g[..keys], &w[..keys]);
        chunks(types.v, &g[keys..], &w[keys..]);
    }
    let tail = usize::from(got[pl.n_pages * page..] != want[pl.n_pages * page..]);
    let err = rel_dequantized(&got, &want, &layout, pl.n_pages)?;
    Ok(
        Check::new((differ + tail) as f64 / units.max(1) as f64, 0.0).note(format!(
            "{differ} of {units} blocks differ from the CPU's; decoded rel err {err:.1e}"
        )),
    )
}

/// ‖decoded GPU − decoded CPU‖ / ‖decoded CPU‖ over the written rows (0xff
/// rows decode to NaN in both and are skipped).
fn rel_dequantized(got: &[u8], want: &[u8], layout: &KvLayout, n_pages: usize) -> Res<f64> {
    let (mut num, mut den) = (0f64, 0f64);
    let n = layout.kv_dim() as usize;
    for page in 0..n_pages {
        for slot in 0..layout.page_size as usize {
            let (ko, vo) = layout.row_offsets(page, slot);
            for (o, ty, len) in [
                (ko, layout.types.k, layout.key_row_bytes()),
                (vo, layout.types.v, layout.value_row_bytes()),
            ] {
                if want[o..o + len].iter().all(|&b| b == 0xff) {
                    continue;
                }
                let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
                rocmforge::quant::dequantize(ty.ggml_type(), &got[o..o + len], &mut a)?;
                rocmforge::quant::dequantize(ty.ggml_type(), &want[o..o + len], &mut b)?;
                for (x, y) in a.iter().zip(&b) {
                    num += (*x as f64 - *y as f64).powi(2);
                    den += (*y as f64).powi(2);
                }
            }
        }
    }
    Ok(if num.is_nan() {
        f64::INFINITY
    } else {
        (num / den.max(f64::MIN_POSITIVE)).sqrt()
    })
}
