//! The textual form of a graph: one node a line in schedule order, renumbered
//! `%0, %1, ...`, then its outputs. [`super::parse`] reads it back, and
//! `print(parse(print(g))) == print(g)`.
//!
//! ```text
//! # rocmforge IR: 3 nodes, 1 output
//! %0 = input(tokens) : i32[T]
//! %1 = weight("token_embd.weight") : q5_0[151936,896]
//! %2 = embed table=%1 tokens=%0 : f32[T,896]  # x
//! %9 = rms_norm(eps=1e-6) x=%2 norm=%8 : f32[T,896] @L0  # blk.0.h
//! %12 = matmul x=%3 w=[%5,%6,%7] bias=[%8,%9,%10] prologue=rms_norm(eps=1e-6) epilogue=[bias,...] : f32[T,1152] @L0  # blk.0.qkv
//! output logits = %2
//! ```
//!
//! A line is `%N = op(attrs) role=operand... : type [@L<layer>] [arena[a..b]]  # name`.
//! Operands come in role order; a role with several operands (or one at an
//! index other than 0) is a list, `_` marking an index with none. The name
//! comment is left out for a weight or input named after itself. Floats are
//! written in Rust's shortest round-tripping form.

use std::collections::HashMap;
use std::fmt::Write;
use std::ops::Range;

use super::graph::{Graph, NodeId};
use super::op::{
    AttentionSpec, Epilogue, MatMulOp, Op, Prologue, RopeScaling, RopeSpec, RopeStyle,
};

/// The order nodes are printed in: the graph's schedule, or index order when
/// it has a cycle (so that a broken graph can still be shown).
pub fn schedule(g: &Graph) -> Vec<NodeId> {
    g.topo_order().unwrap_or_else(|_| g.node_ids().collect())
}

/// Each node's number in the text (`%N`).
pub fn text_ids(g: &Graph) -> HashMap<NodeId, usize> {
    schedule(g)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect()
}

/// The graph as text.
pub fn print(g: &Graph) -> String {
    print_with_placement(g, |_| None)
}

/// The graph as text, with each node's byte range in the activation arena
/// where `placement` gives one (a memory plan's offsets).
pub fn print_with_placement(g: &Graph, placement: impl Fn(NodeId) -> Option<Range<u64>>) -> String {
    let order = schedule(g);
    let ids: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut out = String::new();
    let outputs = g.outputs().len();
    let _ = writeln!(
        out,
        "# rocmforge IR: {} nodes, {outputs} output{}",
        order.len(),
        if outputs == 1 { "" } else { "s" }
    );
    for &id in &order {
        node_line(&mut out, g, id, &ids, placement(id));
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(
            out,
            "output {} = {}",
            output_name(name),
            operand_ref(&ids, *id)
        );
    }
    out
}

fn operand_ref(ids: &HashMap<NodeId, usize>, id: NodeId) -> String {
    match ids.get(&id) {
        Some(i) => format!("%{i}"),
        // A dangling reference (the node was removed): keep it visible.
        None => format!("%?{}", id.index()),
    }
}

fn node_line(
    out: &mut String,
    g: &Graph,
    id: NodeId,
    ids: &HashMap<NodeId, usize>,
    placement: Option<Range<u64>>,
) {
    let node = g.node(id);
    let _ = write!(out, "%{} = {}", ids[&id], op_head(&node.op));
    operands(out, g, id, ids);
    if let Op::MatMul(m) | Op::Experts(m) = &node.op {
        matmul_parts(out, m);
    }
    let _ = write!(out, " : {}", node.ty);
    if let Some(l) = node.layer {
        let _ = write!(out, " @L{l}");
    }
    if let Some(r) = placement {
        let _ = write!(out, " arena[{}..{}]", r.start, r.end);
    }
    if node.name != default_name(&node.op) {
        let _ = write!(out, "  # {}", quote_if_needed(&node.name));
    }
    out.push('\n');
}

/// The name a node gets when its line has no name comment.
pub(crate) fn default_name(op: &Op) -> String {
    match op {
        Op::Weight { name } => name.clone(),
        Op::Input(kind) => kind.name().to_string(),
        _ => String::new(),
    }
}

/// Names are written bare unless they could be misread (blank, spaces at
/// either end, quotes, control characters): then as a quoted string.
fn quote_if_needed(s: &str) -> String {
    let plain = !s.is_empty()
        && s.trim() == s
        && !s.starts_with('"')
        && !s.contains(|c: char| c.is_control() || c == '=' || c == '%');
    if plain {
        s.to_string()
    } else {
        quote(s)
    }
}

/// Output names are bare words (`logits`) unless quoted.
fn output_name(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if bare {
        s.to_string()
    } else {
        quote(s)
    }
}

/// A double-quoted string with Rust escapes.
pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn op_head(op: &Op) -> String {
    match op {
        Op::Input(kind) => format!("input({})", kind.name()),
        Op::Weight { name } => format!("weight({})", quote(name)),
        Op::KvCache { layer } => format!("kv_cache(layer={layer})"),
        Op::RmsNorm { eps } => format!("rms_norm(eps={eps:?})"),
        Op::HeadRmsNorm { eps } => format!("head_rms_norm(eps={eps:?})"),
        Op::Scale { factor } => format!("scale(factor={factor:?})"),
        Op::SoftCap { cap } => format!("softcap(cap={cap:?})"),
        Op::Rope(spec) => format!("rope({})", rope_attrs(spec)),
        Op::Slice { start, len } => format!("slice(start={start},len={len})"),
        Op::Router { top_k } => format!("router(top_k={top_k})"),
        Op::KvStore { layer } => format!("kv_store(layer={layer})"),
        Op::Attention(spec) => format!("attention({})", attention_attrs(spec)),
        Op::Embed
        | Op::MatMul(_)
        | Op::Experts(_)
        | Op::Add
        | Op::Mul
        | Op::Silu
        | Op::Gelu
        | Op::GatherRows => op.kind().to_string(),
    }
}

pub(crate) fn style_name(style: RopeStyle) -> &'static str {
    match style {
        RopeStyle::Normal => "normal",
        RopeStyle::Neox => "neox",
    }
}

fn rope_attrs(s: &RopeSpec) -> String {
    let mut a = format!(
        "head_dim={},n_rot={},base={:?},style={}",
        s.head_dim,
        s.n_rot,
        s.base,
        style_name(s.style)
    );
    match s.scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => {
            let _ = write!(a, ",scaling=linear(factor={factor:?})");
        }
        RopeScaling::Yarn {
            factor,
            orig_ctx,
            beta_fast,
            beta_slow,
        } => {
            let _ = write!(
                a,
                ",scaling=yarn(factor={factor:?},orig_ctx={orig_ctx},beta_fast={beta_fast:?},beta_slow={beta_slow:?})"
            );
        }
        RopeScaling::LongRope { attn_factor } => {
            let _ = write!(a, ",scaling=longrope(attn_factor={attn_factor:?})");
        }
    }
    a
}

fn attention_attrs(s: &AttentionSpec) -> String {
    let mut a = format!(
        "n_heads={},n_kv_heads={},head_dim={},scale={:?}",
        s.n_heads, s.n_kv_heads, s.head_dim, s.scale
    );
    if let Some(w) = s.window {
        let _ = write!(a, ",window={w}");
    }
    if let Some(c) = s.softcap {
        let _ = write!(a, ",softcap={c:?}");
    }
    a
}

/// ` role=%i` or ` role=[%i,_,%k]` for each role, in role order.
fn operands(out: &mut String, g: &Graph, id: NodeId, ids: &HashMap<NodeId, usize>) {
    let mut ops = g.operands(id);
    // The op's own argument order (k, v before pos for kv_store), then any
    // role it does not take, so that a broken graph still shows everything.
    let sig = super::verify::signature(&g.node(id).op);
    let rank = |r| sig.iter().position(|(s, _)| *s == r).unwrap_or(sig.len());
    ops.sort_by_key(|(o, _)| (rank(o.role), o.role, o.index));
    let mut i = 0;
    while i < ops.len() {
        let role = ops[i].0.role;
        let group: Vec<_> = ops[i..]
            .iter()
            .take_while(|(o, _)| o.role == role)
            .collect();
        i += group.len();
        if group.len() == 1 && group[0].0.index == 0 {
            let _ = write!(out, " {role}={}", operand_ref(ids, group[0].1));
            continue;
        }
        let max = group.iter().map(|(o, _)| o.index).max().unwrap_or(0);
        let items: Vec<String> = (0..=max)
            .map(|k| match group.iter().find(|(o, _)| o.index == k) {
                Some((_, src)) => operand_ref(ids, *src),
                None => "_".to_string(),
            })
            .collect();
        let _ = write!(out, " {role}=[{}]", items.join(","));
    }
}

fn matmul_parts(out: &mut String, m: &MatMulOp) {
    if let Some(Prologue::RmsNorm { eps }) = m.prologue {
        let _ = write!(out, " prologue=rms_norm(eps={eps:?})");
    }
    if !m.epilogue.is_empty() {
        let parts: Vec<String> = m.epilogue.iter().map(epilogue_text).collect();
        let _ = write!(out, " epilogue=[{}]", parts.join(","));
    }
}

fn epilogue_text(e: &Epilogue) -> String {
    match e {
        Epilogue::Bias => "bias".into(),
        Epilogue::Rope {
            spec,
            q_heads,
            k_heads,
        } => format!(
            "rope({},q_heads={q_heads},k_heads={k_heads})",
            rope_attrs(spec)
        ),
        Epilogue::KvStore {
            layer,
            k_col,
            v_col,
            kv_dim,
        } => format!("kv_store(layer={layer},k_col={k_col},v_col={v_col},kv_dim={kv_dim})"),
        Epilogue::SwiGlu => "swiglu".into(),
        Epilogue::GeGlu => "geglu".into(),
        Epilogue::Residual => "residual".into(),
    }
}
