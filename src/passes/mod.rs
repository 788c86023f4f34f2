//! Graph-to-graph passes and the pass manager.
//!
//! The frontend's canonical decoder graph (see docs/PASSES.md) goes through
//! [`PASSES`] in order: [`qkv_concat`] → [`fuse`] → [`dce`] →
//! [`plan_memory`]. The first three rewrite the graph; `plan_memory` leaves
//! it as it is and places every activation in one arena. The IR verifier
//! runs after every pass, so a pass that breaks a type or an edge is named
//! at once rather than by a wrong number later.

pub mod dce;
pub mod error;
pub mod fuse;
pub mod plan_memory;
pub mod qkv_concat;
mod rewrite;
pub mod stats;

#[cfg(test)]
pub(crate) mod test_graph;

pub use error::PassError;
pub use plan_memory::{MemoryPlan, ScratchLayout, Slot};

use crate::ir::{DimEnv, Graph};

/// What a pass does to the graph.
#[derive(Clone, Copy)]
pub enum PassKind {
    /// Rewrites the graph in place.
    Rewrite(fn(&mut Graph) -> Result<(), PassError>),
    /// Leaves the graph as it is and computes the memory plan.
    Plan,
}

/// One named pass of the pipeline.
#[derive(Clone, Copy)]
pub struct Pass {
    pub name: &'static str,
    /// What the pass keeps intact (its module doc says why).
    pub preserves: &'static str,
    pub kind: PassKind,
}

/// The pipeline, in order.
pub const PASSES: [Pass; 4] = [
    Pass {
        name: "qkv_concat",
        preserves: "every value and its type; weight bytes; what each output computes",
        kind: PassKind::Rewrite(qkv_concat::run),
    },
    Pass {
        name: "fuse",
        preserves: "what each output and the KV cache hold; weight bytes",
        kind: PassKind::Rewrite(fuse::run),
    },
    Pass {
        name: "dce",
        preserves: "outputs, inputs, the KV cache and every op that writes it",
        kind: PassKind::Rewrite(dce::run),
    },
    Pass {
        name: "plan_memory",
        preserves: "the graph (unchanged)",
        kind: PassKind::Plan,
    },
];

/// The names accepted by [`run_until`], in pipeline order.
pub fn pass_names() -> impl Iterator<Item = &'static str> {
    PASSES.iter().map(|p| p.name)
}

/// A graph ready to execute: rewritten by every pass, with its memory plan.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub graph: Graph,
    pub plan: MemoryPlan,
}

/// Runs the passes up to and including `name` (verifying after each) and
/// returns the graph; `plan_memory` does not change the graph, so naming it
/// gives the same graph as `dce`.
pub fn run_until(mut graph: Graph, name: &str) -> Result<Graph, PassError> {
    let last = position(name)?;
    verify("none", &graph)?;
    for pass in &PASSES[..=last] {
        if let PassKind::Rewrite(run) = pass.kind {
            run(&mut graph)?;
            verify(pass.name, &graph)?;
        }
    }
    Ok(graph)
}

/// Runs every pass, calling `after(pass name, graph, plan)` after each (the
/// plan only after `plan_memory`), and returns the compiled graph.
pub fn compile_with(
    mut graph: Graph,
    env: DimEnv,
    mut after: impl FnMut(&str, &Graph, Option<&MemoryPlan>),
) -> Result<Compiled, PassError> {
    verify("none", &graph)?;
    let mut plan = None;
    for pass in &PASSES {
        match pass.kind {
            PassKind::Rewrite(run) => {
                run(&mut graph)?;
                verify(pass.name, &graph)?;
            }
            PassKind::Plan => plan = Some(plan_memory::plan(&graph, env)?),
        }
        after(pass.name, &graph, plan.as_ref());
    }
    let plan = plan.ok_or(PassError::NoPlan)?;
    Ok(Compiled { graph, plan })
}

/// Runs every pass and plans memory for the limits `env`.
pub fn compile(graph: Graph, env: DimEnv) -> Result<Compiled, PassError> {
    compile_with(graph, env, |_, _, _| {})
}

fn position(name: &str) -> Result<usize, PassError> {
    PASSES
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| PassError::UnknownPass(name.to_string()))
}

/// The IR verifier's verdict on `graph` after pass `pass`.
fn verify(pass: &'static str, graph: &Graph) -> Result<(), PassError> {
    crate::ir::verify::verify(graph).map_err(|source| PassError::Invalid { pass, source })
}
