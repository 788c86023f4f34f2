//! Ops from their parsed head and items: the inverse of the op part of
//! `text::print`.

use super::{Item, ParseError, Pos, Value};
use crate::ir::op::{
    AttentionSpec, Epilogue, InputKind, MatMulOp, Op, Operand, Prologue, Role, RopeScaling,
    RopeSpec, RopeStyle,
};

/// An operand edge as written: operand, the `%N` it names, where.
pub(super) type OperandRef = (Operand, usize, Pos);

/// The op `name(attrs)` with operands and matmul parts from `items`.
pub(super) fn op(
    at: Pos,
    name: &str,
    attrs: &[Item],
    items: &[Item],
) -> Result<(Op, Vec<OperandRef>), ParseError> {
    let mut a = Attrs::new(at, attrs);
    let mut op = match name {
        "input" => {
            let kind = a.bare_word()?;
            Op::Input(
                InputKind::ALL
                    .into_iter()
                    .find(|k| k.name() == kind)
                    .ok_or_else(|| at.error(format!("unknown input {kind:?}")))?,
            )
        }
        "weight" => Op::Weight {
            name: a.bare_str()?,
        },
        "kv_cache" => Op::KvCache {
            layer: a.u32("layer")?,
        },
        "embed" => Op::Embed,
        "rms_norm" => Op::RmsNorm { eps: a.f32("eps")? },
        "matmul" => Op::MatMul(MatMulOp::default()),
        "add" => Op::Add,
        "mul" => Op::Mul,
        "silu" => Op::Silu,
        "gelu" => Op::Gelu,
        "scale" => Op::Scale {
            factor: a.f32("factor")?,
        },
        "softcap" => Op::SoftCap { cap: a.f32("cap")? },
        "head_rms_norm" => Op::HeadRmsNorm { eps: a.f32("eps")? },
        "rope" => Op::Rope(rope_spec(&mut a)?),
        "slice" => Op::Slice {
            start: a.u64("start")?,
            len: a.u64("len")?,
        },
        "kv_store" => Op::KvStore {
            layer: a.u32("layer")?,
        },
        "attention" => Op::Attention(AttentionSpec {
            n_heads: a.u32("n_heads")?,
            n_kv_heads: a.u32("n_kv_heads")?,
            head_dim: a.u32("head_dim")?,
            scale: a.f32("scale")?,
            window: a.opt_u32("window")?,
            softcap: a.opt_f32("softcap")?,
        }),
        "gather_rows" => Op::GatherRows,
        "router" => Op::Router {
            top_k: a.u32("top_k")?,
        },
        "experts" => Op::Experts(MatMulOp::default()),
        other => return Err(at.error(format!("unknown op {other:?}"))),
    };
    a.finish()?;
    let mut operands = Vec::new();
    for item in items {
        let key = item
            .key
            .as_deref()
            .ok_or_else(|| item.at.error("expected role=operand"))?;
        match (key, &mut op) {
            ("prologue", Op::MatMul(m) | Op::Experts(m)) => m.prologue = Some(prologue(item)?),
            ("epilogue", Op::MatMul(m) | Op::Experts(m)) => m.epilogue = epilogue(item)?,
            _ => operands.extend(operand_refs(key, item)?),
        }
    }
    Ok((op, operands))
}

/// `role=%N` or `role=[%a,_,%c]`.
fn operand_refs(key: &str, item: &Item) -> Result<Vec<OperandRef>, ParseError> {
    let role = Role::from_name(key)
        .ok_or_else(|| item.at.error(format!("{key:?} is not an operand role")))?;
    let one = |index: usize, v: &Value, at: Pos| -> Result<Option<OperandRef>, ParseError> {
        let index =
            u8::try_from(index).map_err(|_| at.error("more than 255 operands of a role"))?;
        match v {
            Value::Ref(id) => Ok(Some((Operand { role, index }, *id, at))),
            Value::Hole => Ok(None),
            _ => Err(at.error("expected %N or _")),
        }
    };
    match &item.value {
        Value::List(vs) => {
            let mut out = Vec::new();
            for (i, (v, at)) in vs.iter().enumerate() {
                out.extend(one(i, v, *at)?);
            }
            Ok(out)
        }
        Value::Hole => Err(item.value_at.error("expected %N")),
        v => Ok(one(0, v, item.value_at)?.into_iter().collect()),
    }
}

fn prologue(item: &Item) -> Result<Prologue, ParseError> {
    match &item.value {
        Value::Call(f, args) if f == "rms_norm" => {
            let mut a = Attrs::new(item.at, args);
            let p = Prologue::RmsNorm { eps: a.f32("eps")? };
            a.finish()?;
            Ok(p)
        }
        _ => Err(item.at.error("expected prologue=rms_norm(eps=...)")),
    }
}

fn epilogue(item: &Item) -> Result<Vec<Epilogue>, ParseError> {
    let Value::List(steps) = &item.value else {
        return Err(item.at.error("expected epilogue=[...]"));
    };
    steps.iter().map(|(v, at)| epilogue_step(v, *at)).collect()
}

fn epilogue_step(v: &Value, at: Pos) -> Result<Epilogue, ParseError> {
    let step = match v {
        Value::Word(w) if w == "bias" => Epilogue::Bias,
        Value::Word(w) if w == "swiglu" => Epilogue::SwiGlu,
        Value::Word(w) if w == "geglu" => Epilogue::GeGlu,
        Value::Word(w) if w == "residual" => Epilogue::Residual,
        Value::Call(f, args) if f == "rope" || f == "kv_store" => {
            let mut a = Attrs::new(at, args);
            let step = if f == "rope" {
                Epilogue::Rope {
                    spec: rope_spec(&mut a)?,
                    q_heads: a.u32("q_heads")?,
                    k_heads: a.u32("k_heads")?,
                }
            } else {
                Epilogue::KvStore {
                    layer: a.u32("layer")?,
                    k_col: a.u64("k_col")?,
                    v_col: a.u64("v_col")?,
                    kv_dim: a.u64("kv_dim")?,
                }
            };
            a.finish()?;
            step
        }
        _ => {
            return Err(
                at.error("expected bias, rope(...), kv_store(...), swiglu, geglu or residual")
            )
        }
    };
    Ok(step)
}

fn rope_spec(a: &mut Attrs) -> Result<RopeSpec, ParseError> {
    let style = match a.word("style")?.as_str() {
        "normal" => RopeStyle::Normal,
        "neox" => RopeStyle::Neox,
        other => return Err(a.at.error(format!("unknown rope style {other:?}"))),
    };
    Ok(RopeSpec {
        head_dim: a.u32("head_dim")?,
        n_rot: a.u32("n_rot")?,
        base: a.f32("base")?,
        style,
        scaling: scaling(a)?,
    })
}

fn scaling(a: &mut Attrs) -> Result<RopeScaling, ParseError> {
    let Some(item) = a.take("scaling") else {
        return Ok(RopeScaling::None);
    };
    let Value::Call(kind, args) = &item.value else {
        return Err(item
            .at
            .error("expected scaling=linear(...), yarn(...) or longrope(...)"));
    };
    let mut s = Attrs::new(item.at, args);
    let scaling = match kind.as_str() {
        "linear" => RopeScaling::Linear {
            factor: s.f32("factor")?,
        },
        "yarn" => RopeScaling::Yarn {
            factor: s.f32("factor")?,
            orig_ctx: s.u32("orig_ctx")?,
            beta_fast: s.f32("beta_fast")?,
            beta_slow: s.f32("beta_slow")?,
        },
        "longrope" => RopeScaling::LongRope {
            attn_factor: s.f32("attn_factor")?,
        },
        other => return Err(item.at.error(format!("unknown rope scaling {other:?}"))),
    };
    s.finish()?;
    Ok(scaling)
}

/// The attributes of one call, taken by key; leftovers are an error.
struct Attrs<'a> {
    at: Pos,
    items: Vec<&'a Item>,
}

impl<'a> Attrs<'a> {
    fn new(at: Pos, items: &'a [Item]) -> Self {
        Attrs {
            at,
            items: items.iter().collect(),
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a Item> {
        let i = self
            .items
            .iter()
            .position(|it| it.key.as_deref() == Some(key))?;
        Some(self.items.remove(i))
    }

    fn need(&mut self, key: &str) -> Result<&'a Item, ParseError> {
        let at = self.at;
        self.take(key)
            .ok_or_else(|| at.error(format!("missing attribute {key}")))
    }

    fn number<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<T, ParseError> {
        let item = self.need(key)?;
        let text = match &item.value {
            Value::Number(t) | Value::Word(t) => t.as_str(),
            _ => "",
        };
        text.parse()
            .map_err(|_| item.at.error(format!("{key} must be {what}")))
    }

    fn u64(&mut self, key: &str) -> Result<u64, ParseError> {
        self.number(key, "a non-negative integer")
    }

    fn u32(&mut self, key: &str) -> Result<u32, ParseError> {
        self.number(key, "a non-negative 32-bit integer")
    }

    fn f32(&mut self, key: &str) -> Result<f32, ParseError> {
        self.number(key, "a number")
    }

    fn opt_u32(&mut self, key: &str) -> Result<Option<u32>, ParseError> {
        if self.items.iter().any(|it| it.key.as_deref() == Some(key)) {
            self.u32(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_f32(&mut self, key: &str) -> Result<Option<f32>, ParseError> {
        if self.items.iter().any(|it| it.key.as_deref() == Some(key)) {
            self.f32(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn word(&mut self, key: &str) -> Result<String, ParseError> {
        let item = self.need(key)?;
        match &item.value {
            Value::Word(w) => Ok(w.clone()),
            _ => Err(item.at.error(format!("{key} must be a word"))),
        }
    }

    fn bare(&mut self) -> Result<&'a Item, ParseError> {
        let i = self
            .items
            .iter()
            .position(|it| it.key.is_none())
            .ok_or_else(|| self.at.error("missing argument"))?;
        Ok(self.items.remove(i))
    }

    fn bare_word(&mut self) -> Result<String, ParseError> {
        let item = self.bare()?;
        match &item.value {
            Value::Word(w) => Ok(w.clone()),
            _ => Err(item.at.error("expected a name")),
        }
    }

    fn bare_str(&mut self) -> Result<String, ParseError> {
        let item = self.bare()?;
        match &item.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(item.at.error("expected a quoted name")),
        }
    }

    fn finish(self) -> Result<(), ParseError> {
        match self.items.first() {
            None => Ok(()),
            Some(it) => Err(it.at.error(match &it.key {
                Some(k) => format!("unknown attribute {k}"),
                None => "unexpected argument".into(),
            })),
        }
    }
}
