//! Pre-tokenizers of byte-level BPE vocabularies: the regex sequence named by
//! `tokenizer.ggml.pre` that cuts text into words before BPE merges run.
//!
//! The patterns are those of the models' Hugging Face `tokenizer.json`
//! (llama.cpp lists the same ones in `llm_tokenizer_bpe`, some rewritten
//! without `(?i:)`; fancy-regex takes the originals). A sequence of patterns
//! is applied like HF's `Sequence` of `Split(behavior = Isolated)`: each
//! pattern cuts every piece left by the previous one, and both the matches
//! and the text between matches become pieces.

use fancy_regex::Regex;

use super::error::TokenizerError;

/// GPT-2 (also MPT, OLMo, Jais, Phi-2, ...).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3: case-insensitive contractions, numbers in groups of up to three.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2: as Llama 3 but every digit is its own piece.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const SEED_CODER: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o / Llama 4: case-aware word pieces.
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Tekken (Mistral Nemo): GPT-4o's shape, single digits, no contractions.
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-2 without the trailing `\s+`, as llama.cpp's default and Falcon use it.
const GPT2_NO_TAIL: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// How a family of vocabularies is pre-tokenized and set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreTokenizerSpec {
    /// Applied in order, each to the pieces of the previous one.
    pub patterns: &'static [&'static str],
    /// A word that is itself a token is emitted whole, without merges
    /// (Llama 3's tokenizer does this).
    pub ignore_merges: bool,
    /// Whether BOS is added when `tokenizer.ggml.add_bos_token` is absent.
    pub add_bos_default: bool,
}

const fn spec(patterns: &'static [&'static str]) -> PreTokenizerSpec {
    PreTokenizerSpec {
        patterns,
        ignore_merges: false,
        add_bos_default: false,
    }
}

/// The pre-tokenizer names this build knows, grouped by shared pattern set.
const FAMILIES: &[(&[&str], PreTokenizerSpec)] = &[
    (
        &[
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
        ],
        PreTokenizerSpec {
            patterns: &[LLAMA3],
            ignore_merges: true,
            add_bos_default: true,
        },
    ),
    (
        &["dbrx", "smaug-bpe", "chatglm-bpe", "glm4"],
        spec(&[LLAMA3]),
    ),
    (
        &[
            "qwen2",
            "deepseek-r1-qwen",
            "stablelm2",
            "hunyuan",
            "megrez",
            "grok-2",
            "solar-open",
            "kormo",
        ],
        spec(&[QWEN2]),
    ),
    (
        &[
            "gpt-2",
            "phi-2",
            "mpt",
            "olmo",
            "jais",
            "jina-es",
            "jina-de",
            "gigachat",
            "jina-v2-es",
            "jina-v2-de",
            "jina-v1-en",
            "jina-v2-code",
            "roberta-bpe",
            "a.x-4.0",
            "mellum",
            "trillion",
            "granite-docling",
            "exaone4",
            "modern-bert",
        ],
        spec(&[GPT2]),
    ),
    (
        &[
            "starcoder",
            "refact",
            "command-r",
            "smollm",
            "codeshell",
            "exaone",
            "minerva-7b",
        ],
        spec(&[r"\p{N}", GPT2]),
    ),
    (
        &["deepseek-coder"],
        spec(&[
            r"[\r\n]",
            r"\s?\p{L}+",
            r"\s?\p{P}+",
            r"[一-龥ࠀ-一가-퟿]+",
            r"\p{N}",
        ]),
    ),
    (
        &["falcon"],
        spec(&[r"[\p{P}\$\+<=>\^~\|`]+", GPT2_NO_TAIL, r"[0-9][0-9][0-9]"]),
    ),
    (
        &["poro-chat", "bloom", "gpt3-finnish"],
        spec(&[r" ?[^(\s|.,!?…。，、।۔،)]+"]),
    ),
    (&["seed-coder"], spec(&[SEED_CODER])),
    (&["gpt-4o", "llama4"], spec(&[GPT4O])),
    (
        &["tekken"],
        PreTokenizerSpec {
            patterns: &[TEKKEN],
            ignore_merges: true,
            add_bos_default: true,
        },
    ),
    (
        &["default"],
        spec(&[
            r"[\p{P}\$\+<=>\^~\|]+",
            GPT2_NO_TAIL,
            r"\p{N}+",
            r"[0-9][0-9][0-9]",
        ]),
    ),
];

impl PreTokenizerSpec {
    /// The spec for a `tokenizer.ggml.pre` name.
    pub fn for_name(name: &str) -> Option<Self> {
        FAMILIES
            .iter()
            .find(|(names, _)| names.contains(&name))
            .map(|(_, s)| *s)
    }

    /// Every known name, for error messages.
    pub fn known_names() -> String {
        let names: Vec<&str> = FAMILIES
            .iter()
            .flat_map(|(n, _)| n.iter().copied())
            .collect();
        names.join(", ")
    }
}

/// A compiled pre-tokenizer.
#[derive(Debug)]
pub struct PreTokenizer {
    name: String,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    pub fn new(name: &str, spec: &PreTokenizerSpec) -> Result<Self, TokenizerError> {
        let regexes = spec
            .patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| TokenizerError::RegexCompile {
                    pre: name.into(),
                    pattern: (*p).into(),
                    source: Box::new(e),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.into(),
            regexes,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cuts `text` into words; concatenated, they give `text` back.
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TokenizerError> {
        let mut pieces = if text.is_empty() { vec![] } else { vec![text] };
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for p in pieces {
                split_isolated(re, p, &mut next).map_err(|source| TokenizerError::RegexMatch {
                    pre: self.name.clone(),
                    source,
                })?;
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

/// Matches and the gaps between them, in order, all non-empty.
fn split_isolated<'t>(
    re: &Regex,
    s: &'t str,
    out: &mut Vec<&'t str>,
) -> Result<(), Box<fancy_regex::Error>> {
    let mut last = 0;
    for m in re.find_iter(s) {
        let m = m.map_err(Box::new)?;
        if m.start() == m.end() {
            continue;
        }
        if m.start() > last {
            out.push(&s[last..m.start()]);
        }
        out.push(m.as_str());
        last = m.end();
    }
    if last < s.len() {
        out.push(&s[last..]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(name: &str, text: &str) -> Vec<String> {
        let spec = PreTokenizerSpec::for_name(name).unwrap();
        let pre = PreTokenizer::new(name, &spec).unwrap();
        pre.split(text)
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn every_known_pattern_compiles() {
        for (names, spec) in FAMILIES {
            PreTokenizer::new(names[0], spec).unwrap();
        }
    }

    #[test]
    fn qwen2_puts_each_digit_in_its_own_piece() {
        assert_eq!(split("qwen2", "x 123"), ["x", " ", "1", "2", "3"]);
    }

    #[test]
    fn llama3_groups_digits_by_three() {
        assert_eq!(split("llama-bpe", "12345"), ["123", "45"]);
    }

    #[test]
    fn whitespace_before_a_word_leaves_its_last_space_to_the_word() {
        assert_eq!(split("gpt-2", "a   b"), ["a", "  ", " b"]);
    }

    #[test]
    fn contractions_are_case_insensitive_in_qwen2_only() {
        assert_eq!(split("qwen2", "I'LL"), ["I", "'LL"]);
        assert_eq!(split("gpt-2", "I'LL"), ["I", "'", "LL"]);
    }

    #[test]
    fn starcoder_isolates_digits_before_the_gpt2_pattern() {
        assert_eq!(split("starcoder", "a 12"), ["a", " ", "1", "2"]);
    }

    #[test]
    fn pieces_concatenate_to_the_input() {
        let text = "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～\n\n  x";
        for name in [
            "qwen2",
            "llama3",
            "gpt-2",
            "starcoder",
            "deepseek-coder",
            "falcon",
            "default",
        ] {
            assert_eq!(split(name, text).concat(), text, "{name}");
        }
    }

    #[test]
    fn unknown_names_have_no_spec() {
        assert!(PreTokenizerSpec::for_name("no-such-pre").is_none());
    }
}
