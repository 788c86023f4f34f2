//! One sequence's grammar state: which tokens may come next (the mask),
//! advanced by every token the sequence takes.
//!
//! The mask depends only on the tokens already taken, so it is computed
//! before the logits exist — on a worker thread while the step runs
//! ([`Constraint::prepare`]) — and applied to the row before sampling
//! ([`Constraint::apply`]): forbidden tokens get −∞, so every sampler
//! setting (penalties, top-k/p, min-p, temperature, greedy) draws among
//! the allowed tokens only.

use llguidance::toktrie::SimpleVob;
use llguidance::Matcher;

/// A compiled grammar, positioned after the tokens taken so far.
#[derive(Clone)]
pub struct Constraint {
    /// Boxed: a matcher is large, and requests move through channels.
    matcher: Box<Matcher>,
    /// The mask for the next token, once computed.
    mask: Option<SimpleVob>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("finished", &self.matcher.is_stopped())
            .field("mask_ready", &self.mask.is_some())
            .finish()
    }
}

/// The grammar cannot go on (an llguidance failure, not a user error:
/// the mask only ever offers tokens it accepts).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the output constraint failed: {0}")]
pub struct ConstraintFailed(pub String);

impl Constraint {
    pub(super) fn new(matcher: Matcher) -> Self {
        Constraint {
            matcher: Box::new(matcher),
            mask: None,
        }
    }

    /// Computes the next token's mask if not yet done (the worker thread's
    /// part; a failure is kept and reported by [`Constraint::apply`]).
    pub fn prepare(&mut self) {
        if self.mask.is_none() {
            self.mask = self.matcher.compute_mask_or_eos().ok();
        }
    }

    /// Sets every logit the grammar forbids to −∞ (the mask is computed
    /// here if [`Constraint::prepare`] did not run).
    pub fn apply(&mut self, logits: &mut [f32]) -> Result<(), ConstraintFailed> {
        self.prepare();
        let Some(mask) = self.mask.take() else {
            return Err(self.failure());
        };
        // 32 ids per mask word: whole words of forbidden ids (most of
        // them, inside a JSON string or number) are filled at once.
        let words = mask.as_slice();
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let bits = words.get(w).copied().unwrap_or(0);
            if bits == u32::MAX {
                continue;
            }
            if bits == 0 {
                chunk.fill(f32::NEG_INFINITY);
                continue;
            }
            for (b, l) in chunk.iter_mut().enumerate() {
                if bits & (1 << b) == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }

    /// Advances past `token` (one the mask allowed).
    pub fn commit(&mut self, token: u32) -> Result<(), ConstraintFailed> {
        self.mask = None;
        self.matcher
            .consume_token(token)
            .map_err(|e| ConstraintFailed(e.to_string()))
    }

    /// Whether the grammar has ended: nothing but the end may follow.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Whether the output so far is a complete sentence of the grammar.
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    fn failure(&self) -> ConstraintFailed {
        ConstraintFailed(
            self.matcher
                .get_error()
                .unwrap_or_else(|| "no mask could be computed".into()),
        )
    }
}
