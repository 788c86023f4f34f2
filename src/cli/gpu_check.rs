//! `rfc gpu-check MODEL` (hidden): the whole model on a GPU against the CPU
//! backend. For several prompts (lengths that hit every matmul variant,
//! and one longer than a step, so prefill runs in chunks): last-position
//! logits after the prompt, logits of decode steps fed the CPU's greedy
//! tokens, and greedy continuations both through the logits and through
//! the device argmax, compared token by token up to the CPU's first
//! near-tie (../shared/COMPARING.md). Then 1000 decode steps replaying the
//! captured graph with device memory read before and after, the same steps
//! without graphs (must pick the same tokens), and the memory after the
//! model is dropped. Prints a table; fails if any check fails. Both
//! backends hold their KV caches in the types `--cache-type-k/-v` name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rocmforge::backend::{Device, DeviceSpec, Gpu};
use rocmforge::exec::any_backend::{argmax, AnyBackend};
use rocmforge::exec::kv_pages::{KvPages, SeqPages};
use rocmforge::exec::session::StepBackend;
use rocmforge::exec::step::StepInputs;
use rocmforge::load::load_gpu;
use rocmforge::load::{load_cpu, LoadOptions};

use super::CmdResult;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, clap::Args)]
pub struct GpuCheckArgs {
    /// The model (a GGUF file).
    pub model: PathBuf,
    /// The GPU: cuda[:N] or hip[:N].
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Prompt lengths in tokens (pseudo-random ids), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,3,7,40,130,700")]
    pub prompts: Vec<usize>,
    /// Greedy tokens compared after each prompt.
    #[arg(long, default_value_t = 24)]
    pub greedy: usize,
    /// Decode steps of the memory and replay check.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Context length of both models (capped by the model's).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Tokens per step: longer prompts are evaluated in chunks of this size.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// The CPU reference: `f32` runs the CPU executor on a copy of the
    /// model with every weight dequantized to F32 (the same weight values,
    /// f32 activations, as the GPU kernels compute); `native` runs it on the
    /// file itself (the CPU multiplies quantized weights with 8-bit
    /// activations, which alone moves logits by up to ~1e-2).
    #[arg(long, default_value = "f32", value_parser = ["f32", "native"])]
    pub reference: String,
    /// The KV cache's types, the same on both backends (whose caches then
    /// hold the same blocks: the GPU quantizes as the CPU does).
    #[command(flatten)]
    pub cache_type: super::cache_type_args::CacheTypeArgs,
}

/// GPU vs CPU where f16 (the KV cache) is involved (COMPARING.md).
const TOL: f64 = 1e-2;

/// ‖a − b‖₂ / ‖b‖₂ in f64; infinite on NaN/Inf or a size mismatch.
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
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Whether the CPU's two best logits are too close to call: their gap is
/// under the tolerance as an absolute size, TOL times the logits' RMS (a
/// relative error of TOL over the vector is that much per element).
fn near_tie(logits: &[f32]) -> bool {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    let mut sq = 0f64;
    for &v in logits {
        sq += (v as f64).powi(2);
        if v > a {
            (a, b) = (v, a);
        } else if v > b {
            b = v;
        }
    }
    let rms = (sq / logits.len().max(1) as f64).sqrt();
    ((a - b) as f64) < TOL * rms
}

/// Writes `src` with every tensor as F32 (dequantized; metadata kept), the
/// CPU reference of the same weight values without activation quantization.
fn write_f32_copy(src: &Path, dst: &Path) -> Res<()> {
    use rocmforge::gguf::{GgufFile, GgufWriter};
    use rocmforge::quant::GgmlType;
    let file = GgufFile::open(src)?;
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata().iter() {
        if k != "general.file_type" {
            w.add_metadata(k, v.clone())?;
        }
    }
    w.add_metadata("general.file_type", 0u32)?;
    for t in file.tensors() {
        w.declare_tensor(&t.name, &t.dims, GgmlType::F32)?;
    }
    let out = std::io::BufWriter::new(std::fs::File::create(dst)?);
    let mut stream = w.begin(out)?;
    for t in file.tensors() {
        let view = file.view(t);
        let mut values = vec![0f32; t.n_elements() as usize];
        rocmforge::quant::dequantize(t.ty, view.data, &mut values)?;
        stream.write_tensor(&t.name, bytemuck::cast_slice(&values))?;
    }
    stream.finish()?;
    Ok(())
}

/// One sequence's pages, driving a backend step by step (what `Session`
/// does, plus the argmax steps it does not offer).
struct Driver {
    pages: KvPages,
    seq: SeqPages,
}

impl Driver {
    fn new(b: &impl StepBackend) -> Driver {
        let l = b.limits();
        Driver {
            pages: KvPages::new(l.n_pages, l.page_size),
            seq: SeqPages::default(),
        }
    }

    fn reset(&mut self) {
        self.pages.release(&mut self.seq);
    }

    /// The next step of `tokens`, its pages reserved.
    fn step(&mut self, b: &impl StepBackend, tokens: &[u32]) -> Res<StepInputs> {
        let start = self.seq.len;
        self.pages.reserve(&mut self.seq, start + tokens.len())?;
        self.seq.len += tokens.len();
        let pps = b.limits().pages_per_seq;
        Ok(StepInputs::single(
            tokens,
            start,
            &self.seq.pages,
            pps,
            false,
        ))
    }

    /// Evaluates `prompt` in chunks of the step limit; the last logits.
    fn prefill<B: StepBackend>(&mut self, b: &mut B, prompt: &[u32]) -> Res<Vec<f32>> {
        self.reset();
        let mut last = Vec::new();
        for part in prompt.chunks(b.limits().max_tokens) {
            let s = self.step(b, part)?;
            last = b.run_step(&s)?.to_vec();
        }
        Ok(last)
    }

    fn logits<B: StepBackend>(&mut self, b: &mut B, token: u32) -> Res<Vec<f32>> {
        let s = self.step(b, &[token])?;
        Ok(b.run_step(&s)?.to_vec())
    }

    fn argmax(&mut self, b: &mut AnyBackend, token: u32) -> Res<u32> {
        let s = self.step(b, &[token])?;
        Ok(b.run_step_argmax(&s)?[0])
    }
}

/// What the CPU does after a prompt: logits, greedy tokens, and the logits
/// of each decode step.
struct Reference {
    prompt_logits: Vec<f32>,
    tokens: Vec<u32>,
    step_logits: Vec<Vec<f32>>,
}

fn cpu_reference<B: StepBackend>(
    cpu: &mut B,
    d: &mut Driver,
    prompt: &[u32],
    n: usize,
) -> Res<Reference> {
    let prompt_logits = d.prefill(cpu, prompt)?;
    let mut tokens = vec![argmax(&prompt_logits)];
    let mut step_logits = vec![prompt_logits.clone()];
    while tokens.len() < n {
        let l = d.logits(cpu, *tokens.last().unwrap_or(&0))?;
        tokens.push(argmax(&l));
        step_logits.push(l);
    }
    Ok(Reference {
        prompt_logits,
        tokens,
        step_logits,
    })
}

/// Tokens compared before the CPU's first near-tie, and whether they all
/// matched.
fn compare_greedy(r: &Reference, got: &[u32]) -> (usize, bool) {
    let mut n = 0;
    for (i, &t) in r.tokens.iter().enumerate() {
        if near_tie(&r.step_logits[i]) || i >= got.len() {
            break;
        }
        if got[i] != t {
            return (n, false);
        }
        n += 1;
    }
    (n, true)
}

/// One prompt's line of the report.
struct PromptRow {
    len: usize,
    prompt_err: f64,
    decode_err: f64,
    greedy_logits: (usize, bool),
    greedy_argmax: (usize, bool),
}

impl PromptRow {
    fn ok(&self) -> bool {
        self.prompt_err <= TOL
            && self.decode_err <= TOL
            && self.greedy_logits.1
            && self.greedy_argmax.1
    }
}

fn check_prompt(
    cpu: &mut AnyBackend,
    gpu: &mut AnyBackend,
    prompt: &[u32],
    n: usize,
) -> Res<PromptRow> {
    let mut dc = Driver::new(cpu);
    let r = cpu_reference(cpu, &mut dc, prompt, n)?;
    let mut dg = Driver::new(gpu);
    // Logits mode, teacher-forced with the CPU's tokens.
    let first = dg.prefill(gpu, prompt)?;
    let prompt_err = rel_err(&first, &r.prompt_logits);
    let mut decode_err = 0f64;
    let mut own = vec![argmax(&first)];
    for i in 1..n {
        let l = dg.logits(gpu, r.tokens[i - 1])?;
        decode_err = decode_err.max(rel_err(&l, &r.step_logits[i]));
        own.push(argmax(&l));
    }
    let greedy_logits = compare_greedy(&r, &own);
    // Argmax mode: the GPU's own greedy continuation, only ids read back.
    let first = dg.prefill(gpu, prompt)?;
    let mut ids = vec![argmax(&first)];
    while ids.len() < n {
        let next = dg.argmax(gpu, *ids.last().unwrap_or(&0))?;
        ids.push(next);
    }
    let greedy_argmax = compare_greedy(&r, &ids);
    Ok(PromptRow {
        len: prompt.len(),
        prompt_err,
        decode_err,
        greedy_logits,
        greedy_argmax,
    })
}

/// Pseudo-random token ids below `vocab` (a fixed sequence per length).
fn prompt_ids(len: usize, vocab: usize) -> Vec<u32> {
    (0..len as u64)
        .map(|i| {
            ((i.wrapping_mul(2654435761).wrapping_add(len as u64 * 97)) >> 3) as u32 % vocab as u32
        })
        .collect()
}

/// The memory and replay check: `steps` greedy decode steps from a short
/// prompt through the captured graph, device memory read before and after,
/// then the first `compare` of them again with graphs off.
struct ReplayReport {
    steps: usize,
    free_before: usize,
    free_after: usize,
    tokens_per_s: f64,
    direct_tokens_per_s: f64,
    compared: usize,
    same: bool,
}

fn replay(gpu_model: &mut AnyBackend, gpu: &Arc<Gpu>, steps: usize) -> Res<ReplayReport> {
    let prompt = prompt_ids(8, gpu_model.vocab());
    let mut d = Driver::new(gpu_model);
    let run = |m: &mut AnyBackend, d: &mut Driver, n: usize| -> Res<(Vec<u32>, f64)> {
        let first = d.prefill(m, &prompt)?;
        let mut ids = vec![argmax(&first)];
        let t0 = Instant::now();
        for _ in 1..n {
            let next = d.argmax(m, *ids.last().unwrap_or(&0))?;
            ids.push(next);
        }
        Ok((ids, (n - 1) as f64 / t0.elapsed().as_secs_f64()))
    };
    run(gpu_model, &mut d, 4)?; // warm-up: captures the graphs
    gpu.synchronize()?;
    let (free_before, _) = gpu.memory_info()?;
    let (graph_ids, tokens_per_s) = run(gpu_model, &mut d, steps)?;
    gpu.synchronize()?;
    let (free_after, _) = gpu.memory_info()?;
    let compare = steps.min(200);
    if let Some(g) = gpu_model.gpu_model() {
        g.set_graphs(false);
    }
    let (direct_ids, direct_tokens_per_s) = run(gpu_model, &mut d, compare)?;
    if let Some(g) = gpu_model.gpu_model() {
        g.set_graphs(true);
    }
    Ok(ReplayReport {
        steps,
        free_before,
        free_after,
        tokens_per_s,
        direct_tokens_per_s,
        compared: compare,
        same: graph_ids[..compare] == direct_ids[..],
    })
}

/// A launch fault injected into a prefill step: the step fails with an
/// error, and running it again gives the logits of an undisturbed run.
fn failed_launch_then_retry(m: &mut AnyBackend) -> Res<bool> {
    use rocmforge::backend::fault::{self, FaultPoint, Trigger};
    let prompt = prompt_ids(5, m.vocab());
    let mut d = Driver::new(m);
    let good = d.prefill(m, &prompt)?;
    fault::arm(FaultPoint::Launch, Trigger::Nth(7));
    let failed = d.prefill(m, &prompt).is_err();
    fault::disarm_all();
    let again = d.prefill(m, &prompt)?;
    Ok(failed && again == good)
}

/// The model's setup with its n-th device allocation failing, n = 1..: an
/// out-of-memory error, and device memory as before the attempt.
fn failed_setups(
    path: &Path,
    opts: &LoadOptions,
    gpu: &Arc<Gpu>,
) -> Res<Vec<(usize, bool, String)>> {
    use rocmforge::backend::fault::{self, FaultPoint, Trigger};
    let mut out = Vec::new();
    for n in 1..=8 {
        gpu.synchronize()?;
        let (before, _) = gpu.memory_info()?;
        fault::arm(FaultPoint::Alloc, Trigger::Nth(n as u64));
        let result = load_gpu(path, opts, gpu);
        fault::disarm_all();
        let Err(e) = result else {
            // Fewer allocations than n (every one was tried), or the n-th
            // was one of the optional ones that come last (the resident
            // repacked weights, which fall back to per-step repacks).
            break;
        };
        gpu.synchronize()?;
        let (after, _) = gpu.memory_info()?;
        let oom = e.to_string().contains("out of device memory");
        let note = format!(
            "error ({}), {} bytes not returned",
            if oom { "out of memory" } else { "OTHER" },
            before as i64 - after as i64
        );
        out.push((n, oom && before == after, note));
    }
    Ok(out)
}

fn open_gpu(spec: &str) -> Res<Arc<Gpu>> {
    match Device::open(DeviceSpec::parse(spec)?)? {
        Device::Gpu(g) => Ok(g),
        Device::Cpu => Err("gpu-check needs a GPU device (cuda[:N] or hip[:N])".into()),
    }
}

fn load_both(
    path: &Path,
    reference: &Path,
    opts: &LoadOptions,
    gpu: &Arc<Gpu>,
) -> Res<(AnyBackend, AnyBackend, f64)> {
    let cpu = load_cpu(reference, opts)?.session.into_backend();
    let t0 = Instant::now();
    let g = load_gpu(path, opts, gpu)?.session.into_backend();
    Ok((
        AnyBackend::Cpu {
            model: cpu,
            why: "reference".into(),
        },
        g,
        t0.elapsed().as_secs_f64(),
    ))
}

const MIB: f64 = 1048576.0;

pub fn run(args: GpuCheckArgs) -> CmdResult {
    let gpu = open_gpu(&args.device)?;
    println!("device {}", Device::Gpu(gpu.clone()).describe());
    gpu.synchronize()?;
    let (free_start, total) = gpu.memory_info()?;
    let opts = LoadOptions {
        max_tokens: args.max_tokens.max(1),
        max_rows: 1,
        context: args.ctx.max(args.steps + 16),
        kv_types: args.cache_type.types()?,
        ..Default::default()
    };
    println!("KV cache: {}", opts.kv_types);
    let f32_copy = std::env::temp_dir().join(format!("rfc-gpu-check-{}.gguf", std::process::id()));
    let reference = if args.reference == "f32" {
        write_f32_copy(&args.model, &f32_copy)?;
        println!("reference: the CPU executor on an F32 copy of the weights");
        f32_copy.as_path()
    } else {
        println!("reference: the CPU executor on the model as it is");
        args.model.as_path()
    };
    let loaded = load_both(&args.model, reference, &opts, &gpu);
    let _ = std::fs::remove_file(&f32_copy);
    let (mut cpu, mut g, load_s) = loaded?;
    if let Some(m) = g.gpu_model() {
        let f = m.footprint();
        println!(
            "gpu model: loaded in {load_s:.2} s, {} launches/step; weights {:.1} MiB, arena {:.1} MiB, kv cache {:.1} MiB, repacked weights {:.1} MiB, other {:.2} MiB",
            m.launches(),
            f.weights as f64 / MIB,
            f.arena as f64 / MIB,
            f.kv_cache as f64 / MIB,
            f.repacked_weights as f64 / MIB,
            f.other as f64 / MIB
        );
    }
    let vocab = g.vocab();
    let context = g.limits().context();
    let greedy = args.greedy.max(1);
    let mut rows = Vec::new();
    for &len in &args.prompts {
        if len + greedy > context {
            println!("prompt {len}: skipped (with {greedy} greedy tokens it exceeds the context of {context})");
            continue;
        }
        let prompt = prompt_ids(len.max(1), vocab);
        let row = check_prompt(&mut cpu, &mut g, &prompt, greedy)?;
        eprintln!("prompt {len}: {}", if row.ok() { "ok" } else { "FAIL" });
        rows.push(row);
    }
    drop(cpu);
    let steps = args.steps.min(context.saturating_sub(16)).max(2);
    let rep = replay(&mut g, &gpu, steps)?;
    let launch_fault = failed_launch_then_retry(&mut g)?;
    drop(g);
    let setup_faults = failed_setups(&args.model, &opts, &gpu)?;
    gpu.synchronize()?;
    let (free_end, _) = gpu.memory_info()?;
    print_report(&rows, &rep, free_start, free_end, total);
    println!(
        "a kernel launch failing mid-step: {}",
        if launch_fault {
            "an error, and the step then reruns to the same logits PASS"
        } else {
            "FAIL"
        }
    );
    for (n, ok, note) in &setup_faults {
        println!(
            "allocation {n} of the setup failing: {note} {}",
            if *ok { "PASS" } else { "FAIL" }
        );
    }
    let failed = rows.iter().filter(|r| !r.ok()).count()
        + usize::from(!launch_fault)
        + setup_faults.iter().filter(|f| !f.1).count()
        + usize::from(!rep.same)
        + usize::from(rep.free_after != rep.free_before);
    if failed > 0 {
        return Err(format!("{failed} GPU-vs-CPU checks failed").into());
    }
    println!("all GPU-vs-CPU checks passed");
    Ok(())
}

fn print_report(
    rows: &[PromptRow],
    rep: &ReplayReport,
    free_start: usize,
    free_end: usize,
    total: usize,
) {
    let greedy = |g: (usize, bool)| format!("{} {}", g.0, if g.1 { "same" } else { "DIFFER" });
    println!();
    println!("| prompt | prompt logits rel err | decode logits max rel err | greedy via logits | greedy via device argmax | ok |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.2e} | {:.2e} | {} | {} | {} |",
            r.len,
            r.prompt_err,
            r.decode_err,
            greedy(r.greedy_logits),
            greedy(r.greedy_argmax),
            if r.ok() { "PASS" } else { "FAIL" }
        );
    }
    println!("(greedy: tokens compared before the CPU's first near-tie, tolerance {TOL} relative)");
    println!();
    println!(
        "decode replay: {} steps, {:.1} tokens/s with the captured graph, {:.1} tokens/s with direct launches; first {} tokens {}",
        rep.steps,
        rep.tokens_per_s,
        rep.direct_tokens_per_s,
        rep.compared,
        if rep.same { "identical" } else { "DIFFER" }
    );
    println!(
        "device memory free: before the steps {:.1} MiB, after {:.1} MiB (difference {} bytes) {}",
        rep.free_before as f64 / MIB,
        rep.free_after as f64 / MIB,
        rep.free_before as i64 - rep.free_after as i64,
        if rep.free_before == rep.free_after {
            "PASS"
        } else {
            "FAIL"
        }
    );
    println!(
        "device memory free: before loading {:.1} MiB, after dropping the model {:.1} MiB of {:.1} MiB (difference {} bytes) {}",
        free_start as f64 / MIB,
        free_end as f64 / MIB,
        total as f64 / MIB,
        free_start as i64 - free_end as i64,
        // The context keeps what the driver reserved for the kernels
        // (e.g. local memory), so this one is reported, not judged.
        if free_start == free_end { "(same)" } else { "(info)" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocmforge::quant::GgmlType;
    use rocmforge::synth::{TinyArch, TinySpec};

    #[test]
    fn the_f32_copy_holds_the_same_model_in_f32() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("q.gguf"), dir.path().join("f.gguf"));
        let spec = TinySpec::for_type(TinyArch::Llama, GgmlType::Q8_0);
        std::fs::write(&src, spec.to_bytes(3).unwrap()).unwrap();
        write_f32_copy(&src, &dst).unwrap();
        let copy = rocmforge::gguf::GgufFile::open(&dst).unwrap();
        assert!(copy.tensors().iter().all(|t| t.ty == GgmlType::F32));
        let opts = LoadOptions {
            max_tokens: 8,
            max_rows: 1,
            context: 64,
            ..Default::default()
        };
        let prompt = [5u32, 6, 7];
        let q = load_cpu(&src, &opts)
            .unwrap()
            .session
            .eval_last(&prompt)
            .unwrap();
        let f = load_cpu(&dst, &opts)
            .unwrap()
            .session
            .eval_last(&prompt)
            .unwrap();
        // The quantized run differs only by its 8-bit activations.
        assert!(rel_err(&q, &f) < 2e-2, "{}", rel_err(&q, &f));
        assert!(rel_err(&q, &f) > 0.0);
    }

    #[test]
    fn a_gap_under_the_tolerance_is_a_near_tie() {
        assert!(near_tie(&[1.0, 1.0 + 1e-4, -1.0]));
        assert!(!near_tie(&[1.0, 2.0, -1.0]));
    }
}
