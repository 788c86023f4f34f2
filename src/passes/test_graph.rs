//! Hand-built canonical decoder graphs (docs/PASSES.md, the frontend's
//! contract) for the passes' unit tests, independent of the frontend.

use crate::ir::tensor_type::n;
use crate::ir::{
    AttentionSpec, Dim, Graph, InputKind, Node, NodeId, Op, Role, RopeScaling, RopeSpec, RopeStyle,
    TensorType,
};
use crate::quant::GgmlType;

/// The sizes and options of a tiny decoder.
#[derive(Debug, Clone)]
pub struct Tiny {
    pub layers: u32,
    pub d: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub ff: u64,
    pub vocab: u64,
    pub qkv_bias: bool,
    pub tied: bool,
    /// Types of attn_q, attn_k, attn_v.
    pub qkv_types: [GgmlType; 3],
}

impl Tiny {
    /// A llama-like model: no biases, separate output.
    pub fn llama() -> Self {
        Tiny {
            layers: 2,
            d: 64,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            ff: 128,
            vocab: 256,
            qkv_bias: false,
            tied: false,
            qkv_types: [GgmlType::Q4_K; 3],
        }
    }

    /// A qwen2-like model: q/k/v biases, tied output, mixed q/k/v types.
    pub fn qwen2() -> Self {
        Tiny {
            qkv_bias: true,
            tied: true,
            qkv_types: [GgmlType::Q5_0, GgmlType::Q5_0, GgmlType::Q8_0],
            ..Self::llama()
        }
    }
}

fn weight(g: &mut Graph, name: &str, ty: GgmlType, shape: &[u64]) -> NodeId {
    let shape: Vec<Dim> = shape.iter().map(|&x| n(x)).collect();
    g.add(
        Node::new(
            Op::Weight { name: name.into() },
            TensorType::new(ty, shape),
            name,
        ),
        &[],
    )
}

fn input(g: &mut Graph, kind: InputKind, shape: Vec<Dim>) -> NodeId {
    g.add(
        Node::new(Op::Input(kind), TensorType::i32(shape), kind.name()),
        &[],
    )
}

/// Builds the canonical unfused graph of `m`; returns it with its inputs in
/// [`InputKind::ALL`] order.
pub fn build(m: &Tiny) -> (Graph, [NodeId; 5]) {
    let mut g = Graph::new();
    let tokens = input(&mut g, InputKind::Tokens, vec![Dim::Tokens]);
    let pos = input(&mut g, InputKind::Positions, vec![Dim::Tokens]);
    let seq = input(&mut g, InputKind::SeqIds, vec![Dim::Tokens]);
    let pages = input(&mut g, InputKind::PageTable, vec![Dim::Seqs, Dim::Pages]);
    let rows = input(&mut g, InputKind::OutputRows, vec![Dim::Rows]);
    let t = Dim::Tokens;
    let act = |w: u64| TensorType::f32(vec![t, n(w)]);
    let table = weight(&mut g, "token_embd.weight", GgmlType::Q8_0, &[m.vocab, m.d]);
    let mut x = g.add(
        Node::new(Op::Embed, act(m.d), "x"),
        &[(Role::Table, table), (Role::Tokens, tokens)],
    );
    for l in 0..m.layers {
        x = layer(&mut g, m, l, x, [pos, seq, pages]);
    }
    let norm = weight(&mut g, "output_norm.weight", GgmlType::F32, &[m.d]);
    let xr = g.add(
        Node::new(
            Op::GatherRows,
            TensorType::f32(vec![Dim::Rows, n(m.d)]),
            "xr",
        ),
        &[(Role::X, x), (Role::Rows, rows)],
    );
    let hn = g.add(
        Node::new(
            Op::RmsNorm { eps: 1e-6 },
            TensorType::f32(vec![Dim::Rows, n(m.d)]),
            "hn",
        ),
        &[(Role::X, xr), (Role::Norm, norm)],
    );
    let out = if m.tied {
        table
    } else {
        weight(&mut g, "output.weight", GgmlType::Q6_K, &[m.vocab, m.d])
    };
    let logits = g.add(
        Node::new(
            Op::MatMul(Default::default()),
            TensorType::f32(vec![Dim::Rows, n(m.vocab)]),
            "logits",
        ),
        &[(Role::X, hn), (Role::W, out)],
    );
    g.set_output("logits", logits);
    (g, [tokens, pos, seq, pages, rows])
}

fn layer(g: &mut Graph, m: &Tiny, l: u32, x: NodeId, [pos, seq, pages]: [NodeId; 3]) -> NodeId {
    let t = Dim::Tokens;
    let act = |w: u64| TensorType::f32(vec![t, n(w)]);
    let nm = |s: &str| format!("blk.{l}.{s}");
    let add = |g: &mut Graph, op: Op, ty: TensorType, name: &str, ops: &[(Role, NodeId)]| {
        g.add(
            Node::new(op, ty, format!("blk.{l}.{name}")).in_layer(l),
            ops,
        )
    };
    let (dq, dkv) = (m.heads * m.head_dim, m.kv_heads * m.head_dim);
    let attn_norm = weight(g, &nm("attn_norm.weight"), GgmlType::F32, &[m.d]);
    let h = add(
        g,
        Op::RmsNorm { eps: 1e-6 },
        act(m.d),
        "h",
        &[(Role::X, x), (Role::Norm, attn_norm)],
    );
    let proj = |g: &mut Graph, which: &str, ty: GgmlType, cols: u64| {
        let w = weight(g, &nm(&format!("attn_{which}.weight")), ty, &[cols, m.d]);
        let mut v = add(
            g,
            Op::MatMul(Default::default()),
            act(cols),
            which,
            &[(Role::X, h), (Role::W, w)],
        );
        if m.qkv_bias {
            let b = weight(
                g,
                &nm(&format!("attn_{which}.bias")),
                GgmlType::F32,
                &[cols],
            );
            v = add(g, Op::Add, act(cols), which, &[(Role::A, v), (Role::B, b)]);
        }
        v
    };
    let q = proj(g, "q", m.qkv_types[0], dq);
    let k = proj(g, "k", m.qkv_types[1], dkv);
    let v = proj(g, "v", m.qkv_types[2], dkv);
    let spec = RopeSpec {
        head_dim: m.head_dim as u32,
        n_rot: m.head_dim as u32,
        base: 10000.0,
        style: if m.qkv_bias {
            RopeStyle::Neox
        } else {
            RopeStyle::Normal
        },
        scaling: RopeScaling::None,
    };
    let q = add(
        g,
        Op::Rope(spec),
        act(dq),
        "q",
        &[(Role::X, q), (Role::Pos, pos)],
    );
    let k = add(
        g,
        Op::Rope(spec),
        act(dkv),
        "k",
        &[(Role::X, k), (Role::Pos, pos)],
    );
    let cache_ty = TensorType::new(GgmlType::F16, vec![Dim::KvLen, n(2 * dkv)]);
    let cache = add(
        g,
        Op::KvCache { layer: l },
        cache_ty.clone(),
        "kv_cache",
        &[],
    );
    let kv = add(
        g,
        Op::KvStore { layer: l },
        cache_ty,
        "kv",
        &[
            (Role::K, k),
            (Role::V, v),
            (Role::Pos, pos),
            (Role::Seq, seq),
            (Role::Pages, pages),
            (Role::Kv, cache),
        ],
    );
    let attn = AttentionSpec {
        n_heads: m.heads as u32,
        n_kv_heads: m.kv_heads as u32,
        head_dim: m.head_dim as u32,
        scale: 1.0 / (m.head_dim as f32).sqrt(),
        window: None,
        softcap: None,
    };
    let a = add(
        g,
        Op::Attention(attn),
        act(dq),
        "a",
        &[
            (Role::Q, q),
            (Role::Kv, kv),
            (Role::Pos, pos),
            (Role::Seq, seq),
            (Role::Pages, pages),
        ],
    );
    let wo = weight(g, &nm("attn_output.weight"), GgmlType::Q4_K, &[m.d, dq]);
    let o = add(
        g,
        Op::MatMul(Default::default()),
        act(m.d),
        "o",
        &[(Role::X, a), (Role::W, wo)],
    );
    let x = add(g, Op::Add, act(m.d), "x", &[(Role::A, x), (Role::B, o)]);
    let ffn_norm = weight(g, &nm("ffn_norm.weight"), GgmlType::F32, &[m.d]);
    let h = add(
        g,
        Op::RmsNorm { eps: 1e-6 },
        act(m.d),
        "h",
        &[(Role::X, x), (Role::Norm, ffn_norm)],
    );
    let wg = weight(g, &nm("ffn_gate.weight"), GgmlType::Q4_K, &[m.ff, m.d]);
    let wu = weight(g, &nm("ffn_up.weight"), GgmlType::Q4_K, &[m.ff, m.d]);
    let gate = add(
        g,
        Op::MatMul(Default::default()),
        act(m.ff),
        "g",
        &[(Role::X, h), (Role::W, wg)],
    );
    let up = add(
        g,
        Op::MatMul(Default::default()),
        act(m.ff),
        "u",
        &[(Role::X, h), (Role::W, wu)],
    );
    let s = add(g, Op::Silu, act(m.ff), "s", &[(Role::X, gate)]);
    let mm = add(g, Op::Mul, act(m.ff), "m", &[(Role::A, s), (Role::B, up)]);
    let wd = weight(g, &nm("ffn_down.weight"), GgmlType::Q6_K, &[m.d, m.ff]);
    let dn = add(
        g,
        Op::MatMul(Default::default()),
        act(m.d),
        "dn",
        &[(Role::X, mm), (Role::W, wd)],
    );
    add(g, Op::Add, act(m.d), "x", &[(Role::A, x), (Role::B, dn)])
}
