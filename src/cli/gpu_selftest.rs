//! `rfc gpu-selftest` (hidden): every GPU kernel against the CPU backend
//! (src/exec/cpu) on fresh random inputs, outputs poisoned with NaN before
//! each launch so unwritten elements fail; the injected faults; captured
//! graph replay; and timings of the real model's shapes. Prints a table.
//!
//! Tolerances (../shared/COMPARING.md): relative L2 error 1e-3 on f32
//! paths, 1e-2 where f16 is involved (the KV cache). Matmul references
//! dequantize the weights with the CPU backend's dequantizer and sum in
//! f64 (the CPU matmul itself quantizes activations to 8 bits, which the
//! GPU kernels do not).

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use half::f16;

use rocmforge::backend::{DeviceBuffer, DevicePtr, DeviceSpec, Gpu, Kernel, Stream, Vendor};
use rocmforge::codegen::{
    KernelCache, KernelSource, MatMulArgs, MatMulKernel, MatMulSpec, MatMulVariant, Target,
};
use rocmforge::exec::cpu;
use rocmforge::quant::GgmlType;

use super::CmdResult;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[derive(Debug, clap::Args)]
pub struct GpuSelftestArgs {
    /// The GPU to test: cuda[:N] or hip[:N].
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Seed of the random inputs (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run only cases whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Skip the timings.
    #[arg(long)]
    pub no_bench: bool,
}

const F32_TOL: f64 = 1e-3;
const F16_TOL: f64 = 1e-2;
/// A matmul whose input row is rounded to int8 (the one-token matvec on
/// quantized weights): reduced precision, as F16 (COMPARING.md).
const Q8_ACT_TOL: f64 = 1e-2;
/// The f16 tiles of K-quant weights: sc·q exact (Q6_K's above 2,048 to
/// 2^-12), the activations rounded to f16 (2^-12), f32 sums; measured
/// ~2e-4 against f32 activations, where the int8 tiles take 1e-2.
const F16K_TOL: f64 = 1e-3;

/// The tolerance of `spec`'s `variant` against the f32 reference.
fn matmul_tol(
    spec: &rocmforge::codegen::matmul::MatMulSpec,
    variant: rocmforge::codegen::matmul::MatMulVariant,
) -> f64 {
    if spec.takes_f16_tiles(variant) {
        F16K_TOL
    } else if spec.quantizes_input(variant) {
        Q8_ACT_TOL
    } else if variant.is_tiled() {
        // The tiled kernel multiplies f16 operands (COMPARING.md: GPU vs
        // CPU <= 1e-2 where f16 is used).
        F16_TOL
    } else {
        F32_TOL
    }
}
const NAN_BITS: u32 = 0x7fc0_0000;

/// One line of the report.
struct Row {
    name: String,
    err: Option<f64>,
    tol: f64,
    ok: bool,
    note: String,
}

/// What a case measured.
struct Check {
    err: f64,
    tol: f64,
    note: String,
}

impl Check {
    fn new(err: f64, tol: f64) -> Check {
        Check {
            err,
            tol,
            note: String::new(),
        }
    }
    fn note(mut self, n: impl Into<String>) -> Check {
        self.note = n.into();
        self
    }
    /// The larger error of two checks (both must pass).
    fn and(self, other: Check) -> Check {
        let worse = other.err / other.tol > self.err / self.tol;
        let note = [self.note.as_str(), other.note.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("; ");
        let base = if worse { other } else { self };
        Check { note, ..base }
    }
}

/// SplitMix64: small, seedable, good enough for test inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32(lo, hi)).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// The device, its stream and kernel cache, the inputs' generator and the
/// report.
struct Suite {
    gpu: Arc<Gpu>,
    stream: Stream,
    cache: KernelCache,
    warp: u32,
    rng: Rng,
    rows: Vec<Row>,
    filter: Option<String>,
    kernel_report: Vec<String>,
    /// The int8 prefill's quantized input rows and repacked weights,
    /// grown on demand.
    xq: Option<DeviceBuffer>,
    wq: Option<DeviceBuffer>,
}

impl Suite {
    /// Runs `f` as the case `name` (unless filtered out) and records it.
    fn case(&mut self, name: &str, f: impl FnOnce(&mut Suite) -> Res<Check>) {
        if self
            .filter
            .as_ref()
            .is_some_and(|flt| !name.contains(flt.as_str()))
        {
            return;
        }
        let row = match f(self) {
            Ok(c) => Row {
                name: name.into(),
                err: Some(c.err),
                tol: c.tol,
                ok: c.err <= c.tol,
                note: c.note,
            },
            Err(e) => Row {
                name: name.into(),
                err: None,
                tol: 0.0,
                ok: false,
                note: format!("ERROR: {e}"),
            },
        };
        eprintln!("{} {name}", if row.ok { "ok  " } else { "FAIL" });
        self.rows.push(row);
    }

    fn upload<T: bytemuck::Pod>(&self, data: &[T]) -> Res<DeviceBuffer> {
        Ok(DeviceBuffer::from_slice(&self.gpu, data)?)
    }

    /// `n` random f32 in [lo, hi) on the device.
    fn random_buffer(&mut self, n: usize, lo: f32, hi: f32) -> Res<DeviceBuffer> {
        let v = self.rng.vec(n, lo, hi);
        self.upload(&v)
    }

    /// An output buffer of `n` f32, every element NaN.
    fn poisoned(&self, n: usize) -> Res<DeviceBuffer> {
        let mut b = DeviceBuffer::new(&self.gpu, n * 4)?;
        self.stream.fill_buffer_u32(&mut b, NAN_BITS)?;
        Ok(b)
    }

    fn kernel(&mut self, src: &KernelSource, entry: &str) -> Res<Kernel> {
        let k = self.cache.kernel(&self.gpu, src, entry)?;
        let r = k.resources()?;
        let line = format!(
            "{:<58} {:<13} regs {:>3}  local {:>4} B  shared {:>5} B",
            src.label, entry, r.registers, r.local_bytes, r.static_shared_bytes
        );
        if !self.kernel_report.contains(&line) {
            self.kernel_report.push(line);
        }
        Ok(k)
    }

    /// `spec`'s kernels of `variant`, each reported like [`Suite::kernel`].
    fn matmul_kernel(&mut self, spec: &MatMulSpec, v: MatMulVariant) -> Res<MatMulKernel> {
        spec.kernels(v, |src, entry| self.kernel(src, entry))
    }

    /// Points `a` at room for the quantized input rows and repacked
    /// weights of `spec`'s `variant` at `t` tokens (where it uses them).
    fn int8_scratch(
        &mut self,
        spec: &MatMulSpec,
        v: MatMulVariant,
        t: u32,
        a: &mut MatMulArgs,
    ) -> Res<()> {
        a.xq = grown(&self.gpu, &mut self.xq, spec.xq_bytes(v, t) as usize)?;
        a.wq = grown(&self.gpu, &mut self.wq, spec.wq_bytes(v) as usize)?;
        Ok(())
    }

    /// Waits for the stream and reads `b` as f32.
    fn read(&self, b: &DeviceBuffer) -> Res<Vec<f32>> {
        self.stream.synchronize()?;
        Ok(b.to_vec::<f32>()?)
    }
}

/// A buffer of at least `bytes` in `slot` (NULL for none).
fn grown(gpu: &Arc<Gpu>, slot: &mut Option<DeviceBuffer>, bytes: usize) -> Res<DevicePtr> {
    if bytes == 0 {
        return Ok(DevicePtr::NULL);
    }
    if slot.as_ref().is_none_or(|b| b.len() < bytes) {
        *slot = None;
        *slot = Some(DeviceBuffer::new(gpu, bytes)?);
    }
    Ok(slot.as_ref().map_or(DevicePtr::NULL, |b| b.ptr()))
}

/// ‖a − b‖₂ / ‖b‖₂ in f64; infinite if `a` holds NaN/Inf or sizes differ.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    if den == 0.0 {
        return num.sqrt();
    }
    (num / den).sqrt()
}

pub fn run(args: GpuSelftestArgs) -> CmdResult {
    let gpu = match rocmforge::backend::Device::open(DeviceSpec::parse(&args.device)?)? {
        rocmforge::backend::Device::Gpu(g) => g,
        rocmforge::backend::Device::Cpu => return Err("gpu-selftest needs a GPU device".into()),
    };
    let compiler = gpu.compiler()?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let info = gpu.info().clone();
    println!(
        "device {}:{} {} ({}, {} SMs, {:.1} GiB), driver {}, {} ({}), seed {seed}",
        info.vendor,
        info.ordinal,
        info.name,
        info.arch,
        info.multiprocessors,
        info.total_memory as f64 / (1u64 << 30) as f64,
        info.driver_version,
        compiler.version_string(),
        compiler.library
    );
    let (free_before, _) = gpu.memory_info()?;
    let stack_before = gpu.stack_limit()?;
    let cache_dir = std::env::temp_dir().join(format!("rfc-selftest-{}", std::process::id()));
    let mut suite = Suite {
        stream: Stream::new(&gpu)?,
        warp: Target::of(&info).warp_size(),
        gpu: gpu.clone(),
        cache: KernelCache::new(Some(cache_dir.clone())),
        rng: Rng(seed),
        rows: Vec::new(),
        filter: args.filter.clone(),
        kernel_report: Vec::new(),
        xq: None,
        wq: None,
    };
    let started = Instant::now();
    cases::all(&mut suite);
    families::all(&mut suite);
    experts::all(&mut suite);
    faults::all(&mut suite);
    let mut bench_lines = Vec::new();
    if !args.no_bench {
        bench_lines = bench::all(&mut suite);
    }
    let elapsed = started.elapsed();
    print_report(&suite, &bench_lines);
    let failed = suite.rows.iter().filter(|r| !r.ok).count();
    let total = suite.rows.len();
    drop(suite);
    let _ = std::fs::remove_dir_all(&cache_dir);
    gpu.synchronize()?;
    let (free_after, _) = gpu.memory_info()?;
    let leaked = free_before as i64 - free_after as i64;
    // The driver's local-memory reservation for kernels that spill grows
    // with the largest per-thread stack run so far and is kept for the
    // context's life: not ours to return. Allowed at its upper bound
    // (every thread an SM can hold, on every SM).
    let stack_after = gpu.stack_limit()?;
    let threads_per_sm = match gpu.vendor() {
        Vendor::Cuda => 2048,
        Vendor::Hip => 2560,
    };
    let driver_stack = stack_after.saturating_sub(stack_before)
        * threads_per_sm
        * gpu.info().multiprocessors as usize;
    if driver_stack > 0 {
        println!(
            "the driver's per-thread stack grew from {stack_before} to {stack_after} bytes \
             (kernels with local memory): up to {driver_stack} bytes kept by the driver"
        );
    }
    println!(
        "device memory free before {:.1} MiB, after {:.1} MiB (difference {} bytes); {:.1} s",
        free_before as f64 / 1048576.0,
        free_after as f64 / 1048576.0,
        leaked,
        elapsed.as_secs_f64()
    );
    println!("{} of {total} checks passed", total - failed);
    if failed > 0 {
        return Err(format!("{failed} of {total} GPU checks failed").into());
    }
    if leaked > (4 << 20) + driver_stack as i64 {
        return Err(format!("{leaked} bytes of device memory not returned").into());
    }
    Ok(())
}

fn print_report(s: &Suite, bench: &[String]) {
    println!("\nkernel resources (registers per thread, local memory per thread = spills/stack):");
    for l in &s.kernel_report {
        println!("  {l}");
    }
    if !bench.is_empty() {
        println!("\ntimings (median of repeats, CUDA/HIP events):");
        for l in bench {
            println!("  {l}");
        }
    }
    println!("\n{:<52} {:>10} {:>8}  result", "check", "rel.err", "tol");
    for r in &s.rows {
        let err = r.err.map_or("-".to_string(), |e| format!("{e:.2e}"));
        let tol = if r.tol > 0.0 {
            format!("{:.0e}", r.tol)
        } else {
            "-".into()
        };
        let res = if r.ok { "PASS" } else { "FAIL" };
        println!("{:<52} {:>10} {:>8}  {res} {}", r.name, err, tol, r.note);
    }
}

/// Random weight rows of `ty` with sane scales: random bytes, then every
/// block's f16 scale fields overwritten by small positive values.
fn random_weights(rng: &mut Rng, ty: GgmlType, rows: usize, k: usize) -> Vec<u8> {
    use GgmlType::*;
    if matches!(ty, F32 | F16 | BF16) {
        let v = rng.vec(rows * k, -1.0, 1.0);
        return match ty {
            F32 => bytemuck::cast_slice(&v).to_vec(),
            F16 => v
                .iter()
                .flat_map(|x| f16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => v
                .iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect(),
        };
    }
    let bb = ty.block_bytes();
    let nblocks = rows * k / ty.block_len();
    let mut data = rng.bytes(nblocks * bb);
    // (offset of d, offset of a second scale (dmin / m) if any). Every
    // other byte pattern of these types is a valid block (random levels,
    // sub-scales, grid indices and signs).
    let (d_at, m_at): (usize, Option<usize>) = match ty {
        Q4_1 | Q5_1 => (0, Some(2)),
        Q2_K => (80, Some(82)),
        Q3_K => (108, None),
        Q4_K | Q5_K => (0, Some(2)),
        Q6_K => (208, None),
        TQ1_0 => (52, None),
        TQ2_0 => (64, None),
        _ => (0, None),
    };
    for b in data.chunks_exact_mut(bb) {
        let d = rng.f32(0.002, 0.02);
        match ty {
            // A power of two 2^(e - 128) in 2^-9..2^-6 (times values up to 12).
            MXFP4 => b[0] = 119 + (rng.next_u64() % 4) as u8,
            // d's f16 bits in the top nibbles of the four scale words.
            IQ1_M => {
                let bits = f16::from_f32(d).to_bits();
                for w in 0..4 {
                    let nib = ((bits >> (4 * w)) & 0xf) as u8;
                    b[49 + 2 * w] = (b[49 + 2 * w] & 0x0f) | nib << 4;
                }
            }
            _ => b[d_at..d_at + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes()),
        }
        if let Some(m) = m_at {
            let v = if matches!(ty, Q4_1 | Q5_1) {
                rng.f32(-0.1, 0.1)
            } else {
                rng.f32(0.0, 0.01)
            };
            b[m..m + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
        }
    }
    data
}

/// Row-major f32 of `rows × k` weights, via the CPU backend's dequantizer.
fn dequantized(ty: GgmlType, data: &[u8], rows: usize, k: usize) -> Res<Vec<f32>> {
    let rb = data.len() / rows;
    let mut out = vec![0f32; rows * k];
    for (r, o) in out.chunks_exact_mut(k).enumerate() {
        cpu::dequantize_row(ty, &data[r * rb..(r + 1) * rb], o)?;
    }
    Ok(out)
}

/// `x[t] · w[j]` summed in f64, for T tokens and `rows` rows.
fn ref_matmul(x: &[f32], w: &[f32], t: usize, k: usize, rows: usize) -> Vec<f32> {
    let mut out = vec![0f32; t * rows];
    for i in 0..t {
        for j in 0..rows {
            let s: f64 = (0..k)
                .map(|e| x[i * k + e] as f64 * w[j * k + e] as f64)
                .sum();
            out[i * rows + j] = s as f32;
        }
    }
    out
}

mod bench;
mod cases;
mod experts;
mod families;
mod faults;
mod kv_types;
mod sampling;
mod steps;
