//! Building a [`Tokenizer`] from GGUF metadata, following llama.cpp's
//! `llama_vocab::impl::load` for defaults and overrides.

use super::bpe::BpeMerges;
use super::decode::token_piece;
use super::error::TokenizerError;
use super::pre_tokenizer::{PreTokenizer, PreTokenizerSpec};
use super::special_split::special_cache;
use super::special_tokens::{SpecialTokens, VocabKind};
use super::token_attr::TokenAttr;
use super::vocab::Vocab;
use super::{Model, Tokenizer};
use crate::gguf::{GgufFile, Metadata};

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

impl Tokenizer {
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        Self::from_metadata(file.metadata())
    }

    pub fn from_metadata(md: &Metadata) -> Result<Self, TokenizerError> {
        let kind = match md.get_str(KEY_MODEL)? {
            "gpt2" => VocabKind::Bpe,
            "llama" => VocabKind::Spm,
            other => return Err(TokenizerError::UnsupportedModel(other.into())),
        };
        let mut vocab = Vocab::from_metadata(md)?;
        let (model, add_bos_default) = match kind {
            VocabKind::Bpe => bpe_model(md, &vocab)?,
            VocabKind::Spm => (Model::Spm, true),
        };
        let special = SpecialTokens::load(md, &mut vocab, kind)?;
        let add_bos = md
            .opt(KEY_ADD_BOS, Metadata::get_bool)?
            .unwrap_or(add_bos_default);
        let add_eos = md.opt(KEY_ADD_EOS, Metadata::get_bool)?.unwrap_or(false);
        let add_space_prefix = md
            .opt(KEY_ADD_SPACE_PREFIX, Metadata::get_bool)?
            .unwrap_or(kind == VocabKind::Spm);
        check_special(
            add_bos,
            special.bos,
            KEY_ADD_BOS,
            "tokenizer.ggml.bos_token_id",
        )?;
        check_special(
            add_eos,
            special.eos,
            KEY_ADD_EOS,
            "tokenizer.ggml.eos_token_id",
        )?;

        let special_cache = special_cache(&vocab);
        let model_name = opt_str(md, "general.name")?.unwrap_or_default();
        apply_strip_attrs(&mut vocab, &special_cache, model_name);
        let pieces = (0..vocab.len() as u32)
            .map(|id| token_piece(&vocab, kind, id).into_boxed_slice())
            .collect();
        Ok(Self {
            vocab,
            model,
            special,
            special_cache,
            pieces,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }
}

/// The BPE model and whether BOS is added by default. A missing pre name is
/// llama.cpp's `default` (with a warning); an unknown one is an error.
fn bpe_model(md: &Metadata, vocab: &Vocab) -> Result<(Model, bool), TokenizerError> {
    let name = match opt_str(md, KEY_PRE)? {
        Some(n) => n,
        None => {
            tracing::warn!(
                "{KEY_PRE} is missing; using the 'default' pre-tokenizer (quality may suffer)"
            );
            "default"
        }
    };
    let spec = PreTokenizerSpec::for_name(name).ok_or_else(|| {
        TokenizerError::UnknownPreTokenizer(name.into(), PreTokenizerSpec::known_names())
    })?;
    let model = Model::Bpe {
        merges: BpeMerges::from_metadata(md, vocab)?,
        pre: PreTokenizer::new(name, &spec)?,
        ignore_merges: spec.ignore_merges,
    };
    Ok((model, spec.add_bos_default))
}

fn check_special(
    flag: bool,
    id: Option<u32>,
    flag_key: &'static str,
    id_key: &'static str,
) -> Result<(), TokenizerError> {
    if flag && id.is_none() {
        return Err(TokenizerError::MissingSpecialToken {
            flag: flag_key,
            id_key,
        });
    }
    Ok(())
}

/// Phi-3's special tokens eat the whitespace after them (except `<unk>`,
/// `<s>`, `<|endoftext|>`): llama.cpp sets this by model name because the
/// GGUF does not record it.
fn apply_strip_attrs(vocab: &mut Vocab, cache: &[u32], model_name: &str) {
    let name = model_name.to_ascii_lowercase();
    if !(name.contains("phi-3") || name.contains("phi3")) {
        return;
    }
    let rstrip = cache.iter().copied().chain(vocab.id_of("</s>"));
    for id in rstrip.collect::<Vec<_>>() {
        vocab.set_attr(id, vocab.attr(id).with(TokenAttr::RSTRIP));
    }
    for text in ["<unk>", "<s>", "<|endoftext|>"] {
        if let Some(id) = vocab.id_of(text) {
            vocab.set_attr(id, vocab.attr(id).without(TokenAttr::RSTRIP));
        }
    }
}

/// A string value, `None` when the key is absent.
fn opt_str<'m>(md: &'m Metadata, key: &str) -> Result<Option<&'m str>, TokenizerError> {
    match md.get(key) {
        Some(_) => Ok(Some(md.get_str(key)?)),
        None => Ok(None),
    }
}
