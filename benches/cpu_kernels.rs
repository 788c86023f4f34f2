//! CPU matmul throughput at the real model's shapes (Qwen2.5-Coder-0.5B:
//! d_model 896, ffn 4864, 2 kv heads of 64, vocab 151936), decode-shaped
//! (T=1) and prefill-shaped (T=512). Median of repeats after a warm-up.
//!
//! `cargo bench --bench cpu_kernels [-- [FILTER] [--all-paths] [--t N]]`

use std::time::{Duration, Instant};

use rocmforge::exec::cpu::{matmul_with, InterleavedRows, QuantizedActs, SimdPath, WeightMatrix};
use rocmforge::quant::{self, GgmlType};
use rocmforge::synth::{random_data, SynthRng, Values};

/// (name, k = cols, n = rows)
const SHAPES: [(&str, usize, usize); 5] = [
    ("attn_q/o 896x896", 896, 896),
    ("attn_k/v 896x128", 896, 128),
    ("ffn_gate/up 896x4864", 896, 4864),
    ("ffn_down 4864x896", 4864, 896),
    ("output 896x151936", 896, 151936),
];
const TYPES: [GgmlType; 17] = [
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_S,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
    GgmlType::IQ1_S,
    GgmlType::IQ1_M,
];

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

/// This process's user+system CPU seconds (Linux; 10 ms ticks), so that a
/// run on a shared, loaded machine can still be judged per CPU second.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (field(11) + field(12)) / 100.0
}

/// Median wall seconds of `f` over repeats filling about `budget`, and the
/// mean CPU seconds per call (all threads).
fn median_secs(budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut times = vec![];
    let (start, cpu0) = (Instant::now(), cpu_secs());
    while times.len() < 5 || (start.elapsed() < budget && times.len() < 2000) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    let cpu = (cpu_secs() - cpu0) / times.len() as f64;
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times[times.len() / 2], cpu)
}

struct Args {
    filter: Option<String>,
    /// `--shape K,N`: one extra shape (cols, rows) instead of the model's.
    shape: Option<(usize, usize)>,
    all_paths: bool,
    tokens: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args {
        filter: None,
        shape: None,
        all_paths: false,
        tokens: vec![1, 512],
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--bench" => {}
            "--all-paths" => a.all_paths = true,
            "--shape" => {
                let v = it.next().expect("--shape K,N");
                let (k, n) = v.split_once(',').expect("--shape K,N");
                a.shape = Some((k.parse().expect("K"), n.parse().expect("N")));
            }
            "--t" => a.tokens = vec![it.next().and_then(|v| v.parse().ok()).expect("--t N")],
            _ => a.filter = Some(s),
        }
    }
    a
}

/// Read bandwidth of this machine: all threads summing a 256 MiB buffer
/// (the decode roofline: weights are read once per token).
fn read_bandwidth() -> f64 {
    use rayon::prelude::*;
    let buf = vec![1u64; 32 << 20];
    let (s, _) = median_secs(Duration::from_millis(1000), || {
        let sum: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &v| a.wrapping_add(v)))
            .sum();
        std::hint::black_box(sum);
    });
    (buf.len() * 8) as f64 / s / 1e9
}

/// Peak int8 multiply-adds per second of one core: independent chains of
/// the path's dot instruction on registers only (the prefill roofline).
#[cfg(target_arch = "x86_64")]
fn int8_peak(path: SimdPath) -> f64 {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(iters: usize) -> i32 {
        let (mut a, b) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-2));
        let mut acc = [_mm256_setzero_si256(); 8];
        for _ in 0..iters {
            // A fresh operand every round, so nothing is loop-invariant.
            a = _mm256_add_epi8(a, _mm256_set1_epi8(1));
            for v in acc.iter_mut() {
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
                *v = _mm256_add_epi32(*v, p);
            }
        }
        acc.iter().map(|v| _mm256_extract_epi32::<0>(*v)).sum()
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn vnni(iters: usize) -> i32 {
        let (mut a, b) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
        let mut acc = [_mm512_setzero_si512(); 8];
        for _ in 0..iters {
            a = _mm512_add_epi8(a, _mm512_set1_epi8(1));
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        acc.iter().map(|v| _mm512_reduce_add_epi32(*v)).sum()
    }
    let iters = 10_000_000;
    let (s, _) = median_secs(Duration::from_millis(500), || {
        // SAFETY: only called for a path whose features were detected.
        let r = unsafe {
            match path {
                SimdPath::Avx512Vnni => vnni(iters),
                _ => avx2(iters),
            }
        };
        std::hint::black_box(r);
    });
    let macs_per_iter = if path == SimdPath::Avx512Vnni {
        8 * 64
    } else {
        8 * 32
    };
    (iters * macs_per_iter) as f64 / s / 1e9
}

#[cfg(not(target_arch = "x86_64"))]
fn int8_peak(_: SimdPath) -> f64 {
    f64::NAN
}

fn main() {
    let args = args();
    println!("memory read bandwidth {:.1} GB/s", read_bandwidth());
    for path in SimdPath::available()
        .into_iter()
        .filter(|&p| p != SimdPath::Portable)
    {
        println!(
            "{path:?} int8 peak, one core: {:.1} GMAC/s",
            int8_peak(path)
        );
    }
    let paths = if args.all_paths {
        SimdPath::available()
    } else {
        vec![SimdPath::detect()]
    };
    println!(
        "threads {}, paths {:?}",
        rayon::current_num_threads(),
        paths
    );
    println!(
        "{:<24} {:>5} {:>5} {:<11} {:>9} {:>7} {:>8} {:>9} {:>13}",
        "shape", "type", "T", "path", "ms", "cpu-ms", "GB/s", "GFLOP/s", "GFLOP/cpu-s"
    );
    let mut seed = 0x9e3779b97f4a7c15u64;
    let custom = args.shape.map(|(k, n)| [("custom", k, n)]);
    let shapes: &[(&str, usize, usize)] = match &custom {
        Some(c) => c,
        None => &SHAPES,
    };
    for &(name, k, n) in shapes {
        for ty in TYPES {
            let label = format!("{name} {ty}");
            if k % ty.block_len() != 0
                || args
                    .filter
                    .as_ref()
                    .is_some_and(|f| !label.contains(f.as_str()))
            {
                continue;
            }
            let mut w = Vec::new();
            if quant::quantize(ty, &random(n * k, &mut seed), &mut w).is_err() {
                // The lattice types have no quantizer: random valid blocks.
                let mut rng = SynthRng::new(seed);
                w = random_data(&mut rng, ty, n * k, Values::BENCHMARK).unwrap();
            }
            let m = WeightMatrix::new(ty, &w, n, k);
            // What the CPU model gives the AVX2 path: the interleaved copy.
            let copy = InterleavedRows::build(&m);
            for &t in &args.tokens {
                // llama.cpp computes the output projection for the last token only.
                if n > 100_000 && t > 1 {
                    continue;
                }
                let x = random(t * k, &mut seed);
                let mut acts = QuantizedActs::new();
                let mut out = vec![0f32; t * n];
                // The portable path is a reference, too slow to time at prefill sizes.
                // AVX2 twice where the type has an interleaved copy: with it
                // (what the model runs) and in GGUF order (the experts' slices).
                let runs = paths
                    .iter()
                    .filter(|&&p| t == 1 || p != SimdPath::Portable || paths.len() == 1)
                    .flat_map(|&p| match (p, &copy) {
                        (SimdPath::Avx2, Some(c)) => {
                            vec![(p, Some(c), "Avx2"), (p, None, "Avx2-gguf")]
                        }
                        _ => vec![(p, None, "")],
                    });
                for (path, copy, label) in runs {
                    acts.prepare_with(path, &x, t, k, &[ty]).unwrap();
                    let budget = Duration::from_millis(if t == 1 { 300 } else { 1500 });
                    let m = m.with_interleaved(copy);
                    let (s, cpu) = median_secs(budget, || {
                        matmul_with(path, &m, &acts, &mut out, n, 0).unwrap()
                    });
                    let flop = 2.0 * (n * k * t) as f64;
                    let label = if label.is_empty() {
                        format!("{path:?}")
                    } else {
                        label.to_string()
                    };
                    println!(
                        "{name:<24} {:>5} {t:>5} {:<11} {:>9.3} {:>7.3} {:>8.1} {:>9.1} {:>13.1}",
                        ty.name(),
                        label,
                        s * 1e3,
                        cpu * 1e3,
                        w.len() as f64 / s / 1e9,
                        flop / s / 1e9,
                        flop / cpu / 1e9
                    );
                }
            }
        }
    }
}
