//! Compiling grammars for one tokenizer. The token trie and llguidance's
//! factory (its precomputed token slices) are built once per model and
//! shared by every request; a grammar compiles into a fresh
//! [`Constraint`] per sequence.

use std::sync::Arc;

use llguidance::{Matcher, ParserFactory};

use super::constraint::Constraint;
use super::source::GrammarSource;
use super::vocabulary::Vocabulary;
use super::GrammarError;
use crate::tokenizer::Tokenizer;

pub struct GrammarCompiler {
    factory: ParserFactory,
}

impl std::fmt::Debug for GrammarCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrammarCompiler").finish_non_exhaustive()
    }
}

impl GrammarCompiler {
    /// For `tokenizer` and a model with `n_logits` logits per row.
    pub fn new(tokenizer: Arc<Tokenizer>, n_logits: usize) -> Result<Self, GrammarError> {
        let env = Vocabulary::new(tokenizer, n_logits).into_env();
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| GrammarError::Setup(e.to_string()))?;
        // llguidance logs to stderr by itself; its errors come back as
        // values and are reported through ours.
        factory.quiet();
        Ok(GrammarCompiler { factory })
    }

    /// Compiles `source` into a constraint at the start of the output.
    pub fn compile(&self, source: &GrammarSource) -> Result<Constraint, GrammarError> {
        let grammar = source.to_llguidance()?;
        let parser = self.factory.create_parser(grammar).map_err(|e| {
            let msg = e.to_string();
            match source {
                GrammarSource::JsonSchema(_) | GrammarSource::JsonObject => {
                    GrammarError::Schema(msg)
                }
                GrammarSource::Gbnf(_) => GrammarError::Translated(msg),
                GrammarSource::Lark(_) => GrammarError::Lark(msg),
            }
        })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(GrammarError::Setup(e));
        }
        Ok(Constraint::new(matcher))
    }
}
