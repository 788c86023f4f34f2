//! Dimensions that may be symbolic: a graph is compiled once for every step
//! size and bound to concrete sizes (up to the plan's limits) at run time.

use std::fmt;

/// One dimension of a tensor shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A size fixed by the model.
    Fixed(u64),
    /// `T`: the tokens of this step (prefill chunks and decode tokens of
    /// every sequence in the step together).
    Tokens,
    /// `R`: the rows whose logits this step returns (e.g. the last token of
    /// each sequence; every token for perplexity).
    Rows,
    /// `S`: the sequences addressed by this step's page table.
    Seqs,
    /// `P`: KV-cache pages per sequence in the page table.
    Pages,
    /// `K`: the KV length (tokens held per sequence in the cache).
    KvLen,
}

impl Dim {
    /// The concrete size under `env`.
    pub fn eval(self, env: &DimEnv) -> u64 {
        match self {
            Dim::Fixed(n) => n,
            Dim::Tokens => env.tokens,
            Dim::Rows => env.rows,
            Dim::Seqs => env.seqs,
            Dim::Pages => env.pages,
            Dim::KvLen => env.kv_len,
        }
    }

    pub fn fixed(self) -> Option<u64> {
        match self {
            Dim::Fixed(n) => Some(n),
            _ => None,
        }
    }

    /// The symbol's letter, or `None` for a fixed size.
    pub fn symbol(self) -> Option<char> {
        Some(match self {
            Dim::Fixed(_) => return None,
            Dim::Tokens => 'T',
            Dim::Rows => 'R',
            Dim::Seqs => 'S',
            Dim::Pages => 'P',
            Dim::KvLen => 'K',
        })
    }

    pub fn from_symbol(c: char) -> Option<Self> {
        Some(match c {
            'T' => Dim::Tokens,
            'R' => Dim::Rows,
            'S' => Dim::Seqs,
            'P' => Dim::Pages,
            'K' => Dim::KvLen,
            _ => return None,
        })
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.symbol() {
            Some(c) => write!(f, "{c}"),
            None => write!(f, "{}", self.fixed().unwrap_or_default()),
        }
    }
}

/// Concrete sizes for the symbolic dims: the limits a plan is made for, or
/// the actual sizes of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DimEnv {
    pub tokens: u64,
    pub rows: u64,
    pub seqs: u64,
    pub pages: u64,
    pub kv_len: u64,
}

impl Default for DimEnv {
    /// The default limits: 512 tokens a step, logits for one row per
    /// sequence, 4 sequences, 4096 tokens of context in 16-token pages.
    fn default() -> Self {
        DimEnv {
            tokens: 512,
            rows: 4,
            seqs: 4,
            pages: 4096 / 16,
            kv_len: 4096,
        }
    }
}
