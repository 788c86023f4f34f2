//! `rfc ir MODEL.gguf [--after PASS|all|none] [--tokens T]`: the IR after a
//! pass; `rfc ir MODEL.gguf --stats [--json]`: what each pass changes (ops,
//! launches and weight bytes per decoded token) and the arena plan.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;

use serde_json::json;

use rocmforge::frontend::{self, Detected};
use rocmforge::gguf::GgufFile;
use rocmforge::ir::{text, DimEnv, Graph, NodeId};
use rocmforge::passes::stats::{stats, GraphStats};
use rocmforge::passes::{self, MemoryPlan};

use super::CmdResult;

#[derive(Debug, clap::Args)]
pub struct IrArgs {
    /// The model: a GGUF file, or an artifact (its final IR only: no --after, no --stats).
    pub model: PathBuf,
    /// Print the IR after this pass: qkv_concat, fuse, dce, plan_memory
    /// (with arena ranges), `all` (after each), or `none` (the frontend's graph).
    #[arg(long, default_value = "plan_memory")]
    pub after: String,
    /// The most tokens a step holds: the memory plan's size for `T`.
    #[arg(long, default_value_t = 512)]
    pub tokens: u64,
    /// Print statistics instead of the IR.
    #[arg(long)]
    pub stats: bool,
    /// With --stats: one JSON object.
    #[arg(long, requires = "stats")]
    pub json: bool,
    /// Use this architecture spec (TOML, like ir_specs/*.toml) instead of detecting one.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
}

pub fn run(args: IrArgs) -> CmdResult {
    let file = GgufFile::open(&args.model)?;
    if rocmforge::artifact::is_artifact(&file) {
        // A compiled artifact holds its final IR: shown as stored.
        let text = rocmforge::artifact::summary::stored_ir(file, &args.after, args.stats)?;
        return write_stdout(&text);
    }
    let detected = frontend::detect_or_load(&file, args.spec.as_deref())?;
    let (_, graph) = frontend::build_graph_with(&file, &detected.spec)?;
    let env = DimEnv {
        tokens: args.tokens,
        ..DimEnv::default()
    };
    let text = if args.stats {
        stats_report(&detected, graph, env, args.json)?
    } else {
        dump(&detected, graph, env, &args.after)?
    };
    write_stdout(&text)
}

fn write_stdout(text: &str) -> CmdResult {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()) {
        // `rfc ir m.gguf | head` is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// The chosen spec and why, as the first line of every report.
fn spec_line(d: &Detected) -> String {
    format!("# spec {}: {}\n", d.spec.name, d.reason)
}

/// The IR after `after` (or after each pass).
fn dump(d: &Detected, graph: Graph, env: DimEnv, after: &str) -> Result<String, passes::PassError> {
    let mut out = spec_line(d);
    match after {
        "none" => out += &text::print(&graph),
        "all" => {
            passes::compile_with(graph, env, |pass, g, plan| {
                out += &format!("\n# after {pass}\n");
                out += &print(g, plan);
            })?;
        }
        "plan_memory" => {
            let c = passes::compile(graph, env)?;
            out += &print(&c.graph, Some(&c.plan));
        }
        name => out += &text::print(&passes::run_until(graph, name)?),
    }
    Ok(out)
}

/// The graph as text, with arena ranges when there is a plan.
fn print(g: &Graph, plan: Option<&MemoryPlan>) -> String {
    match plan {
        None => text::print(g),
        Some(p) => {
            let range = |id: NodeId| -> Option<Range<u64>> {
                p.slot_of(id).map(|s| s.offset..s.offset + s.bytes)
            };
            let summary = format!(
                "# arena {} bytes for T={} (lower bound {}, naive {}, order {})\n",
                p.arena_bytes, p.env.tokens, p.lower_bound, p.naive_bytes, p.strategy
            );
            summary + &text::print_with_placement(g, range)
        }
    }
}

/// Stats of the graph before and after each rewriting pass, and the plan.
fn stats_report(
    d: &Detected,
    graph: Graph,
    env: DimEnv,
    as_json: bool,
) -> Result<String, passes::PassError> {
    let mut stages = vec![("none".to_string(), stats(&graph))];
    let compiled = passes::compile_with(graph, env, |pass, g, plan| {
        if plan.is_none() {
            stages.push((pass.to_string(), stats(g)));
        }
    })?;
    let last = &stages.last().expect("the frontend's stage is first").1;
    let p = &compiled.plan;
    if as_json {
        let value = json!({
            "spec": d.spec.name,
            "spec_reason": d.reason,
            "env": { "tokens": env.tokens, "rows": env.rows, "seqs": env.seqs, "pages": env.pages, "kv_len": env.kv_len },
            "ops": last.ops,
            "ops_per_layer": last.ops_per_layer,
            "launches_per_token": last.launches_per_token,
            "weight_bytes_per_token": last.weight_bytes_per_token,
            "weight_bytes_stored": last.weight_bytes_stored,
            "arena_bytes": p.arena_bytes,
            "arena_lower_bound": p.lower_bound,
            "naive_bytes": p.naive_bytes,
            "placement_order": p.strategy,
            "stages": stages.iter().map(|(name, s)| stage_json(name, s)).collect::<Vec<_>>(),
        });
        let mut text = serde_json::to_string_pretty(&value).expect("a JSON value prints");
        text.push('\n');
        return Ok(text);
    }
    Ok(spec_line(d) + &stats_text(&stages, p))
}

fn stage_json(name: &str, s: &GraphStats) -> serde_json::Value {
    json!({
        "after": name,
        "nodes": s.nodes,
        "ops": s.ops,
        "ops_per_layer": s.ops_per_layer,
        "launches_per_token": s.launches_per_token,
        "weight_bytes_per_token": s.weight_bytes_per_token,
    })
}

fn stats_text(stages: &[(String, GraphStats)], p: &MemoryPlan) -> String {
    let mut out = format!(
        "{:<12} {:>6} {:>10} {:>10} {:>16}\n",
        "after", "nodes", "launches", "per layer", "weight bytes"
    );
    for (name, s) in stages {
        out += &format!(
            "{name:<12} {:>6} {:>10} {:>10} {:>16}\n",
            s.nodes, s.launches_per_token, s.ops_per_layer, s.weight_bytes_per_token
        );
    }
    let last = &stages.last().expect("stages are not empty").1;
    let ops: Vec<String> = last.ops.iter().map(|(k, n)| format!("{k} {n}")).collect();
    out += &format!("ops after all passes: {}\n", ops.join(", "));
    if last.ops.contains_key("experts") {
        // Mixture of experts: a token reads only its top-k experts' matrices.
        out += &format!(
            "weight bytes stored {}, read per token {} ({:.1} %: only the routed experts)\n",
            last.weight_bytes_stored,
            last.weight_bytes_per_token,
            100.0 * last.weight_bytes_per_token as f64 / last.weight_bytes_stored.max(1) as f64
        );
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let ratio = p.arena_bytes as f64 / p.lower_bound.max(1) as f64;
    out += &format!(
        "arena for T={} R={}: {} bytes ({:.2} MiB), lower bound {} ({:.2} MiB, arena/bound {ratio:.4}), naive {} ({:.2} MiB), order {}\n",
        p.env.tokens,
        p.env.rows,
        p.arena_bytes,
        mib(p.arena_bytes),
        p.lower_bound,
        mib(p.lower_bound),
        p.naive_bytes,
        mib(p.naive_bytes),
        p.strategy
    );
    out
}
