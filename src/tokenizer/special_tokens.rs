//! Special token ids (BOS, EOS, EOT, ...), the end-of-generation set, and the
//! by-name corrections llama.cpp applies to token attributes.
//!
//! GGUF conversions do not always record EOT/EOM/FIM ids or mark them as
//! control tokens, so, as llama.cpp's `llama_vocab::impl::load` does, they
//! are also recognised by their text (`<|im_end|>`, `<|eot_id|>`, ...) and
//! such tokens are forced to be control tokens.

use std::collections::BTreeSet;

use super::error::TokenizerError;
use super::token_attr::TokenAttr;
use super::vocab::Vocab;
use crate::gguf::Metadata;

/// Which tokenizer algorithm; it decides the llama.cpp default special ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// Byte-level BPE, `tokenizer.ggml.model = gpt2`.
    Bpe,
    /// SentencePiece, `tokenizer.ggml.model = llama`.
    Spm,
}

/// Special token ids; `None` where the vocabulary has none.
#[derive(Debug, Clone, Default)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
    /// Tokens that end generation.
    pub eog: BTreeSet<u32>,
}

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts of tokens that end generation whatever the metadata says.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
/// gpt-oss format tokens that llama.cpp always renders (user-defined).
const ALWAYS_RENDERED: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

impl SpecialTokens {
    /// Reads the ids from metadata and completes them by token text; fixes
    /// the attributes of the tokens so recognised.
    pub fn load(md: &Metadata, vocab: &mut Vocab, kind: VocabKind) -> Result<Self, TokenizerError> {
        let mut s = Self::defaults(kind, vocab);
        type Slot = fn(&mut SpecialTokens) -> &mut Option<u32>;
        let keys: [(&str, Slot); 16] = [
            ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
            ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
            ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
            ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
            ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
            ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
            ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
            ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
            ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
            ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
            ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
            // Deprecated names of the FIM ids.
            ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
        ];
        for (key, slot) in keys {
            read_id(md, vocab, key, slot(&mut s))?;
        }
        s.detect_by_text(vocab);
        mark_unused(vocab);
        s.collect_eog(vocab);
        Ok(s)
    }

    /// llama.cpp's defaults: SPM has `<unk>`=0, `<s>`=1, `</s>`=2; byte-level
    /// BPE uses 11 for BOS and EOS (GPT-2's legacy); ids outside the
    /// vocabulary are dropped.
    fn defaults(kind: VocabKind, vocab: &Vocab) -> Self {
        let (bos, eos, unk) = match kind {
            VocabKind::Spm => (Some(1), Some(2), Some(0)),
            VocabKind::Bpe => (Some(11), Some(11), None),
        };
        let ok = |id: Option<u32>| id.filter(|&i| vocab.contains(i));
        Self {
            bos: ok(bos),
            eos: ok(eos),
            unk: ok(unk),
            ..Self::default()
        }
    }

    fn detect_by_text(&mut self, vocab: &mut Vocab) {
        for (slot, texts) in [
            (&mut self.eot, EOT_TEXTS),
            (&mut self.eom, EOM_TEXTS),
            (&mut self.fim_pre, FIM_PRE_TEXTS),
            (&mut self.fim_suf, FIM_SUF_TEXTS),
            (&mut self.fim_mid, FIM_MID_TEXTS),
            (&mut self.fim_pad, FIM_PAD_TEXTS),
            (&mut self.fim_rep, FIM_REP_TEXTS),
            (&mut self.fim_sep, FIM_SEP_TEXTS),
        ] {
            if slot.is_some() {
                continue;
            }
            // llama.cpp takes the first hit in hash order; the lowest id is
            // the deterministic choice (all hits end up as EOG anyway).
            let hit = vocab
                .iter()
                .find(|(_, t)| texts.contains(t))
                .map(|(id, _)| id);
            if let Some(id) = hit {
                *slot = Some(id);
                force_control(vocab, id);
            }
        }
    }

    fn collect_eog(&mut self, vocab: &mut Vocab) {
        self.eog.extend(
            [self.fim_pad, self.fim_rep, self.fim_sep]
                .into_iter()
                .flatten(),
        );
        let by_text: Vec<u32> = vocab
            .iter()
            .filter(|(_, t)| EOG_TEXTS.contains(t))
            .map(|(id, _)| id)
            .collect();
        for id in by_text {
            self.eog.insert(id);
            force_control(vocab, id);
        }
        let always: Vec<u32> = ALWAYS_RENDERED
            .iter()
            .filter_map(|t| vocab.id_of(t))
            .collect();
        for id in always {
            vocab.set_attr(id, TokenAttr::USER_DEFINED);
        }
        self.eog
            .extend([self.eos, self.eot, self.eom].into_iter().flatten());
    }
}

fn read_id(
    md: &Metadata,
    vocab: &Vocab,
    key: &str,
    slot: &mut Option<u32>,
) -> Result<(), TokenizerError> {
    let Some(v) = md.opt(key, Metadata::get_i64)? else {
        return Ok(());
    };
    match u32::try_from(v).ok().filter(|&id| vocab.contains(id)) {
        Some(id) => *slot = Some(id),
        None => tracing::warn!(
            key,
            value = v,
            "special token id outside the vocabulary; keeping the default"
        ),
    }
    Ok(())
}

fn force_control(vocab: &mut Vocab, id: u32) {
    let attr = vocab.attr(id);
    if !attr.has(TokenAttr::CONTROL) {
        tracing::debug!(
            id,
            text = vocab.text(id),
            "control-looking token made a control token"
        );
        vocab.set_attr(id, attr.with(TokenAttr::CONTROL));
    }
}

/// Control tokens whose text says "unused" are unused.
fn mark_unused(vocab: &mut Vocab) {
    let ids: Vec<u32> = vocab
        .iter()
        .filter(|(_, t)| t.contains("unused"))
        .map(|(id, _)| id)
        .collect();
    for id in ids {
        let a = vocab.attr(id);
        if a.has(TokenAttr::CONTROL) {
            vocab.set_attr(id, a.with(TokenAttr::UNUSED));
        }
    }
}
