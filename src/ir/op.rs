//! The operations of the IR, and the roles their operands play.
//!
//! Before fusion the graph holds the plain ops a decoder is made of (matmul,
//! add, rms_norm, rope, ...). Fusion folds them into `MatMul`'s prologue and
//! epilogue, so one `MatMul` node becomes one kernel launch.

use std::fmt;

/// A per-step input of the graph (decision 9 of ARCHITECTURE.md: a step is T
/// tokens of possibly many sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// i32[T]: token ids.
    Tokens,
    /// i32[T]: each token's position in its sequence.
    Positions,
    /// i32[T]: each token's sequence slot (a row of the page table).
    SeqIds,
    /// i32[S,P]: KV-cache page of each sequence's p-th page.
    PageTable,
    /// i32[R]: the token rows whose logits are returned.
    OutputRows,
}

impl InputKind {
    pub const ALL: [InputKind; 5] = [
        Self::Tokens,
        Self::Positions,
        Self::SeqIds,
        Self::PageTable,
        Self::OutputRows,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Positions => "positions",
            Self::SeqIds => "seq_ids",
            Self::PageTable => "page_table",
            Self::OutputRows => "output_rows",
        }
    }
}

/// Which pairs of a head RoPE rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]): LLaMA and Mistral as GGUF stores them.
    Normal,
    /// Halves (x[i], x[i + d/2]): Qwen2 (GPT-NeoX style).
    Neox,
}

/// How positions are stretched for contexts beyond training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f32,
    },
    /// YaRN (`rope.scaling.type = yarn`).
    Yarn {
        factor: f32,
        orig_ctx: u32,
        beta_fast: f32,
        beta_slow: f32,
    },
    /// LongRoPE (Phi-3 128k): per-pair divisors come in as the `Freqs`
    /// operand (the long or the short set, chosen when the graph is built
    /// for a context), and cos and sin are scaled by `attn_factor`
    /// (`rope.scaling.attn_factor`, as llama.cpp's attn_factor), so every
    /// q·k grows by its square.
    LongRope {
        attn_factor: f32,
    },
}

/// Rotary position embedding of one tensor of heads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeSpec {
    pub head_dim: u32,
    /// Leading dims of each head that rotate (usually `head_dim`).
    pub n_rot: u32,
    pub base: f32,
    pub style: RopeStyle,
    pub scaling: RopeScaling,
}

/// Causal attention over the paged KV cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionSpec {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    /// Multiplier of q·k (usually 1/sqrt(head_dim)).
    pub scale: f32,
    /// Attend to at most the last `window` positions (Mistral).
    pub window: Option<u32>,
    /// Gemma 2: each scaled q·k becomes `cap·tanh(q·k / cap)` before the
    /// softmax (`attn_logit_softcapping`).
    pub softcap: Option<f32>,
}

/// Work done on a matmul's input rows before the product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prologue {
    /// RMSNorm of each input row with the `Norm` operand as weight.
    RmsNorm { eps: f32 },
}

/// Work done on a matmul's output rows after the product, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Epilogue {
    /// Adds `Bias[i]` to the columns of `W[i]` (weights without a bias get none).
    Bias,
    /// Rotates the first `q_heads` heads (queries) and the next `k_heads`
    /// heads (keys) of each row; positions come from the `Pos` operand.
    Rope {
        spec: RopeSpec,
        q_heads: u32,
        k_heads: u32,
    },
    /// Writes columns `[k_col, k_col+kv_dim)` as K and `[v_col, v_col+kv_dim)`
    /// as V into layer `layer` of the KV cache (operands Pos, Seq, Pages, Kv).
    KvStore {
        layer: u32,
        k_col: u64,
        v_col: u64,
        kv_dim: u64,
    },
    /// `silu(first half) * second half`: the output has half the columns.
    SwiGlu,
    /// `gelu(first half) * second half` (tanh GELU, as [`Op::Gelu`]):
    /// Gemma's GeGLU; the output has half the columns.
    GeGlu,
    /// Adds the `Residual` operand.
    Residual,
}

impl Epilogue {
    /// A gated activation of the two halves ([`Epilogue::SwiGlu`],
    /// [`Epilogue::GeGlu`]): the output has half the product's columns.
    pub fn is_gated(&self) -> bool {
        matches!(self, Epilogue::SwiGlu | Epilogue::GeGlu)
    }
}

/// A matrix product `X · concat(W[0], W[1], ...)ᵀ` with its fused work.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatMulOp {
    pub prologue: Option<Prologue>,
    pub epilogue: Vec<Epilogue>,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A per-step input.
    Input(InputKind),
    /// A tensor of the model file, by GGUF name.
    Weight { name: String },
    /// Layer `layer`'s paged KV cache: state that outlives the step.
    KvCache { layer: u32 },
    /// Rows `Tokens` of `Table`, as f32.
    Embed,
    /// Row-wise RMSNorm of `X` times `Norm`.
    RmsNorm { eps: f32 },
    /// See [`MatMulOp`]. Operands: `X`, `W[i]`, and those its parts need.
    MatMul(MatMulOp),
    /// `A + B`; `B` may be one row broadcast over `A`'s rows.
    Add,
    /// `A * B` elementwise.
    Mul,
    /// `x * sigmoid(x)` of `X`.
    Silu,
    /// GELU of `X`, tanh approximation (`0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`):
    /// Gemma's GeGLU feed-forward.
    Gelu,
    /// `X` times a constant (Gemma scales its embeddings by √d_model).
    Scale { factor: f32 },
    /// `cap·tanh(X / cap)`: Gemma 2's soft-capping of the final logits
    /// into (−cap, cap).
    SoftCap { cap: f32 },
    /// RMSNorm of each group of `len(Norm)` columns of `X` (one head) times
    /// `Norm`: the per-head Q/K norm of Gemma 3 and Qwen3.
    HeadRmsNorm { eps: f32 },
    /// RoPE of the heads of `X` at `Pos` (with `Freqs` factors if present).
    Rope(RopeSpec),
    /// A view of columns `[start, start+len)` of `X` (no copy, no launch).
    Slice { start: u64, len: u64 },
    /// Writes `K` and `V` rows into `Kv` at `Pos`/`Seq` through `Pages`;
    /// yields the updated cache.
    KvStore { layer: u32 },
    /// Causal attention of `Q` over `Kv` (operands Pos, Seq, Pages; `After`
    /// orders it behind the op that stored this step's keys).
    Attention(AttentionSpec),
    /// Rows `Rows` of `X`.
    GatherRows,
    /// Mixture-of-experts routing: for each row of router logits `X`
    /// (f32[T, n_expert]), the `top_k` largest (ties: the lower expert id)
    /// and their softmax over just those k (= the softmax over all experts
    /// renormalized over the chosen: Mixtral, Qwen3-MoE). Result
    /// f32[T, 2·top_k]: the expert ids (exact small integers), then the
    /// weights, each in descending logit order. One value, not two,
    /// because a node has one result.
    Router { top_k: u32 },
    /// A routed SwiGLU feed-forward: each row of `X` goes through the
    /// experts its `Route` row names, `down_e(silu(gate_e·x) * up_e·x)`,
    /// and the results are summed with the route's weights. `W` =
    /// [gate_exps, up_exps, down_exps], 3-D `[n_expert, rows, cols]`.
    /// Tokens are grouped by expert, so each chosen expert's matrices are
    /// read once per step. Fused parts as a matmul's: the RMSNorm
    /// prologue and the residual epilogue (the only step it takes).
    Experts(MatMulOp),
}

impl Op {
    /// The op's name in the textual form.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Weight { .. } => "weight",
            Op::KvCache { .. } => "kv_cache",
            Op::Embed => "embed",
            Op::RmsNorm { .. } => "rms_norm",
            Op::MatMul(_) => "matmul",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Silu => "silu",
            Op::Gelu => "gelu",
            Op::Scale { .. } => "scale",
            Op::SoftCap { .. } => "softcap",
            Op::HeadRmsNorm { .. } => "head_rms_norm",
            Op::Rope(_) => "rope",
            Op::Slice { .. } => "slice",
            Op::KvStore { .. } => "kv_store",
            Op::Attention(_) => "attention",
            Op::GatherRows => "gather_rows",
            Op::Router { .. } => "router",
            Op::Experts(_) => "experts",
        }
    }

    /// Values that are not computed by a step: weights and the KV cache.
    pub fn is_leaf_state(&self) -> bool {
        matches!(self, Op::Weight { .. } | Op::KvCache { .. })
    }

    /// Ops whose result lives outside the activation arena.
    pub fn is_outside_arena(&self) -> bool {
        matches!(
            self,
            Op::Weight { .. } | Op::KvCache { .. } | Op::KvStore { .. }
        )
    }

    /// Ops whose result is a view of an operand's memory.
    pub fn is_view(&self) -> bool {
        matches!(self, Op::Slice { .. })
    }

    /// Whether executing the op launches a kernel (the others are inputs,
    /// state or views).
    pub fn is_launch(&self) -> bool {
        !matches!(
            self,
            Op::Input(_) | Op::Weight { .. } | Op::KvCache { .. } | Op::Slice { .. }
        )
    }
}

/// The role an operand plays for the op that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    X,
    W,
    Norm,
    Bias,
    Table,
    Tokens,
    Pos,
    Seq,
    Pages,
    Kv,
    Q,
    K,
    V,
    A,
    B,
    Freqs,
    Rows,
    Residual,
    /// An experts op's routing (a router's result).
    Route,
    /// A scheduling-only dependency: no data is read.
    After,
}

impl Role {
    pub const ALL: [Role; 20] = [
        Role::X,
        Role::W,
        Role::Norm,
        Role::Bias,
        Role::Table,
        Role::Tokens,
        Role::Pos,
        Role::Seq,
        Role::Pages,
        Role::Kv,
        Role::Q,
        Role::K,
        Role::V,
        Role::A,
        Role::B,
        Role::Freqs,
        Role::Rows,
        Role::Residual,
        Role::Route,
        Role::After,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::X => "x",
            Role::W => "w",
            Role::Norm => "norm",
            Role::Bias => "bias",
            Role::Table => "table",
            Role::Tokens => "tokens",
            Role::Pos => "pos",
            Role::Seq => "seq",
            Role::Pages => "pages",
            Role::Kv => "kv",
            Role::Q => "q",
            Role::K => "k",
            Role::V => "v",
            Role::A => "a",
            Role::B => "b",
            Role::Freqs => "freqs",
            Role::Rows => "rows",
            Role::Residual => "residual",
            Role::Route => "route",
            Role::After => "after",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.name() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An edge of the graph: operand `index` of role `role` (lists such as the
/// concatenated weights `W[0..n]` use several indices of one role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operand {
    pub role: Role,
    pub index: u8,
}
