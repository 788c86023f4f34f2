//! CPU decode attention over the paged KV cache in each cache type, at the
//! real model's shape (Qwen2.5-Coder-0.5B: 14 query heads, 2 kv heads of
//! 64): one token of each of `S` sequences attending to `D` cached
//! positions of its own. Median of repeats after a warm-up.
//!
//! `cargo bench --bench kv_attention [-- DEPTH [SEQS] [K/V]]` (default 1024
//! 1, every pair; `f16/f16` measures that pair alone, e.g. under perf)

use std::time::Instant;

use rocmforge::exec::cpu::{
    attention_with, AttentionShape, KvCache, KvType, KvTypes, SimdPath, TokenPlaces,
};

const HEADS: usize = 14;
const KV_HEADS: usize = 2;
const HD: usize = 64;
const PAGE: usize = 16;

fn random(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn main() {
    let mut nums = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let only = std::env::args().skip(1).find(|a| a.contains('/'));
    let depth = nums.next().unwrap_or(1024);
    let seqs = nums.next().unwrap_or(1);
    let pps = depth.div_ceil(PAGE);
    let page_table: Vec<i32> = (0..(seqs * pps) as i32).collect();
    let path = SimdPath::detect();
    println!(
        "decode attention: {seqs} sequence(s) × depth {depth}, {HEADS}/{KV_HEADS} heads of {HD}, {path:?}, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "{:<12} {:>10} {:>12} {:>10}",
        "K / V", "µs/layer", "KV bytes", "GB/s"
    );
    let pairs = [
        (KvType::F16, KvType::F16),
        (KvType::F32, KvType::F32),
        (KvType::Bf16, KvType::Bf16),
        (KvType::Q8_0, KvType::Q8_0),
        (KvType::Q4_0, KvType::Q4_0),
        (KvType::Q8_0, KvType::Q4_0),
        (KvType::F16, KvType::Q8_0),
        (KvType::Q5_1, KvType::Q5_1),
        (KvType::IQ4NL, KvType::IQ4NL),
    ];
    let mut seed = 0x9e3779b97f4a7c15u64;
    for (k, v) in pairs {
        if only.as_ref().is_some_and(|o| *o != format!("{k}/{v}")) {
            continue;
        }
        let types = KvTypes { k, v };
        let mut kv = KvCache::with_types(1, KV_HEADS, HD, PAGE, seqs * pps, types).unwrap();
        for s in 0..seqs {
            for p in 0..depth {
                let (kr, vr) = (
                    random(KV_HEADS * HD, &mut seed),
                    random(KV_HEADS * HD, &mut seed),
                );
                let at = kv.locate(&page_table, pps, s as i32, p as i32).unwrap();
                kv.write(0, &kr, &vr, at.page, at.slot).unwrap();
            }
        }
        let q = random(seqs * HEADS * HD, &mut seed);
        let positions = vec![depth as i32 - 1; seqs];
        let seq_ids: Vec<i32> = (0..seqs as i32).collect();
        let shape = AttentionShape {
            n_heads: HEADS,
            n_kv_heads: KV_HEADS,
            head_dim: HD,
            scale: 0.125,
            sliding_window: None,
            softcap: None,
        };
        let places = TokenPlaces {
            positions: &positions,
            seq_ids: &seq_ids,
            page_table: &page_table,
            pages_per_seq: pps,
        };
        let mut out = vec![0f32; q.len()];
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 20 || (start.elapsed().as_secs_f64() < 1.0 && times.len() < 5000) {
            let t = Instant::now();
            attention_with(path, &shape, &q, &kv, 0, &places, &mut out).unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let med = times[times.len() / 2];
        let bytes = types.bytes_per_token(1, KV_HEADS, HD) * depth * seqs;
        println!(
            "{:<12} {:>10.1} {:>12} {:>10.2}",
            format!("{k}/{v}"),
            med * 1e6,
            bytes,
            bytes as f64 / med / 1e9
        );
    }
}
