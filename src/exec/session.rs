//! A session holds one sequence's place in the KV cache and feeds a backend
//! step after step: prefill in chunks of the plan's step limit, then decode.

use super::kv_pages::{KvPages, SeqPages};
use super::step::{StepInputs, TopRows};
use super::ExecError;

/// The sizes a backend's compiled plan allows per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// Tokens per step (T).
    pub max_tokens: usize,
    /// Logit rows per step (R).
    pub max_rows: usize,
    /// Sequences per step (S).
    pub max_seqs: usize,
    /// Page-table columns (P): the context a sequence can reach is
    /// `pages_per_seq * page_size`.
    pub pages_per_seq: usize,
    /// Pages in the KV cache.
    pub n_pages: usize,
    /// Tokens per page.
    pub page_size: usize,
}

impl StepLimits {
    /// The longest sequence the plan can hold.
    pub fn context(&self) -> usize {
        self.pages_per_seq * self.page_size
    }
}

/// Something that runs one step of a compiled model.
pub trait StepBackend {
    /// Runs `step` and returns its logits, `[output_rows.len(), vocab]`.
    fn run_step(&mut self, step: &StepInputs) -> Result<&[f32], ExecError>;
    fn limits(&self) -> StepLimits;
    fn vocab(&self) -> usize;

    /// Candidates per row [`run_step_top`](Self::run_step_top) returns;
    /// 0 where the backend selects none itself (the host then reads whole
    /// rows of logits).
    fn top_candidates(&self) -> usize {
        0
    }

    /// Runs `step` and returns each output row's top candidates and
    /// log-sum-exp, leaving the logits on the backend for
    /// [`last_logits`](Self::last_logits).
    fn run_step_top(&mut self, step: &StepInputs) -> Result<TopRows<'_>, ExecError> {
        let _ = step;
        Err(ExecError::Unsupported {
            node: "logits".into(),
            kind: "step",
            reason: "this backend returns whole logit rows only".into(),
        })
    }

    /// The logit rows of the step just run (after `run_step_top`).
    fn last_logits(&mut self) -> Result<&[f32], ExecError> {
        Err(ExecError::Unsupported {
            node: "logits".into(),
            kind: "step",
            reason: "this backend returns whole logit rows only".into(),
        })
    }
}

/// One sequence on a backend.
pub struct Session<B: StepBackend> {
    backend: B,
    pages: KvPages,
    seq: SeqPages,
}

impl<B: StepBackend> Session<B> {
    pub fn new(backend: B) -> Self {
        let l = backend.limits();
        Session {
            pages: KvPages::new(l.n_pages, l.page_size),
            backend,
            seq: SeqPages::default(),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The backend, forgetting the sequence.
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.seq.len
    }

    pub fn is_empty(&self) -> bool {
        self.seq.len == 0
    }

    /// The longest sequence this session can hold.
    pub fn context(&self) -> usize {
        self.backend
            .limits()
            .context()
            .min(self.pages.n_pages() * self.pages.page_size())
    }

    /// Forgets the sequence (its pages go back to the pool).
    pub fn reset(&mut self) {
        self.pages.release(&mut self.seq);
    }

    /// Appends `tokens` and returns the logits of the last one.
    pub fn eval_last(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ExecError> {
        let mut last = Vec::new();
        self.eval_last_into(tokens, &mut last)?;
        Ok(last)
    }

    /// [`eval_last`](Self::eval_last) into `out` (replaced): a decode loop
    /// reuses one buffer instead of allocating a vocabulary's worth of
    /// logits per token.
    pub fn eval_last_into(&mut self, tokens: &[u32], out: &mut Vec<f32>) -> Result<(), ExecError> {
        self.eval(tokens, false, |_, logits| {
            out.clear();
            out.extend_from_slice(logits);
        })
    }

    /// Appends `tokens`, calling `each(position, logits)` for every token
    /// (`all_logits`) or only for the last one.
    pub fn eval(
        &mut self,
        tokens: &[u32],
        all_logits: bool,
        mut each: impl FnMut(usize, &[f32]),
    ) -> Result<(), ExecError> {
        if tokens.is_empty() {
            return Err(ExecError::EmptyPrompt);
        }
        let vocab = self.backend.vocab();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(ExecError::BadToken {
                id: bad as i64,
                vocab,
            });
        }
        let end = self.seq.len + tokens.len();
        if end > self.context() {
            return Err(ExecError::ContextOverflow {
                tokens: end,
                context: self.context(),
            });
        }
        let l = self.backend.limits();
        let chunk = if all_logits {
            l.max_tokens.min(l.max_rows)
        } else {
            l.max_tokens
        };
        self.pages.reserve(&mut self.seq, end)?;
        for part in tokens.chunks(chunk.max(1)) {
            let start = self.seq.len;
            let is_last = start + part.len() == end;
            let step =
                StepInputs::single(part, start, &self.seq.pages, l.pages_per_seq, all_logits);
            let logits = self.backend.run_step(&step)?;
            self.seq.len += part.len();
            if all_logits {
                for (i, row) in logits.chunks_exact(vocab).enumerate() {
                    each(start + i, row);
                }
            } else if is_last {
                each(end - 1, &logits[..vocab]);
            }
        }
        Ok(())
    }
}
