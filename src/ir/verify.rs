//! The verifier: checks that a graph is well formed — every op has the
//! operands its roles require and no others, operand lists have no gaps,
//! types and shapes agree (matmul widths, RoPE heads, attention and KV cache
//! widths, broadcasts), the graph is acyclic and its outputs exist. Run after
//! the frontend and after every pass.
//!
//! Errors name the node by its number in the text form (`%N`, see
//! [`super::text`]) and its name.

mod matmul;
mod moe;

use std::collections::HashMap;
use std::fmt;

use super::dim::Dim;
use super::graph::{Graph, NodeId};
use super::op::{Epilogue, InputKind, MatMulOp, Op, Prologue, Role};
use super::tensor_type::TensorType;
use super::text;
use crate::quant::GgmlType;

/// A node, as the text form shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRef {
    pub id: NodeId,
    /// `%N` in the printed graph.
    pub text_id: usize,
    pub name: String,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.text_id)?;
        if !self.name.is_empty() {
            write!(f, " ({})", self.name)?;
        }
        Ok(())
    }
}

/// What is wrong with a graph, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyError {
    /// The node at fault; `None` for the graph as a whole (its outputs).
    /// Boxed to keep the error small in the `Result`s that carry it.
    pub node: Option<Box<NodeRef>>,
    pub problem: Problem,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{n}: {}", self.problem),
            None => write!(f, "graph: {}", self.problem),
        }
    }
}

impl std::error::Error for VerifyError {}

/// The rule a graph breaks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("lies on a cycle")]
    Cycle,
    #[error("the graph has no outputs")]
    NoOutputs,
    #[error("output {output:?} names a node that is not in the graph")]
    DanglingOutput { output: String },
    #[error("{op} needs a {role} operand")]
    MissingRole { op: &'static str, role: Role },
    #[error("{op} takes no {role} operand")]
    UnknownRole { op: &'static str, role: Role },
    #[error("{role}[{index}] is given more than once")]
    RepeatedOperand { role: Role, index: u8 },
    #[error("{role}[{index}] is missing: operand indices of a role run 0, 1, ...")]
    OperandGap { role: Role, index: u8 },
    #[error("operand {role}[{index}] is {found}, expected {expected}")]
    OperandType {
        role: Role,
        index: u8,
        expected: String,
        found: TensorType,
    },
    #[error("shapes disagree: {0}")]
    Shape(String),
    #[error("result type is {found}, expected {expected}")]
    ResultType {
        expected: TensorType,
        found: TensorType,
    },
    #[error("bad attributes: {0}")]
    Attribute(String),
}

/// Checks the whole graph; the first problem found is returned.
pub fn verify(g: &Graph) -> Result<(), VerifyError> {
    let ids = text::text_ids(g);
    let at = |id: NodeId, problem| VerifyError {
        node: Some(Box::new(NodeRef {
            id,
            text_id: ids.get(&id).copied().unwrap_or(usize::MAX),
            name: g.node(id).name.clone(),
        })),
        problem,
    };
    if let Err(id) = g.topo_order() {
        return Err(at(id, Problem::Cycle));
    }
    for id in text::schedule(g) {
        check_roles(g, id).map_err(|p| at(id, p))?;
        check_types(g, id).map_err(|p| at(id, p))?;
    }
    let whole = |problem| VerifyError {
        node: None,
        problem,
    };
    if g.outputs().is_empty() {
        return Err(whole(Problem::NoOutputs));
    }
    for (name, id) in g.outputs() {
        if !g.contains(*id) {
            return Err(whole(Problem::DanglingOutput {
                output: name.clone(),
            }));
        }
    }
    Ok(())
}

/// How many operands of a role an op takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Arity {
    One,
    Optional,
    /// `W[0..n]`, n >= 1, no gaps.
    List,
    /// Indices aligned with `W` (a weight may have no bias): gaps allowed.
    Sparse,
}

/// The roles `op` takes, in the order they are written.
pub(crate) fn signature(op: &Op) -> Vec<(Role, Arity)> {
    use Arity::*;
    let mut s = match op {
        Op::Input(_) | Op::Weight { .. } | Op::KvCache { .. } => return vec![],
        Op::Embed => vec![(Role::Table, One), (Role::Tokens, One)],
        Op::RmsNorm { .. } | Op::HeadRmsNorm { .. } => vec![(Role::X, One), (Role::Norm, One)],
        Op::MatMul(m) => matmul_signature(m),
        Op::Add | Op::Mul => vec![(Role::A, One), (Role::B, One)],
        Op::Silu | Op::Gelu | Op::Scale { .. } | Op::SoftCap { .. } | Op::Slice { .. } => {
            vec![(Role::X, One)]
        }
        Op::Rope(_) => vec![(Role::X, One), (Role::Pos, One), (Role::Freqs, Optional)],
        Op::KvStore { .. } => vec![
            (Role::K, One),
            (Role::V, One),
            (Role::Pos, One),
            (Role::Seq, One),
            (Role::Pages, One),
            (Role::Kv, One),
        ],
        Op::Attention(_) => vec![
            (Role::Q, One),
            (Role::Kv, One),
            (Role::Pos, One),
            (Role::Seq, One),
            (Role::Pages, One),
        ],
        Op::GatherRows => vec![(Role::X, One), (Role::Rows, One)],
        Op::Router { .. } => vec![(Role::X, One)],
        Op::Experts(m) => moe::experts_signature(m),
    };
    // Scheduling-only edges may order any computed op.
    s.push((Role::After, Optional));
    s
}

fn matmul_signature(m: &MatMulOp) -> Vec<(Role, Arity)> {
    use Arity::*;
    let mut s = vec![(Role::X, One), (Role::W, List)];
    if let Some(Prologue::RmsNorm { .. }) = m.prologue {
        s.push((Role::Norm, One));
    }
    for e in &m.epilogue {
        match e {
            Epilogue::Bias => s.push((Role::Bias, Sparse)),
            Epilogue::Rope { .. } => s.extend([(Role::Pos, One), (Role::Freqs, Optional)]),
            Epilogue::KvStore { .. } => s.extend([
                (Role::Pos, One),
                (Role::Seq, One),
                (Role::Pages, One),
                (Role::Kv, One),
            ]),
            Epilogue::SwiGlu | Epilogue::GeGlu => {}
            Epilogue::Residual => s.push((Role::Residual, One)),
        }
    }
    // Rope and KvStore both read positions: one operand serves both.
    let mut seen = Vec::new();
    s.retain(|(r, _)| {
        let fresh = !seen.contains(r);
        seen.push(*r);
        fresh
    });
    s
}

fn check_roles(g: &Graph, id: NodeId) -> Result<(), Problem> {
    let op = &g.node(id).op;
    let sig = signature(op);
    let mut by_role: HashMap<Role, Vec<u8>> = HashMap::new();
    for (o, _) in g.operands(id) {
        by_role.entry(o.role).or_default().push(o.index);
    }
    let mut given: Vec<_> = by_role.keys().copied().collect();
    given.sort();
    for role in given {
        if !sig.iter().any(|(r, _)| *r == role) {
            return Err(Problem::UnknownRole {
                op: op.kind(),
                role,
            });
        }
    }
    for &(role, arity) in &sig {
        let indices = by_role.remove(&role).unwrap_or_default();
        check_indices(op.kind(), role, arity, indices)?;
    }
    Ok(())
}

fn check_indices(
    op: &'static str,
    role: Role,
    arity: Arity,
    mut idx: Vec<u8>,
) -> Result<(), Problem> {
    idx.sort();
    if let Some(w) = idx.windows(2).find(|w| w[0] == w[1]) {
        return Err(Problem::RepeatedOperand { role, index: w[0] });
    }
    let gap = |index| Err(Problem::OperandGap { role, index });
    match arity {
        Arity::One | Arity::List if idx.is_empty() => Err(Problem::MissingRole { op, role }),
        Arity::One | Arity::Optional if idx.len() > 1 => {
            Err(Problem::RepeatedOperand { role, index: 1 })
        }
        Arity::Sparse => Ok(()),
        _ => match idx.iter().enumerate().find(|(i, &k)| *i as u8 != k) {
            Some((i, _)) => gap(i as u8),
            None => Ok(()),
        },
    }
}

/// Type and shape rules of one node (its roles are already known to be right).
fn check_types(g: &Graph, id: NodeId) -> Result<(), Problem> {
    let c = Checker { g, id };
    let ty = &g.node(id).ty;
    match &g.node(id).op {
        Op::Input(kind) => c.result(input_type(*kind)),
        Op::Weight { .. } => check_weight(ty),
        Op::KvCache { .. } => check_kv_cache(ty),
        Op::Embed => {
            let tokens = c.index_vector(Role::Tokens)?;
            let table = c.operand_rank(Role::Table, 0, 2)?;
            c.result(TensorType::f32([tokens.shape[0], table.shape[1]]))
        }
        Op::RmsNorm { .. } => {
            let x = c.activation(Role::X)?;
            c.norm_fits(&x)?;
            c.result(x)
        }
        Op::MatMul(m) => matmul::check(&c, m),
        Op::Add => check_add(&c),
        Op::Mul => {
            let a = c.activation(Role::A)?;
            c.expect_operand(Role::B, 0, &a)?;
            c.result(a)
        }
        Op::Silu | Op::Gelu | Op::Scale { .. } | Op::SoftCap { .. } => {
            c.result(c.activation(Role::X)?)
        }
        Op::HeadRmsNorm { .. } => {
            let x = c.matrix(Role::X)?;
            c.head_norm_fits(&x)?;
            c.result(x)
        }
        Op::Rope(spec) => {
            let x = c.matrix(Role::X)?;
            c.rope_fits(spec, &x, None)?;
            c.result(x)
        }
        Op::Slice { start, len } => {
            let x = c.operand_rank(Role::X, 0, 2)?;
            let cols = c.fixed_cols(&x, "slice input")?;
            if start + len > cols {
                return Err(Problem::Shape(format!(
                    "columns [{start}, {}) of a {cols}-column input",
                    start + len
                )));
            }
            c.result(TensorType::new(x.dtype, [x.shape[0], Dim::Fixed(*len)]))
        }
        Op::KvStore { layer } => check_kv_store(&c, *layer),
        Op::Attention(spec) => c.attention(spec),
        Op::GatherRows => {
            let rows = c.index_vector(Role::Rows)?;
            let x = c.matrix(Role::X)?;
            c.result(TensorType::f32([rows.shape[0], x.shape[1]]))
        }
        Op::Router { top_k } => moe::check_router(&c, *top_k),
        Op::Experts(m) => moe::check_experts(&c, m),
    }
}

/// The canonical type of each graph input.
pub fn input_type(kind: InputKind) -> TensorType {
    match kind {
        InputKind::PageTable => TensorType::i32([Dim::Seqs, Dim::Pages]),
        InputKind::OutputRows => TensorType::i32([Dim::Rows]),
        InputKind::Tokens | InputKind::Positions | InputKind::SeqIds => {
            TensorType::i32([Dim::Tokens])
        }
    }
}

fn check_weight(ty: &TensorType) -> Result<(), Problem> {
    if ty.rank() == 0 || ty.shape.iter().any(|d| d.fixed().is_none()) {
        return Err(Problem::Attribute(format!(
            "a weight has a fixed shape of rank 1 or more, not {ty}"
        )));
    }
    Ok(())
}

fn check_kv_cache(ty: &TensorType) -> Result<(), Problem> {
    let ok = matches!(ty.dtype, GgmlType::F16 | GgmlType::F32 | GgmlType::BF16)
        && ty.rank() == 2
        && ty.shape[0] == Dim::KvLen
        && ty.shape[1].fixed().is_some();
    if !ok {
        return Err(Problem::Attribute(format!(
            "a KV cache is a float [K, n] tensor, not {ty}"
        )));
    }
    Ok(())
}

fn check_add(c: &Checker) -> Result<(), Problem> {
    let a = c.activation(Role::A)?;
    let b = c.operand(Role::B, 0);
    let row = TensorType::new(a.dtype, a.last().into_iter().collect::<Vec<_>>());
    if b != a && b.shape != row.shape || b.dtype != a.dtype {
        return Err(Problem::OperandType {
            role: Role::B,
            index: 0,
            expected: format!("{a} or one row {row}"),
            found: b,
        });
    }
    c.result(a)
}

fn check_kv_store(c: &Checker, layer: u32) -> Result<(), Problem> {
    let k = c.matrix(Role::K)?;
    c.expect_operand(Role::V, 0, &k)?;
    let kv = c.kv_operand(layer)?;
    let width = c.fixed_cols(&k, "k")? * 2;
    if kv.shape[1] != Dim::Fixed(width) {
        return Err(Problem::Shape(format!(
            "the KV cache rows hold {}, k and v {width} columns",
            kv.shape[1]
        )));
    }
    c.positions(k.shape[0], true)?;
    c.result(kv)
}

/// Operand access and the checks several ops share.
pub(super) struct Checker<'g> {
    pub g: &'g Graph,
    pub id: NodeId,
}

impl Checker<'_> {
    pub fn operand(&self, role: Role, index: u8) -> TensorType {
        let src = self
            .g
            .operands(self.id)
            .into_iter()
            .find(|(o, _)| o.role == role && o.index == index)
            .map(|(_, n)| n)
            .expect("roles were checked first");
        self.g.node(src).ty.clone()
    }

    pub fn has(&self, role: Role) -> bool {
        self.g.operand(self.id, role).is_some()
    }

    pub fn node_ty(&self) -> &TensorType {
        &self.g.node(self.id).ty
    }

    pub fn result(&self, expected: TensorType) -> Result<(), Problem> {
        let found = self.node_ty();
        if *found != expected {
            return Err(Problem::ResultType {
                expected,
                found: found.clone(),
            });
        }
        Ok(())
    }

    fn wrong(&self, role: Role, index: u8, expected: impl Into<String>) -> Problem {
        Problem::OperandType {
            role,
            index,
            expected: expected.into(),
            found: self.operand(role, index),
        }
    }

    pub fn expect_operand(
        &self,
        role: Role,
        index: u8,
        expected: &TensorType,
    ) -> Result<(), Problem> {
        if self.operand(role, index) != *expected {
            return Err(self.wrong(role, index, expected.to_string()));
        }
        Ok(())
    }

    pub fn operand_rank(&self, role: Role, index: u8, rank: usize) -> Result<TensorType, Problem> {
        let t = self.operand(role, index);
        if t.rank() != rank {
            return Err(self.wrong(role, index, format!("a rank-{rank} tensor")));
        }
        Ok(t)
    }

    /// An f32 activation of any rank.
    pub fn activation(&self, role: Role) -> Result<TensorType, Problem> {
        let t = self.operand(role, 0);
        if t.dtype != GgmlType::F32 || t.rank() == 0 {
            return Err(self.wrong(role, 0, "an f32 activation"));
        }
        Ok(t)
    }

    /// An f32 activation [rows, cols] with a fixed column count.
    pub fn matrix(&self, role: Role) -> Result<TensorType, Problem> {
        let t = self.operand(role, 0);
        if t.dtype != GgmlType::F32 || t.rank() != 2 || t.shape[1].fixed().is_none() {
            return Err(self.wrong(role, 0, "an f32 [rows, n] activation"));
        }
        Ok(t)
    }

    pub fn fixed_cols(&self, t: &TensorType, what: &str) -> Result<u64, Problem> {
        t.last()
            .and_then(Dim::fixed)
            .ok_or_else(|| Problem::Shape(format!("{what} {t} has no fixed column count")))
    }

    /// An i32 vector (token ids, row numbers).
    pub fn index_vector(&self, role: Role) -> Result<TensorType, Problem> {
        let t = self.operand(role, 0);
        if t.dtype != GgmlType::I32 || t.rank() != 1 {
            return Err(self.wrong(role, 0, "an i32 vector"));
        }
        Ok(t)
    }

    /// `Pos` (and `Seq`, `Pages` when `paged`) for `rows` token rows.
    pub fn positions(&self, rows: Dim, paged: bool) -> Result<(), Problem> {
        let per_token = TensorType::i32([rows]);
        self.expect_operand(Role::Pos, 0, &per_token)?;
        if paged {
            self.expect_operand(Role::Seq, 0, &per_token)?;
            let pages = self.operand(Role::Pages, 0);
            if pages.dtype != GgmlType::I32 || pages.rank() != 2 {
                return Err(self.wrong(Role::Pages, 0, "an i32 [S, P] page table"));
            }
        }
        Ok(())
    }

    /// The `Norm` operand: one weight per column of `x`.
    pub fn norm_fits(&self, x: &TensorType) -> Result<(), Problem> {
        let expected = x.last().map(|d| vec![d]).unwrap_or_default();
        let norm = self.operand(Role::Norm, 0);
        if norm.shape != expected {
            return Err(self.wrong(
                Role::Norm,
                0,
                format!("a vector of {} weights", expected[0]),
            ));
        }
        Ok(())
    }

    /// A per-head norm: a vector whose length divides the row (one head).
    pub fn head_norm_fits(&self, x: &TensorType) -> Result<(), Problem> {
        let cols = self.fixed_cols(x, "head_rms_norm input")?;
        let norm = self.operand(Role::Norm, 0);
        let fits = match norm.shape.as_slice() {
            [Dim::Fixed(n)] => *n > 0 && cols % n == 0,
            _ => false,
        };
        if !fits {
            return Err(self.wrong(
                Role::Norm,
                0,
                format!("a vector whose length divides the {cols} columns"),
            ));
        }
        Ok(())
    }

    /// The `Kv` operand: a KV cache (or an earlier store into it) of `layer`.
    pub fn kv_operand(&self, layer: u32) -> Result<TensorType, Problem> {
        let kv = self.operand(Role::Kv, 0);
        check_kv_cache(&kv).map_err(|_| self.wrong(Role::Kv, 0, "a KV cache f16[K, n]"))?;
        let src = self.g.operand(self.id, Role::Kv).expect("checked");
        let src_layer = match self.g.node(src).op {
            Op::KvCache { layer } | Op::KvStore { layer } => Some(layer),
            _ => None,
        };
        if src_layer.is_some_and(|l| l != layer) {
            return Err(Problem::Attribute(format!(
                "stores into layer {layer} through the KV cache of layer {}",
                src_layer.unwrap_or_default()
            )));
        }
        Ok(kv)
    }

    /// RoPE over `x`'s columns: whole heads (or `heads` of them), even head
    /// dims, rotated dims within a head, positions per row, `Freqs` n_rot/2.
    pub fn rope_fits(
        &self,
        spec: &super::op::RopeSpec,
        x: &TensorType,
        heads: Option<u64>,
    ) -> Result<(), Problem> {
        let hd = spec.head_dim as u64;
        if hd == 0
            || !hd.is_multiple_of(2)
            || spec.n_rot > spec.head_dim
            || !spec.n_rot.is_multiple_of(2)
        {
            return Err(Problem::Attribute(format!(
                "rope head_dim {} with n_rot {}: both even, n_rot <= head_dim",
                spec.head_dim, spec.n_rot
            )));
        }
        let cols = self.fixed_cols(x, "the rotated input")?;
        match heads {
            Some(h) if h * hd > cols => {
                return Err(Problem::Attribute(format!(
                    "{h} heads of {hd} exceed the {cols} columns"
                )))
            }
            None if cols % hd != 0 => {
                return Err(Problem::Shape(format!(
                    "{cols} columns are not a whole number of {hd}-dim heads"
                )))
            }
            _ => {}
        }
        self.positions(x.shape[0], false)?;
        if self.has(Role::Freqs) {
            let expected = TensorType::f32([Dim::Fixed(spec.n_rot as u64 / 2)]);
            self.expect_operand(Role::Freqs, 0, &expected)?;
        }
        Ok(())
    }

    fn attention(&self, spec: &super::op::AttentionSpec) -> Result<(), Problem> {
        let (nh, nkv, hd) = (
            spec.n_heads as u64,
            spec.n_kv_heads as u64,
            spec.head_dim as u64,
        );
        if nh == 0 || nkv == 0 || hd == 0 || nh % nkv != 0 || spec.window == Some(0) {
            return Err(Problem::Attribute(format!(
                "{nh} heads over {nkv} KV heads of {hd} dims (window {:?})",
                spec.window
            )));
        }
        let q = self.matrix(Role::Q)?;
        if q.shape[1] != Dim::Fixed(nh * hd) {
            return Err(Problem::Shape(format!(
                "q has {} columns, {nh} heads of {hd} need {}",
                q.shape[1],
                nh * hd
            )));
        }
        let kv = self.operand(Role::Kv, 0);
        check_kv_cache(&kv).map_err(|_| self.wrong(Role::Kv, 0, "a KV cache f16[K, n]"))?;
        if kv.shape[1] != Dim::Fixed(2 * nkv * hd) {
            return Err(Problem::Shape(format!(
                "the KV cache rows hold {}, {nkv} KV heads of {hd} need {}",
                kv.shape[1],
                2 * nkv * hd
            )));
        }
        self.positions(q.shape[0], true)?;
        self.result(q)
    }
}
