//! Text -> token ids.

use super::error::TokenizerError;
use super::special_split::{partition, Fragment};
use super::spm::{self, SPACE_MARK};
use super::{Model, Tokenizer};

impl Tokenizer {
    /// Tokenizes `text`. `add_special` adds BOS/EOS where the model's
    /// `add_bos_token`/`add_eos_token` ask for them; `parse_special` lets the
    /// texts of control tokens (e.g. `<|im_start|>`) become those tokens
    /// (user-defined tokens are always recognised, as in llama.cpp).
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let frags = partition(text, &self.special_cache, &self.vocab, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.special.bos);
        }
        match &self.model {
            Model::Bpe {
                merges,
                pre,
                ignore_merges,
            } => {
                for f in frags {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => {
                            for word in pre.split(t)? {
                                merges.encode_word(&self.vocab, word, *ignore_merges, &mut out);
                            }
                        }
                    }
                }
            }
            Model::Spm => self.encode_spm(&frags, &mut out),
        }
        if add_special && self.add_eos {
            out.extend(self.special.eos);
        }
        Ok(out)
    }

    /// SPM: a space goes before the first text and before text that follows
    /// a special token (llama.cpp's dummy prefix rule); spaces become `▁`.
    fn encode_spm(&self, frags: &[Fragment<'_>], out: &mut Vec<u32>) {
        let mut after_special = true;
        for f in frags {
            match *f {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    let mut s = String::with_capacity(t.len() + 3);
                    if self.add_space_prefix && after_special {
                        s.push(SPACE_MARK);
                    }
                    s.extend(t.chars().map(|c| if c == ' ' { SPACE_MARK } else { c }));
                    spm::encode(&self.vocab, &s, self.special.unk, out);
                    after_special = false;
                }
            }
        }
    }
}
