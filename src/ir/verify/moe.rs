//! The mixture-of-experts rules: a router over `[T, n_expert]` logits, and
//! the experts op over 3-D `[n_expert, rows, cols]` weights it routes to.

use super::{Arity, Checker, Problem};
use crate::ir::dim::Dim;
use crate::ir::op::{Epilogue, MatMulOp, Prologue, Role};
use crate::ir::tensor_type::TensorType;

/// X, Route, W = [gate, up, down], and the fused parts' operands.
pub(super) fn experts_signature(m: &MatMulOp) -> Vec<(Role, Arity)> {
    let mut s = vec![(Role::X, Arity::One), (Role::Route, Arity::One)];
    s.push((Role::W, Arity::List));
    if m.prologue.is_some() {
        s.push((Role::Norm, Arity::One));
    }
    if m.epilogue.contains(&Epilogue::Residual) {
        s.push((Role::Residual, Arity::One));
    }
    s
}

/// `top_k` of at most `n_expert` logits per row; result f32[T, 2·top_k].
pub(super) fn check_router(c: &Checker, top_k: u32) -> Result<(), Problem> {
    let x = c.matrix(Role::X)?;
    let experts = c.fixed_cols(&x, "router logits")?;
    if top_k == 0 || u64::from(top_k) > experts {
        return Err(Problem::Attribute(format!(
            "router top_k={top_k} of {experts} experts"
        )));
    }
    c.result(TensorType::f32([
        x.shape[0],
        Dim::Fixed(2 * u64::from(top_k)),
    ]))
}

/// Gate and up `[E, ff, d]`, down `[E, d, ff]`, a route of the same rows
/// as `X` whose k is at most E; the result is shaped like `X`.
pub(super) fn check_experts(c: &Checker, m: &MatMulOp) -> Result<(), Problem> {
    let x = c.matrix(Role::X)?;
    let d = c.fixed_cols(&x, "experts input")?;
    if m.epilogue.iter().any(|e| *e != Epilogue::Residual) {
        return Err(Problem::Attribute(
            "an experts op takes only the residual epilogue".into(),
        ));
    }
    if c.g.operand_list(c.id, Role::W).len() != 3 {
        return Err(Problem::Attribute(
            "an experts op reads w=[gate_exps, up_exps, down_exps]".into(),
        ));
    }
    let dims = |i: u8| -> Result<[u64; 3], Problem> {
        match c.operand(Role::W, i).shape.as_slice() {
            [Dim::Fixed(e), Dim::Fixed(r), Dim::Fixed(k)] => Ok([*e, *r, *k]),
            _ => Err(Problem::OperandType {
                role: Role::W,
                index: i,
                expected: "a 3-D [n_expert, rows, cols] weight".into(),
                found: c.operand(Role::W, i),
            }),
        }
    };
    let (gate, up, down) = (dims(0)?, dims(1)?, dims(2)?);
    let [experts, ff, _] = gate;
    if gate != up || gate[2] != d || down != [experts, d, ff] {
        return Err(Problem::Shape(format!(
            "experts of gate {gate:?}, up {up:?}, down {down:?} for a {d}-column input \
             (expected [E, ff, {d}] twice and [E, {d}, ff])"
        )));
    }
    let route = c.matrix(Role::Route)?;
    let k2 = c.fixed_cols(&route, "route")?;
    if route.shape[0] != x.shape[0] || k2 == 0 || k2 % 2 != 0 || k2 / 2 > experts {
        return Err(Problem::Shape(format!(
            "a route {route} for {} rows of {experts} experts",
            x.shape[0]
        )));
    }
    if let Some(Prologue::RmsNorm { .. }) = m.prologue {
        c.norm_fits(&x)?;
    }
    if m.epilogue.contains(&Epilogue::Residual) {
        c.expect_operand(Role::Residual, 0, &x)?;
    }
    c.result(x)
}
