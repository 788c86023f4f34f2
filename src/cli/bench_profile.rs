//! `rfc bench --parallel N --profile` on a GPU: where one step of N
//! decodes (each sequence at the depth the benchmark decodes at) spends
//! its device time, kernel by kernel, summed over the layers.

use rocmforge::exec::gpu_model::GpuModel;
use rocmforge::exec::session::StepBackend;
use rocmforge::exec::step::StepInputs;

use super::CmdResult;

/// Profiles a step of `n` decode tokens at position `depth`, each of its
/// own sequence, and prints the launches grouped by label, costliest
/// first.
pub fn print(g: &mut GpuModel, n: usize, depth: usize) -> CmdResult {
    let l = g.limits();
    let pps = l.pages_per_seq;
    if n > l.max_seqs || n * pps > l.n_pages || depth >= pps * l.page_size {
        return Err(format!("no room to profile {n} sequences at depth {depth}").into());
    }
    // Any pages will do for timing: sequence i takes its own run of them.
    let step = StepInputs {
        tokens: (0..n as i32).collect(),
        positions: vec![depth as i32; n],
        seq_ids: (0..n as i32).collect(),
        page_table: (0..(n * pps) as i32).collect(),
        pages_per_seq: pps,
        output_rows: (0..n as i32).collect(),
    };
    // Once to compile and warm, once measured.
    g.profile_step(&step)?;
    let launches = g.profile_step(&step)?;
    let total: f32 = launches.iter().map(|(_, ms)| ms).sum();
    let mut by_label: Vec<(String, usize, f32)> = Vec::new();
    for (label, ms) in launches {
        match by_label.iter_mut().find(|(l, _, _)| *l == label) {
            Some(e) => {
                e.1 += 1;
                e.2 += ms;
            }
            None => by_label.push((label, 1, ms)),
        }
    }
    by_label.sort_by(|a, b| b.2.total_cmp(&a.2));
    println!("\nprofile: one step of {n} decodes at depth {depth}: {total:.3} ms on the device (launch by launch)");
    println!("| kernel | launches | ms | share |");
    println!("|---|---|---|---|");
    for (label, count, ms) in by_label {
        println!(
            "| {label} | {count} | {ms:.3} | {:.1} % |",
            100.0 * ms / total.max(1e-9)
        );
    }
    Ok(())
}
