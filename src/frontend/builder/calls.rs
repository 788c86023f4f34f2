//! The wiring calls whose arguments are not all values: `scale(x, name)`
//! takes a `[constants]` entry and `slice(x, start, len)` two `[dims]`
//! entries, so they are evaluated here rather than through `FUNCS`.

use super::{eval_dim, At, Builder, Val};
use crate::frontend::error::Result;
use crate::frontend::wiring::Expr;
use crate::ir::tensor_type::n;
use crate::ir::{Dim, Node, Op, Role, TensorType};

impl Builder<'_> {
    /// `slice(x, start, len)`: columns `[start, start+len)` of `x` (a view),
    /// `start` and `len` naming `[dims]` entries (Phi-3's fused QKV and
    /// gate/up weights).
    pub(super) fn slice(&mut self, at: &At, e: &Expr, args: &[Expr], outer: bool) -> Result<Val> {
        let [x, Expr::Name { name: start, .. }, Expr::Name { name: len, .. }] = args else {
            return Err(self.err(
                at,
                "slice takes a value and the names of two [dims] entries".into(),
            ));
        };
        let dim = |n: &str| -> Result<u64> {
            let expr =
                self.spec.dims.get(n).ok_or_else(|| {
                    self.err(at, format!("slice: {n:?} is not in the spec's [dims]"))
                })?;
            eval_dim(expr, self.cfg)
                .ok_or_else(|| self.err(at, format!("dim {n} = {expr:?} does not evaluate")))
        };
        let (start, len) = (dim(start)?, dim(len)?);
        let Val::Node(x) = self.eval(at, x, false)? else {
            return Err(self.err(at, format!("slice: argument {x} is absent")));
        };
        let cols = self.g.node(x).ty.last().and_then(Dim::fixed).unwrap_or(0);
        if len == 0 || start + len > cols {
            return Err(self.err(
                at,
                format!(
                    "slice: columns [{start}, {}) of a {cols}-column value",
                    start + len
                ),
            ));
        }
        let name = self.name(at, e, outer);
        let mut node = Node::new(
            Op::Slice { start, len },
            TensorType::f32([self.g.node(x).ty.shape[0], n(len)]),
            name,
        );
        node.layer = self.layer;
        Ok(Val::Node(self.g.add(node, &[(Role::X, x)])))
    }

    /// `softcap(x, name)`: `cap·tanh(x / cap)`, `cap` the soft-cap hparam
    /// `name` (Gemma 2's `final_softcap`).
    pub(super) fn softcap(&mut self, at: &At, e: &Expr, args: &[Expr], outer: bool) -> Result<Val> {
        let [x, Expr::Name {
            name,
            optional: false,
        }] = args
        else {
            return Err(self.err(
                at,
                "softcap takes a value and the name of a soft-cap hparam".into(),
            ));
        };
        let cap = match name.as_str() {
            "final_softcap" => self.cfg.final_softcap,
            "attn_softcap" => self.cfg.attn_softcap,
            other => {
                return Err(self.err(
                    at,
                    format!("softcap: {other:?} is not final_softcap or attn_softcap"),
                ))
            }
        }
        .ok_or_else(|| self.err(at, format!("softcap: the model has no {name}")))?;
        let Val::Node(x) = self.eval(at, x, false)? else {
            return Err(self.err(at, format!("softcap: argument {x} is absent")));
        };
        let name = self.name(at, e, outer);
        Ok(Val::Node(self.node(
            Op::SoftCap { cap },
            &[(Role::X, x)],
            name,
        )))
    }

    /// `scale(x, name)`: `x` times the spec's constant `name`.
    pub(super) fn scale(&mut self, at: &At, e: &Expr, args: &[Expr], outer: bool) -> Result<Val> {
        let [x, Expr::Name {
            name,
            optional: false,
        }] = args
        else {
            return Err(self.err(
                at,
                "scale takes a value and the name of a [constants] entry".into(),
            ));
        };
        let expr = self.spec.constants.get(name).ok_or_else(|| {
            self.err(
                at,
                format!("scale: {name:?} is not in the spec's [constants]"),
            )
        })?;
        let factor = crate::frontend::constants::eval(expr, self.cfg)
            .map_err(|m| self.err(at, format!("constant {name}: {m}")))?;
        let Val::Node(x) = self.eval(at, x, false)? else {
            return Err(self.err(at, format!("scale: argument {x} is absent")));
        };
        let name = self.name(at, e, outer);
        Ok(Val::Node(self.node(
            Op::Scale { factor },
            &[(Role::X, x)],
            name,
        )))
    }
}
