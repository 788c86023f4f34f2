//! Interprets a spec's wiring over a GGUF file: each statement becomes nodes
//! of the canonical unfused graph (/work/brief/ir.md; docs/ARCHITECTURE.md).
//!
//! Nodes are created in the order they are needed (inputs first, then each
//! weight just before its first use), so creation order is a schedule and the
//! printed graph reads like the spec.

use std::collections::HashMap;

use super::config::ModelConfig;
use super::error::{FrontendError, Result};
use super::spec::{ArchSpec, TensorRule};
use super::wiring::{Expr, Statement};
use crate::gguf::GgufFile;
use crate::ir::tensor_type::n;
use crate::ir::{Dim, Graph, InputKind, Node, NodeId, Op, Role, TensorType};
use crate::quant::GgmlType;

mod calls;

/// A value of the wiring: a node, or an optional tensor the file lacks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Node(NodeId),
    Absent,
}

/// The functions the wiring may call: the unfused ops, by name, with the role
/// of each argument (`true`: the argument may be an absent optional tensor).
const FUNCS: &[(&str, &[(Role, bool)])] = &[
    ("embed", &[(Role::Table, false), (Role::Tokens, false)]),
    ("rms_norm", &[(Role::X, false), (Role::Norm, false)]),
    ("matmul", &[(Role::X, false), (Role::W, false)]),
    ("add", &[(Role::A, false), (Role::B, false)]),
    ("mul", &[(Role::A, false), (Role::B, false)]),
    ("silu", &[(Role::X, false)]),
    ("gelu", &[(Role::X, false)]),
    ("head_rms_norm", &[(Role::X, false), (Role::Norm, false)]),
    // The second argument names one of the spec's `[constants]`.
    ("scale", &[(Role::X, false)]),
    (
        "rope",
        &[(Role::X, false), (Role::Pos, false), (Role::Freqs, true)],
    ),
    (
        "kv_store",
        &[
            (Role::K, false),
            (Role::V, false),
            (Role::Pos, false),
            (Role::Seq, false),
            (Role::Pages, false),
            (Role::Kv, false),
        ],
    ),
    (
        "attention",
        &[
            (Role::Q, false),
            (Role::Kv, false),
            (Role::Pos, false),
            (Role::Seq, false),
            (Role::Pages, false),
        ],
    ),
    ("gather_rows", &[(Role::X, false), (Role::Rows, false)]),
    // Mixture of experts: router(logits) picks each token's experts;
    // experts(h, route, gate_exps, up_exps, down_exps) runs them.
    ("router", &[(Role::X, false)]),
    (
        "experts",
        &[
            (Role::X, false),
            (Role::Route, false),
            (Role::W, false),
            (Role::W, false),
            (Role::W, false),
        ],
    ),
];

/// Builds the graph of `file` under `spec` with hparams `cfg`; fills in
/// `cfg.tied_output` and `cfg.optional_tensors`.
pub fn build(file: &GgufFile, spec: &ArchSpec, cfg: &mut ModelConfig) -> Result<Graph> {
    let mut b = Builder {
        file,
        spec,
        cfg,
        g: Graph::new(),
        vars: HashMap::new(),
        inputs: HashMap::new(),
        weights: HashMap::new(),
        layer: None,
        kv_cache: None,
    };
    for kind in InputKind::ALL {
        let id = b.g.add(
            Node::new(Op::Input(kind), input_type(kind), kind.name()),
            &[],
        );
        b.inputs.insert(kind.name(), id);
    }
    b.section("embed", &spec.graph.embed)?;
    for l in 0..b.cfg.n_layer as u32 {
        b.layer = Some(l);
        b.kv_cache = None;
        b.section("layer", &spec.graph.layer)?;
    }
    b.layer = None;
    b.section("head", &spec.graph.head)?;
    b.check_declared_tensors()?;
    for name in &spec.graph.outputs {
        let id = *b.vars.get(name).ok_or_else(|| {
            FrontendError::spec(&spec.name, format!("output {name:?} is never assigned"))
        })?;
        b.g.set_output(name.clone(), id);
    }
    Ok(b.g)
}

/// The type of each per-step input (see [`InputKind`]).
fn input_type(kind: InputKind) -> TensorType {
    match kind {
        InputKind::PageTable => TensorType::i32([Dim::Seqs, Dim::Pages]),
        InputKind::OutputRows => TensorType::i32([Dim::Rows]),
        _ => TensorType::i32([Dim::Tokens]),
    }
}

struct Builder<'a> {
    file: &'a GgufFile,
    spec: &'a ArchSpec,
    cfg: &'a mut ModelConfig,
    g: Graph,
    vars: HashMap<String, NodeId>,
    inputs: HashMap<&'static str, NodeId>,
    /// Weight nodes by GGUF name (a tied table is one node read twice).
    weights: HashMap<String, NodeId>,
    layer: Option<u32>,
    kv_cache: Option<NodeId>,
}

/// Where a statement is being evaluated, for names and errors.
struct At<'s> {
    section: &'s str,
    stmt: &'s Statement,
}

impl Builder<'_> {
    fn section(&mut self, section: &str, stmts: &[Statement]) -> Result<()> {
        for stmt in stmts {
            let at = At { section, stmt };
            match self.eval(&at, &stmt.expr, true)? {
                Val::Node(id) => {
                    self.vars.insert(stmt.target.clone(), id);
                }
                Val::Absent => {
                    return Err(self.err(&at, format!("{} is absent", stmt.expr)));
                }
            }
        }
        Ok(())
    }

    fn err(&self, at: &At, message: String) -> FrontendError {
        FrontendError::spec(
            &self.spec.name,
            format!("graph.{} line {}: {message}", at.section, at.stmt.line),
        )
    }

    /// The node name for an expression: the statement's target for the whole
    /// expression, the weight's alias for an inner matmul, else target.op.
    fn name(&self, at: &At, e: &Expr, outer: bool) -> String {
        let base = match e {
            _ if outer => at.stmt.target.clone(),
            Expr::Call { func, args } if func == "matmul" => match args.get(1) {
                Some(Expr::Name { name, .. }) => name.clone(),
                _ => format!("{}.matmul", at.stmt.target),
            },
            Expr::Call { func, .. } => format!("{}.{func}", at.stmt.target),
            Expr::Add(..) => format!("{}.add", at.stmt.target),
            Expr::Mul(..) => format!("{}.mul", at.stmt.target),
            Expr::Name { name, .. } => name.clone(),
        };
        match self.layer {
            Some(l) => format!("blk.{l}.{base}"),
            None => base,
        }
    }

    fn eval(&mut self, at: &At, e: &Expr, outer: bool) -> Result<Val> {
        match e {
            Expr::Name { name, optional } => self.lookup(at, name, *optional),
            Expr::Add(a, b) | Expr::Mul(a, b) => {
                let (a, b) = (self.eval(at, a, false)?, self.eval(at, b, false)?);
                match (a, b) {
                    // An absent optional operand leaves the other unchanged.
                    (v, Val::Absent) | (Val::Absent, v) => Ok(v),
                    (Val::Node(a), Val::Node(b)) => {
                        let op = if matches!(e, Expr::Add(..)) {
                            Op::Add
                        } else {
                            Op::Mul
                        };
                        let name = self.name(at, e, outer);
                        Ok(Val::Node(self.node(
                            op,
                            &[(Role::A, a), (Role::B, b)],
                            name,
                        )))
                    }
                }
            }
            Expr::Call { func, args } if func == "scale" => self.scale(at, e, args, outer),
            Expr::Call { func, args } if func == "softcap" => self.softcap(at, e, args, outer),
            Expr::Call { func, args } if func == "slice" => self.slice(at, e, args, outer),
            Expr::Call { func, args } => {
                let params = FUNCS
                    .iter()
                    .find(|(f, _)| f == func)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| {
                        let known: Vec<_> = FUNCS.iter().map(|(f, _)| *f).collect();
                        self.err(
                            at,
                            format!("unknown function {func:?} (known: {})", known.join(", ")),
                        )
                    })?;
                if args.len() != params.len() {
                    return Err(self.err(
                        at,
                        format!(
                            "{func} takes {} arguments, given {}",
                            params.len(),
                            args.len()
                        ),
                    ));
                }
                let mut operands = Vec::new();
                for (arg, &(role, may_be_absent)) in args.iter().zip(params) {
                    match self.eval(at, arg, false)? {
                        Val::Node(id) => operands.push((role, id)),
                        Val::Absent if may_be_absent => {}
                        Val::Absent => {
                            return Err(self.err(at, format!("{func}: argument {arg} is absent")))
                        }
                    }
                }
                let op = self.op(at, func)?;
                let name = self.name(at, e, outer);
                Ok(Val::Node(self.node(op, &operands, name)))
            }
        }
    }

    fn op(&self, at: &At, func: &str) -> Result<Op> {
        Ok(match func {
            "embed" => Op::Embed,
            "rms_norm" => Op::RmsNorm {
                eps: self.cfg.rms_eps,
            },
            "matmul" => Op::MatMul(Default::default()),
            "add" => Op::Add,
            "mul" => Op::Mul,
            "silu" => Op::Silu,
            "gelu" => Op::Gelu,
            "head_rms_norm" => Op::HeadRmsNorm {
                eps: self.cfg.rms_eps,
            },
            "rope" => Op::Rope(self.cfg.rope_for(self.layer.unwrap_or(0))),
            "kv_store" => Op::KvStore {
                layer: self
                    .layer
                    .ok_or_else(|| self.err(at, "kv_store outside a layer".into()))?,
            },
            "attention" => Op::Attention(self.cfg.attention(self.layer.unwrap_or(0))),
            "gather_rows" => Op::GatherRows,
            "router" => match self.cfg.n_expert_used {
                0 => return Err(self.err(at, "router in a model without experts".into())),
                k => Op::Router { top_k: k as u32 },
            },
            "experts" => Op::Experts(Default::default()),
            other => return Err(self.err(at, format!("unknown function {other:?}"))),
        })
    }

    /// Adds a computed node; its type follows from its operands' types.
    fn node(&mut self, op: Op, operands: &[(Role, NodeId)], name: String) -> NodeId {
        let ty = self.result_type(&op, operands);
        let mut node = Node::new(op, ty, name);
        node.layer = self.layer;
        self.g.add(node, operands)
    }

    fn result_type(&self, op: &Op, operands: &[(Role, NodeId)]) -> TensorType {
        let ty = |role| {
            operands
                .iter()
                .find(|(r, _)| *r == role)
                .map(|&(_, id)| self.g.node(id).ty.clone())
                .unwrap_or_else(|| TensorType::f32(Vec::new()))
        };
        let lead = |t: &TensorType| t.shape.first().copied().unwrap_or(Dim::Tokens);
        let last = |t: &TensorType| t.last().unwrap_or(n(0));
        match op {
            Op::Embed => TensorType::f32([lead(&ty(Role::Tokens)), last(&ty(Role::Table))]),
            Op::MatMul(_) => TensorType::f32([lead(&ty(Role::X)), lead(&ty(Role::W))]),
            Op::KvStore { .. } => ty(Role::Kv),
            Op::Attention(_) => ty(Role::Q),
            Op::GatherRows => TensorType::f32([lead(&ty(Role::Rows)), last(&ty(Role::X))]),
            Op::Router { top_k } => TensorType::f32([lead(&ty(Role::X)), n(2 * u64::from(*top_k))]),
            Op::Add | Op::Mul => ty(Role::A),
            _ => ty(Role::X),
        }
    }

    fn lookup(&mut self, at: &At, name: &str, optional: bool) -> Result<Val> {
        if let Some(&id) = self.vars.get(name) {
            return Ok(Val::Node(id));
        }
        if let Some(&id) = self.inputs.get(name) {
            return Ok(Val::Node(id));
        }
        if name == "kv_cache" {
            return self.kv_cache(at).map(Val::Node);
        }
        if name == "rope_factors" {
            // LongRoPE's set for the context being built for, if any; a
            // file that has LongRoPE must have the set the context needs.
            return match self.cfg.rope_factors().map(str::to_owned) {
                Some(alias) => self.tensor(at, &alias, false),
                None if optional => Ok(Val::Absent),
                None => Err(self.err(at, "rope_factors: the file has no LongRoPE factors".into())),
            };
        }
        if self.spec.tensors.contains_key(name) {
            return self.tensor(at, name, optional);
        }
        Err(self.err(
            at,
            format!("{name:?} is not a variable, input, kv_cache, rope_factors or tensor alias"),
        ))
    }

    /// This layer's KV cache: f16[K, 2 * kv_dim] (keys then values per row).
    fn kv_cache(&mut self, at: &At) -> Result<NodeId> {
        let layer = self
            .layer
            .ok_or_else(|| self.err(at, "kv_cache outside a layer".into()))?;
        if let Some(id) = self.kv_cache {
            return Ok(id);
        }
        let ty = TensorType::new(GgmlType::F16, [Dim::KvLen, n(2 * self.cfg.kv_dim() as u64)]);
        let node =
            Node::new(Op::KvCache { layer }, ty, format!("blk.{layer}.kv_cache")).in_layer(layer);
        let id = self.g.add(node, &[]);
        self.kv_cache = Some(id);
        Ok(id)
    }

    fn tensor(&mut self, at: &At, alias: &str, optional: bool) -> Result<Val> {
        let spec = self.spec;
        let rule = &spec.tensors[alias];
        let layer = if rule.is_per_layer() {
            Some(self.layer.ok_or_else(|| {
                self.err(at, format!("per-layer tensor {alias} used outside a layer"))
            })?)
        } else {
            None
        };
        let name = rule.gguf_name(layer);
        if let Some(&id) = self.weights.get(&name) {
            return Ok(Val::Node(id));
        }
        let Some(info) = self.file.tensor_info(&name) else {
            if let Some(fallback) = &rule.fallback {
                self.cfg.tied_output = true;
                return self.tensor(at, fallback, optional);
            }
            if optional {
                return Ok(Val::Absent);
            }
            return Err(FrontendError::MissingTensor {
                name,
                alias: alias.into(),
            });
        };
        let found: Vec<u64> = info.dims.iter().rev().copied().collect();
        self.check_shape(alias, rule, &name, &found)?;
        if optional && !self.cfg.optional_tensors.iter().any(|a| a == alias) {
            self.cfg.optional_tensors.push(alias.into());
        }
        let ty = TensorType::new(info.ty, found.iter().map(|&d| n(d)).collect::<Vec<_>>());
        let mut node = Node::new(Op::Weight { name: name.clone() }, ty, name.clone());
        node.layer = layer;
        let id = self.g.add(node, &[]);
        self.weights.insert(name, id);
        Ok(Val::Node(id))
    }

    /// Every tensor the spec declares that the file has, used or not, must
    /// have its declared shape (a wrong hparam shows up even in a tensor the
    /// wiring ignores).
    fn check_declared_tensors(&self) -> Result<()> {
        let layers = 0..self.cfg.n_layer as u32;
        for (alias, rule) in &self.spec.tensors {
            let names: Vec<String> = if rule.is_per_layer() {
                layers.clone().map(|l| rule.gguf_name(Some(l))).collect()
            } else {
                vec![rule.gguf_name(None)]
            };
            for name in names {
                if let (Some(reason), true) = (&rule.unsupported, self.file.has_tensor(&name)) {
                    return Err(FrontendError::spec(
                        &self.spec.name,
                        format!("tensor {name:?} ({alias}): {reason}"),
                    ));
                }
                if let Some(info) = self.file.tensor_info(&name) {
                    let found: Vec<u64> = info.dims.iter().rev().copied().collect();
                    self.check_shape(alias, rule, &name, &found)?;
                }
            }
        }
        Ok(())
    }

    fn check_shape(&self, alias: &str, rule: &TensorRule, name: &str, found: &[u64]) -> Result<()> {
        let expected = rule
            .shape
            .iter()
            .map(|d| {
                eval_dim(d, self.cfg).ok_or_else(|| {
                    FrontendError::spec(&self.spec.name, format!("tensor {alias}: bad shape {d:?}"))
                })
            })
            .collect::<Result<Vec<u64>>>()?;
        if expected != found {
            return Err(FrontendError::TensorShape {
                name: name.into(),
                expected,
                found: found.to_vec(),
                rule: rule.shape.join(", "),
            });
        }
        Ok(())
    }
}

/// Evaluates a shape expression such as `n_heads*head_dim`, `rope_dims/2`
/// or `n_heads*head_dim + 2*n_kv_heads*head_dim` (terms joined by `+`, each
/// a product/quotient left to right); `None` for an unknown name, an
/// overflow or a division with remainder.
pub fn eval_dim(expr: &str, cfg: &ModelConfig) -> Option<u64> {
    expr.split('+')
        .try_fold(0u64, |sum, term| sum.checked_add(eval_term(term, cfg)?))
}

/// One `+` term of [`eval_dim`].
fn eval_term(expr: &str, cfg: &ModelConfig) -> Option<u64> {
    let mut value: Option<u64> = None;
    let mut op = '*';
    let mut rest = expr.trim();
    loop {
        let end = rest.find(['*', '/']).unwrap_or(rest.len());
        let term = rest[..end].trim();
        let x = term.parse::<u64>().ok().or_else(|| cfg.hparam(term))?;
        value = Some(match (value, op) {
            (None, _) => x,
            (Some(v), '*') => v.checked_mul(x)?,
            (Some(v), _) if x != 0 && v % x == 0 => v / x,
            _ => return None,
        });
        if end == rest.len() {
            return value;
        }
        op = rest.as_bytes()[end] as char;
        rest = &rest[end + 1..];
    }
}
