//! `fuse`: folds the work around each matmul into its prologue and epilogue,
//! so that one matmul node is one kernel launch.
//!
//! The rules are data: [`RULES`] lists them, each one line with what it
//! rewrites. Every rule is tried on every node in schedule order until none
//! fires (a fixpoint). A rule that fires removes the nodes it made unread,
//! so the next rule sees true use counts ("the matmul has no other user").
//!
//! After this pass a decoder layer is: the qkv matmul (RMSNorm prologue;
//! Bias, Rope, KvStore epilogues), the attention (q = slice of qkv, kv = the
//! layer's cache, after = qkv), the output matmul (+Residual), the gate_up
//! matmul (RMSNorm prologue, SwiGlu epilogue) and the down matmul
//! (+Residual): five launches. A mixture-of-experts layer ends instead in
//! the router's matmul (RMSNorm prologue), the router, and the experts op
//! (RMSNorm prologue, +Residual): six.
//!
//! Preserves: what each output computes and what the KV cache holds after
//! the step; weights and their bytes (no weight is copied or requantized).

use crate::ir::{Epilogue, Graph, MatMulOp, Node, NodeId, Op, Operand, Prologue, Role};

use super::rewrite::{layer_name, matmul, reaches, sole_user, sweep, width};
use super::PassError;

/// A rewrite rule: tries to rewrite the graph at a node; `true` if it did.
pub type Rule = fn(&mut Graph, NodeId) -> bool;

/// The rules, tried in this order at each node.
pub const RULES: &[(&str, Rule)] = &[
    // rms_norm(x, norm) read only as matmuls' (or experts') X  ->  Prologue::RmsNorm, norm=norm on each
    ("norm_into_prologue", norm_into_prologue),
    // mul(silu(matmul(h, Wg)), matmul(h, Wu))     ->  matmul(h, w=[Wg, Wu]) + SwiGlu (gelu: GeGlu)
    ("gate_up_swiglu", gate_up_swiglu),
    // mul(silu(slice(m, 0, f)), slice(m, f, f)), m = matmul(h, W[2f])  ->  m + SwiGlu (gelu: GeGlu)
    ("fused_gate_up_swiglu", fused_gate_up_swiglu),
    // add(a=matmul(x, W), b=bias[n])               ->  matmul + Bias, bias=[bias]
    ("bias_epilogue", bias_epilogue),
    // rope(slice q), rope(slice k), kv_store(k, slice v) of one matmul  ->  + Rope + KvStore
    ("rope_kv_store_epilogue", rope_kv_store_epilogue),
    // add(a=x, b=matmul or experts read only here) ->  + Residual, residual=x
    ("residual_epilogue", residual_epilogue),
];

/// Applies [`RULES`] to a fixpoint.
pub fn run(g: &mut Graph) -> Result<(), PassError> {
    loop {
        let order = g.topo_order().map_err(PassError::Cycle)?;
        let mut fired = false;
        for id in order {
            for (name, rule) in RULES {
                if g.contains(id) && rule(g, id) {
                    tracing::debug!(rule = name, node = ?id, "fuse");
                    fired = true;
                }
            }
        }
        if !fired {
            return Ok(());
        }
    }
}

fn matmul_mut(g: &mut Graph, id: NodeId) -> &mut MatMulOp {
    match &mut g.node_mut(id).op {
        Op::MatMul(m) | Op::Experts(m) => m,
        _ => unreachable!("rules only call this on matmuls and experts"),
    }
}

/// The fused parts of a matmul or of an experts op (which takes the same
/// RMSNorm prologue and residual epilogue).
fn with_parts(g: &Graph, id: NodeId) -> Option<&MatMulOp> {
    match &g.node(id).op {
        Op::MatMul(m) | Op::Experts(m) => Some(m),
        _ => None,
    }
}

/// Points every reader of `old` at `new`, then removes what `old` fed alone.
fn replace(g: &mut Graph, old: NodeId, new: NodeId) {
    g.replace_all_uses(old, new);
    sweep(g, [old]);
}

/// `rms_norm(x, norm)` whose every reader is a matmul's or an experts op's
/// X without prologue (a MoE layer's router matmul and experts share one
/// norm: each normalizes the rows itself).
fn norm_into_prologue(g: &mut Graph, id: NodeId) -> bool {
    let Op::RmsNorm { eps } = g.node(id).op else {
        return false;
    };
    let users = g.users(id);
    let all_matmuls = users
        .iter()
        .all(|&(u, o)| o.role == Role::X && with_parts(g, u).is_some_and(|m| m.prologue.is_none()));
    let (Some(x), Some(norm)) = (g.operand(id, Role::X), g.operand(id, Role::Norm)) else {
        return false;
    };
    if users.is_empty() || !all_matmuls || super::rewrite::is_output(g, id) {
        return false;
    }
    for (u, o) in users {
        g.disconnect(u, o);
        g.connect_at(x, u, o);
        g.connect(norm, u, Role::Norm);
        matmul_mut(g, u).prologue = Some(Prologue::RmsNorm { eps });
    }
    sweep(g, [id]);
    true
}

/// The gated epilogue of an activation op: SiLU gives SwiGLU, GELU GeGLU.
fn gated(op: &Op) -> Option<Epilogue> {
    match op {
        Op::Silu => Some(Epilogue::SwiGlu),
        Op::Gelu => Some(Epilogue::GeGlu),
        _ => None,
    }
}

/// `mul(a=silu(x=g), b=u)` (or gelu) over two one-weight matmuls of the
/// same input.
fn gate_up_swiglu(g: &mut Graph, id: NodeId) -> bool {
    if !matches!(g.node(id).op, Op::Mul) {
        return false;
    }
    let (Some(s), Some(up)) = (g.operand(id, Role::A), g.operand(id, Role::B)) else {
        return false;
    };
    let Some(glu) = gated(&g.node(s).op) else {
        return false;
    };
    let Some(gate) = g.operand(s, Role::X) else {
        return false;
    };
    let single_weight = |m: NodeId| {
        matmul(g, m).is_some_and(|mm| mm.epilogue.is_empty())
            && g.operand_list(m, Role::W).len() == 1
    };
    let only_reader = |v: NodeId, r: NodeId| sole_user(g, v).is_some_and(|(u, _)| u == r);
    let same_input = g.operand(gate, Role::X) == g.operand(up, Role::X)
        && g.operand(gate, Role::Norm) == g.operand(up, Role::Norm)
        && matmul(g, gate).map(|m| m.prologue) == matmul(g, up).map(|m| m.prologue)
        && g.node(gate).ty == g.node(up).ty;
    let fits = gate != up
        && single_weight(gate)
        && single_weight(up)
        && same_input
        && only_reader(gate, s)
        && only_reader(s, id)
        && only_reader(up, id);
    if !fits {
        return false;
    }
    let prologue = matmul(g, gate).and_then(|m| m.prologue);
    let op = Op::MatMul(MatMulOp {
        prologue,
        epilogue: vec![glu],
    });
    let layer = g.node(gate).layer;
    let mut node = Node::new(op, g.node(id).ty.clone(), layer_name(layer, "gate_up"));
    node.layer = layer;
    let mut operands = vec![(Role::X, g.operand(gate, Role::X).expect("checked"))];
    operands.push((Role::W, g.operand(gate, Role::W).expect("checked")));
    operands.push((Role::W, g.operand(up, Role::W).expect("checked")));
    operands.extend(g.operand(gate, Role::Norm).map(|n| (Role::Norm, n)));
    let fused = g.add(node, &operands);
    replace(g, id, fused);
    true
}

/// `mul(a=silu(x=slice{0,f}(m)), b=slice{f,f}(m))` (or gelu) where `m` is
/// one matmul of 2f columns read only by the two slices: the gate and up
/// rows stored as one tensor (Phi-3's `ffn_up`). The gated epilogue pairs
/// column c with column f + c of the product, whatever the segments, so
/// the matmul itself takes it.
fn fused_gate_up_swiglu(g: &mut Graph, id: NodeId) -> bool {
    if !matches!(g.node(id).op, Op::Mul) {
        return false;
    }
    let (Some(act), Some(up)) = (g.operand(id, Role::A), g.operand(id, Role::B)) else {
        return false;
    };
    let (Some(glu), Some(gate)) = (gated(&g.node(act).op), g.operand(act, Role::X)) else {
        return false;
    };
    let (Op::Slice { start: gs, len: gl }, Op::Slice { start: us, len: ul }) =
        (&g.node(gate).op, &g.node(up).op)
    else {
        return false;
    };
    let (Some(mm), Some(mm_up)) = (g.operand(gate, Role::X), g.operand(up, Role::X)) else {
        return false;
    };
    let halves = *gs == 0 && *us == *gl && *ul == *gl && width(g, mm) == Some(2 * gl);
    let only_reader = |v: NodeId, r: NodeId| sole_user(g, v).is_some_and(|(u, _)| u == r);
    let slices_only = {
        let users = g.users(mm);
        users.len() == 2 && users.iter().all(|&(u, _)| u == gate || u == up)
    };
    let fits = mm == mm_up
        && halves
        && matmul(g, mm).is_some_and(|m| m.epilogue.is_empty())
        && !super::rewrite::is_output(g, mm)
        && slices_only
        && only_reader(gate, act)
        && only_reader(act, id)
        && only_reader(up, id);
    if !fits {
        return false;
    }
    let prologue = matmul(g, mm).and_then(|m| m.prologue);
    let op = Op::MatMul(MatMulOp {
        prologue,
        epilogue: vec![glu],
    });
    let layer = g.node(mm).layer;
    let mut node = Node::new(op, g.node(id).ty.clone(), layer_name(layer, "gate_up"));
    node.layer = layer;
    let mut operands = vec![(Role::X, g.operand(mm, Role::X).expect("checked"))];
    operands.extend(
        g.operand_list(mm, Role::W)
            .into_iter()
            .map(|w| (Role::W, w)),
    );
    operands.extend(g.operand(mm, Role::Norm).map(|n| (Role::Norm, n)));
    let fused = g.add(node, &operands);
    replace(g, id, fused);
    true
}

/// `add(a=matmul, b=bias)` with a one-row weight as the bias.
fn bias_epilogue(g: &mut Graph, id: NodeId) -> bool {
    if !matches!(g.node(id).op, Op::Add) {
        return false;
    }
    let (Some(mm), Some(b)) = (g.operand(id, Role::A), g.operand(id, Role::B)) else {
        return false;
    };
    let is_bias = matches!(g.node(b).op, Op::Weight { .. }) && g.node(b).ty.rank() == 1;
    let fits = is_bias
        && matmul(g, mm).is_some_and(|m| m.epilogue.is_empty())
        && g.operand_list(mm, Role::W).len() == 1
        && sole_user(g, mm).is_some_and(|(u, _)| u == id)
        && g.node(mm).ty == g.node(id).ty;
    if !fits {
        return false;
    }
    g.connect(b, mm, Role::Bias);
    matmul_mut(g, mm).epilogue.push(Epilogue::Bias);
    replace(g, id, mm);
    true
}

/// `add(a=x, b=matmul)` (or experts) where the add is its only reader.
fn residual_epilogue(g: &mut Graph, id: NodeId) -> bool {
    if !matches!(g.node(id).op, Op::Add) {
        return false;
    }
    let (Some(x), Some(mm)) = (g.operand(id, Role::A), g.operand(id, Role::B)) else {
        return false;
    };
    let free = with_parts(g, mm).is_some_and(|m| {
        !m.epilogue
            .iter()
            .any(|e| matches!(e, Epilogue::Residual | Epilogue::KvStore { .. }))
    });
    let fits = free
        && x != mm
        && sole_user(g, mm).is_some_and(|(u, _)| u == id)
        && g.node(mm).ty == g.node(id).ty
        && g.node(x).ty == g.node(id).ty
        && !reaches(g, mm, x);
    if !fits {
        return false;
    }
    g.connect(x, mm, Role::Residual);
    matmul_mut(g, mm).epilogue.push(Epilogue::Residual);
    replace(g, id, mm);
    true
}

/// The nodes of one attention's rope + kv_store around a qkv matmul.
struct RopeStore {
    q_slice: NodeId,
    k_slice: NodeId,
    v_slice: NodeId,
    q_rope: NodeId,
    k_rope: NodeId,
    store: NodeId,
}

/// Rope of the q and k slices and kv_store of the k and v slices of one
/// matmul, folded into its epilogue.
fn rope_kv_store_epilogue(g: &mut Graph, id: NodeId) -> bool {
    let Some(m) = match_rope_store(g, id) else {
        return false;
    };
    let Op::Rope(spec) = g.node(m.q_rope).op else {
        return false;
    };
    let Op::KvStore { layer } = g.node(m.store).op else {
        return false;
    };
    let slice = |s: NodeId| match g.node(s).op {
        Op::Slice { start, len } => (start, len),
        _ => unreachable!("matched slices"),
    };
    let ((_, q_len), (k_col, kv_dim), (v_col, _)) =
        (slice(m.q_slice), slice(m.k_slice), slice(m.v_slice));
    let hd = u64::from(spec.head_dim);
    matmul_mut(g, id).epilogue.extend([
        Epilogue::Rope {
            spec,
            q_heads: (q_len / hd) as u32,
            k_heads: (kv_dim / hd) as u32,
        },
        Epilogue::KvStore {
            layer,
            k_col,
            v_col,
            kv_dim,
        },
    ]);
    let cache = g.operand(m.store, Role::Kv).expect("matched a kv cache");
    for role in [Role::Pos, Role::Seq, Role::Pages, Role::Kv] {
        let src = g.operand(m.store, role).expect("kv_store has its operands");
        g.connect(src, id, role);
    }
    if let Some(f) = g.operand(m.q_rope, Role::Freqs) {
        g.connect(f, id, Role::Freqs);
    }
    // Readers of the updated cache now read the cache itself, after the matmul.
    for (u, o) in g.users(m.store) {
        g.disconnect(u, o);
        g.connect_at(cache, u, o);
        if !g.operand_list(u, Role::After).contains(&id) {
            g.connect(id, u, Role::After);
        }
    }
    g.remove(m.store);
    // The rotated q and k are now the slices themselves.
    g.replace_all_uses(m.q_rope, m.q_slice);
    g.replace_all_uses(m.k_rope, m.k_slice);
    sweep(g, [m.q_rope, m.k_rope, m.k_slice, m.v_slice]);
    true
}

/// Matches [`rope_kv_store_epilogue`]'s pattern at matmul `id`.
fn match_rope_store(g: &Graph, id: NodeId) -> Option<RopeStore> {
    let mm = matmul(g, id)?;
    if mm.epilogue.iter().any(|e| !matches!(e, Epilogue::Bias))
        || g.operand(id, Role::Pos).is_some()
    {
        return None;
    }
    let users = g.users(id);
    let store = users.iter().find_map(|&(s, _)| {
        let (r, _) = sole_user(g, s)?;
        let (st, o) = sole_user(g, r)?;
        (o == Operand {
            role: Role::K,
            index: 0,
        } && matches!(g.node(st).op, Op::KvStore { .. }))
        .then_some(st)
    })?;
    let k_rope = g.operand(store, Role::K)?;
    let k_slice = g.operand(k_rope, Role::X)?;
    let v_slice = g.operand(store, Role::V)?;
    let attention = g
        .users(store)
        .into_iter()
        .find(|(_, o)| o.role == Role::Kv)?
        .0;
    let q_rope = g.operand(attention, Role::Q)?;
    let q_slice = g.operand(q_rope, Role::X)?;
    let m = RopeStore {
        q_slice,
        k_slice,
        v_slice,
        q_rope,
        k_rope,
        store,
    };
    fits_rope_store(g, id, &m).then_some(m)
}

/// The conditions under which the epilogues compute exactly what the
/// matched nodes did.
fn fits_rope_store(g: &Graph, id: NodeId, m: &RopeStore) -> bool {
    let slice = |s: NodeId| match g.node(s).op {
        Op::Slice { start, len } if g.operand(s, Role::X) == Some(id) => Some((start, len)),
        _ => None,
    };
    let (Some(q), Some(k), Some(v)) = (slice(m.q_slice), slice(m.k_slice), slice(m.v_slice)) else {
        return false;
    };
    let (Op::Rope(qs), Op::Rope(ks)) = (&g.node(m.q_rope).op, &g.node(m.k_rope).op) else {
        return false;
    };
    let hd = u64::from(qs.head_dim);
    let same = |r: Role| {
        g.operand(m.q_rope, r) == g.operand(m.k_rope, r)
            && (r == Role::Freqs || g.operand(m.store, r) == g.operand(m.q_rope, r))
    };
    // Rope rotates the first q_heads heads then the next k_heads: q must
    // start the row and k follow it. The epilogues change the matmul's
    // columns in place, so nothing else may read them unrotated.
    let only = |s: NodeId, r: NodeId| sole_user(g, s).is_some_and(|(u, _)| u == r);
    let users_are_slices = g
        .users(id)
        .iter()
        .all(|&(u, _)| [m.q_slice, m.k_slice, m.v_slice].contains(&u));
    let has = |r: Role| g.operand(m.store, r).is_some();
    qs == ks
        && hd > 0
        && has(Role::Pos)
        && has(Role::Seq)
        && has(Role::Pages)
        && q.0 == 0
        && k.0 == q.1
        && k.1 == v.1
        && q.1 % hd == 0
        && k.1 % hd == 0
        && same(Role::Pos)
        && same(Role::Freqs)
        && only(m.q_slice, m.q_rope)
        && only(m.k_slice, m.k_rope)
        && only(m.k_rope, m.store)
        && users_are_slices
        && matches!(
            g.node(g.operand(m.store, Role::Kv).unwrap_or(id)).op,
            Op::KvCache { .. }
        )
        && g.users(m.store).iter().all(|(_, o)| o.role == Role::Kv)
}

#[cfg(test)]
mod tests;
