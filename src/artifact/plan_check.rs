//! A restored plan must fit the graph it is applied to: every value the
//! executor writes has room in the arena, every view lies inside its base,
//! every matmul's scratch inside its slot. The checksums only show that the
//! bytes are the compiler's; this shows that a plan and graph agree, so the
//! executor never indexes past a buffer.

use super::error::{ArtifactError, Result};
use crate::ir::{Dim, Graph, NodeId};
use crate::passes::MemoryPlan;

/// Checks `plan` against `g` (node by node, in schedule order).
pub fn check_plan(g: &Graph, plan: &MemoryPlan) -> Result<()> {
    for &id in &plan.schedule {
        let node = g.node(id);
        if node.op.is_outside_arena() {
            continue;
        }
        if node.op.is_view() {
            check_view(g, plan, id)?;
            continue;
        }
        let slot = plan
            .slot_of(id)
            .ok_or_else(|| bad(g, id, "has no place in the arena".into()))?;
        let need = node.ty.bytes(&plan.env);
        if slot.bytes < need {
            return Err(bad(
                g,
                id,
                format!("needs {need} bytes, its slot has {}", slot.bytes),
            ));
        }
        check_scratch(g, plan, id)?;
    }
    Ok(())
}

/// A view's columns lie inside its base's rows.
fn check_view(g: &Graph, plan: &MemoryPlan, id: NodeId) -> Result<()> {
    let (base, col) = plan
        .view_of(id)
        .ok_or_else(|| bad(g, id, "is a view the plan does not place".into()))?;
    let cols = |n: NodeId| g.node(n).ty.last().and_then(Dim::fixed);
    let fits = match (cols(id), cols(base), plan.slot_of(base)) {
        (Some(c), Some(b), Some(_)) => col.checked_add(c).is_some_and(|end| end <= b),
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(bad(
            g,
            id,
            format!("is not a view inside a placed base (column {col})"),
        ))
    }
}

/// A matmul's (or experts op's) scratch parts lie inside its scratch slot.
fn check_scratch(g: &Graph, plan: &MemoryPlan, id: NodeId) -> Result<()> {
    let layout = plan.scratch_layout(g, id);
    let parts = [
        layout.normalized,
        layout.pre_activation,
        layout.gathered,
        layout.activated,
        layout.expert_out,
    ];
    let end = parts.iter().flatten().map(|s| s.offset + s.bytes).max();
    match (end, plan.scratch_of(id)) {
        (None, _) => Ok(()),
        (Some(end), Some(slot)) if end <= slot.offset + slot.bytes => Ok(()),
        _ => Err(bad(g, id, "needs scratch its plan does not give".into())),
    }
}

fn bad(g: &Graph, id: NodeId, what: String) -> ArtifactError {
    let n = g.node(id);
    ArtifactError::Plan(format!("node {:?} ({}) {what}", n.name, n.op.kind()))
}
