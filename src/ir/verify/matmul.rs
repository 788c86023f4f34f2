//! The matmul rules: `X · concat(W[i])ᵀ` and what its prologue and epilogue
//! need. Epilogue columns are those of the concatenated product until SwiGlu
//! halves them.

use super::{Checker, Problem};
use crate::ir::dim::Dim;
use crate::ir::op::{Epilogue, MatMulOp, Prologue, Role};
use crate::ir::tensor_type::TensorType;
use crate::quant::GgmlType;

pub(super) fn check(c: &Checker, m: &MatMulOp) -> Result<(), Problem> {
    let x = c.matrix(Role::X)?;
    let rows = x.shape[0];
    let widths = weight_rows(c, &x)?;
    let mut cols: u64 = widths.iter().sum();
    if let Some(Prologue::RmsNorm { .. }) = m.prologue {
        c.norm_fits(&x)?;
    }
    check_epilogue_order(&m.epilogue)?;
    for e in &m.epilogue {
        match *e {
            Epilogue::Bias => check_biases(c, &widths)?,
            Epilogue::Rope {
                spec,
                q_heads,
                k_heads,
            } => {
                let product = TensorType::f32([rows, Dim::Fixed(cols)]);
                c.rope_fits(&spec, &product, Some(q_heads as u64 + k_heads as u64))?;
            }
            Epilogue::KvStore {
                layer,
                k_col,
                v_col,
                kv_dim,
            } => {
                if k_col + kv_dim > cols || v_col + kv_dim > cols {
                    return Err(Problem::Attribute(format!(
                        "kv_store reads columns from {k_col} and {v_col}, {kv_dim} each, of {cols}"
                    )));
                }
                let kv = c.kv_operand(layer)?;
                if kv.shape[1] != Dim::Fixed(2 * kv_dim) {
                    return Err(Problem::Shape(format!(
                        "the KV cache rows hold {}, kv_store writes {}",
                        kv.shape[1],
                        2 * kv_dim
                    )));
                }
                c.positions(rows, true)?;
            }
            Epilogue::SwiGlu | Epilogue::GeGlu => {
                if !cols.is_multiple_of(2) {
                    return Err(Problem::Shape(format!(
                        "a gated activation of an odd {cols} columns"
                    )));
                }
                cols /= 2;
            }
            Epilogue::Residual => {
                c.expect_operand(
                    Role::Residual,
                    0,
                    &TensorType::f32([rows, Dim::Fixed(cols)]),
                )?;
            }
        }
    }
    c.result(TensorType::f32([rows, Dim::Fixed(cols)]))
}

/// Rows of each `W[i]`, after checking it is a matrix as wide as `x`.
fn weight_rows(c: &Checker, x: &TensorType) -> Result<Vec<u64>, Problem> {
    let k = x.shape[1];
    let n = c.g.operand_list(c.id, Role::W).len();
    (0..n as u8)
        .map(|i| {
            let w = c.operand(Role::W, i);
            let rows = match w.shape.as_slice() {
                [Dim::Fixed(r), Dim::Fixed(_)] => *r,
                _ => {
                    return Err(Problem::OperandType {
                        role: Role::W,
                        index: i,
                        expected: "a fixed [n, k] matrix".into(),
                        found: w,
                    })
                }
            };
            if w.shape[1] != k {
                return Err(Problem::Shape(format!(
                    "x has {k} columns but w[{i}] {w} has {}",
                    w.shape[1]
                )));
            }
            Ok(rows)
        })
        .collect()
}

/// `Bias[i]` is an f32 vector as long as `W[i]` has rows.
fn check_biases(c: &Checker, widths: &[u64]) -> Result<(), Problem> {
    for (o, src) in c.g.operands(c.id) {
        if o.role != Role::Bias {
            continue;
        }
        let Some(&w) = widths.get(o.index as usize) else {
            return Err(Problem::Shape(format!(
                "bias[{}] has no w[{}] (there are {} weights)",
                o.index,
                o.index,
                widths.len()
            )));
        };
        let expected = TensorType::new(GgmlType::F32, [Dim::Fixed(w)]);
        let found = c.g.node(src).ty.clone();
        if found != expected {
            return Err(Problem::OperandType {
                role: Role::Bias,
                index: o.index,
                expected: expected.to_string(),
                found,
            });
        }
    }
    Ok(())
}

/// Each epilogue step at most once, in the order columns allow: bias, rope,
/// kv_store on the full product, then swiglu or geglu (one of them), then
/// the residual.
fn check_epilogue_order(epilogue: &[Epilogue]) -> Result<(), Problem> {
    let rank = |e: &Epilogue| match e {
        Epilogue::Bias => 0,
        Epilogue::Rope { .. } => 1,
        Epilogue::KvStore { .. } => 2,
        Epilogue::SwiGlu | Epilogue::GeGlu => 3,
        Epilogue::Residual => 4,
    };
    if epilogue.windows(2).any(|w| rank(&w[0]) >= rank(&w[1])) {
        return Err(Problem::Attribute(
            "epilogue steps must appear once each, in the order bias, rope, kv_store, swiglu|geglu, residual"
                .into(),
        ));
    }
    Ok(())
}
