//! Behaviour of the whole tokenizer on tiny hand-made vocabularies (the
//! llama.cpp vectors in tests/tokenizer_vectors.rs cover real ones).

use super::{StreamDecoder, Tokenizer, TokenizerError};
use crate::gguf::{Metadata, Value, ValueType};

fn strings(items: &[&str]) -> Value {
    Value::Array(
        ValueType::String,
        items.iter().map(|s| Value::String((*s).into())).collect(),
    )
}

fn ints(items: &[i32]) -> Value {
    Value::Array(
        ValueType::I32,
        items.iter().map(|&i| Value::I32(i)).collect(),
    )
}

/// Byte-level BPE: ids 0..=5 are `a b c Ġ Ã ©`, then merges' results, then
/// specials.
fn bpe_metadata() -> Metadata {
    let tokens = [
        "a",
        "b",
        "c",
        "Ġ",
        "Ã",
        "©",
        "ab",
        "Ġab",
        "<|im_start|>",
        "<tool>",
        "<|endoftext|>",
        "<x>",
        "<x>y",
    ];
    let types = [1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 3, 3, 3];
    let mut md = Metadata::default();
    md.insert("tokenizer.ggml.model", Value::String("gpt2".into()));
    md.insert("tokenizer.ggml.pre", Value::String("gpt-2".into()));
    md.insert("tokenizer.ggml.tokens", strings(&tokens));
    md.insert("tokenizer.ggml.token_type", ints(&types));
    md.insert("tokenizer.ggml.merges", strings(&["a b", "Ġ ab"]));
    md.insert("tokenizer.ggml.bos_token_id", Value::U32(10));
    md.insert("tokenizer.ggml.eos_token_id", Value::U32(10));
    md
}

fn bpe() -> Tokenizer {
    Tokenizer::from_metadata(&bpe_metadata()).unwrap()
}

/// SentencePiece: `<unk> <s> </s>`, the 256 byte tokens, then pieces.
fn spm_metadata() -> Metadata {
    let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
    let mut tokens: Vec<&str> = vec!["<unk>", "<s>", "</s>"];
    tokens.extend(bytes.iter().map(String::as_str));
    let pieces = ["▁", "a", "b", "ab", "▁a", "▁ab", "bb"];
    tokens.extend(pieces);
    let mut types = vec![2, 3, 3];
    types.extend([6; 256]);
    types.extend([1; 7]);
    let mut scores = vec![0.0f32; 259];
    scores.extend([-1.0, -2.0, -2.0, -3.0, -4.0, -5.0, -0.5]);
    let mut md = Metadata::default();
    md.insert("tokenizer.ggml.model", Value::String("llama".into()));
    md.insert("tokenizer.ggml.tokens", strings(&tokens));
    md.insert("tokenizer.ggml.token_type", ints(&types));
    md.insert(
        "tokenizer.ggml.scores",
        Value::Array(ValueType::F32, scores.into_iter().map(Value::F32).collect()),
    );
    md
}

fn spm() -> Tokenizer {
    Tokenizer::from_metadata(&spm_metadata()).unwrap()
}

fn id(tok: &Tokenizer, text: &str) -> u32 {
    tok.token_id(text).unwrap()
}

#[test]
fn bpe_merges_apply_in_rank_order_across_a_space() {
    let tok = bpe();
    assert_eq!(
        tok.encode("ab ab", false, false).unwrap(),
        [id(&tok, "ab"), id(&tok, "Ġab")]
    );
}

#[test]
fn control_token_text_is_a_token_only_with_parse_special() {
    let tok = bpe();
    let special = tok.encode("<|im_start|>", false, true).unwrap();
    assert_eq!(special, [id(&tok, "<|im_start|>")]);
    // Unparsed, its characters have no tokens here and are dropped.
    assert!(!tok
        .encode("<|im_start|>", false, false)
        .unwrap()
        .contains(&special[0]));
}

#[test]
fn user_defined_tokens_are_matched_even_without_parse_special() {
    let tok = bpe();
    assert_eq!(
        tok.encode("a<tool>b", false, false).unwrap(),
        [0, id(&tok, "<tool>"), 1]
    );
}

#[test]
fn the_longest_special_token_wins() {
    let tok = bpe();
    assert_eq!(
        tok.encode("<x>y<x>", false, true).unwrap(),
        [id(&tok, "<x>y"), id(&tok, "<x>")]
    );
}

#[test]
fn add_special_adds_bos_only_when_the_model_asks() {
    let mut md = bpe_metadata();
    assert_eq!(
        Tokenizer::from_metadata(&md)
            .unwrap()
            .encode("a", true, false)
            .unwrap(),
        [0]
    );
    md.insert("tokenizer.ggml.add_bos_token", Value::Bool(true));
    assert_eq!(
        Tokenizer::from_metadata(&md)
            .unwrap()
            .encode("a", true, false)
            .unwrap(),
        [10, 0]
    );
}

#[test]
fn add_bos_without_a_bos_token_is_an_error() {
    let mut md = spm_metadata();
    md.insert("tokenizer.ggml.bos_token_id", Value::U32(99_999));
    // One token: SPM's default BOS id 1 is outside the vocabulary.
    md.insert("tokenizer.ggml.tokens", strings(&["a"]));
    md.insert("tokenizer.ggml.token_type", ints(&[1]));
    md.insert(
        "tokenizer.ggml.scores",
        Value::Array(ValueType::F32, vec![Value::F32(0.0)]),
    );
    assert!(matches!(
        Tokenizer::from_metadata(&md),
        Err(TokenizerError::MissingSpecialToken { .. })
    ));
}

#[test]
fn an_unknown_pre_tokenizer_is_an_error_naming_it() {
    let mut md = bpe_metadata();
    md.insert("tokenizer.ggml.pre", Value::String("no-such-pre".into()));
    let err = Tokenizer::from_metadata(&md).unwrap_err();
    assert!(err.to_string().contains("no-such-pre"), "{err}");
}

#[test]
fn a_missing_pre_tokenizer_falls_back_to_default() {
    let mut md = Metadata::default();
    for (k, v) in bpe_metadata()
        .iter()
        .filter(|(k, _)| *k != "tokenizer.ggml.pre")
    {
        md.insert(k, v.clone());
    }
    assert_eq!(
        Tokenizer::from_metadata(&md).unwrap().pre_tokenizer(),
        Some("default")
    );
}

#[test]
fn an_unsupported_model_is_an_error() {
    let mut md = bpe_metadata();
    md.insert("tokenizer.ggml.model", Value::String("bert".into()));
    assert!(matches!(
        Tokenizer::from_metadata(&md),
        Err(TokenizerError::UnsupportedModel(_))
    ));
}

#[test]
fn a_duplicate_token_is_an_error() {
    let mut md = bpe_metadata();
    md.insert("tokenizer.ggml.tokens", strings(&["a", "a"]));
    md.insert("tokenizer.ggml.token_type", ints(&[1, 1]));
    assert!(matches!(
        Tokenizer::from_metadata(&md),
        Err(TokenizerError::DuplicateToken { .. })
    ));
}

#[test]
fn endoftext_is_end_of_generation_and_im_start_is_not() {
    let tok = bpe();
    assert!(tok.is_eog(id(&tok, "<|endoftext|>")));
    assert!(!tok.is_eog(id(&tok, "<|im_start|>")));
}

#[test]
fn decode_leaves_control_tokens_out_and_token_bytes_shows_them() {
    let tok = bpe();
    let im_start = id(&tok, "<|im_start|>");
    assert_eq!(tok.decode(&[im_start, 7]), " ab");
    assert_eq!(tok.token_bytes(im_start), b"<|im_start|>");
}

#[test]
fn out_of_range_ids_decode_to_nothing() {
    assert_eq!(bpe().decode(&[1_000_000]), "");
}

#[test]
fn stream_decoder_holds_half_a_character_until_the_next_token() {
    let tok = bpe();
    let mut s = StreamDecoder::new(&tok);
    assert_eq!(s.push(id(&tok, "Ã")), ""); // byte 0xC3
    assert_eq!(s.push(id(&tok, "©")), "é"); // byte 0xA9
    assert_eq!(s.finish(), "");
}

#[test]
fn spm_puts_a_dummy_space_before_the_text() {
    let tok = spm();
    assert_eq!(tok.encode("ab", false, false).unwrap(), [id(&tok, "▁ab")]);
}

#[test]
fn spm_puts_a_dummy_space_after_a_special_token() {
    let tok = spm();
    let ids = tok.encode("<s>ab", false, true).unwrap();
    assert_eq!(ids, [1, id(&tok, "▁ab")]);
}

#[test]
fn spm_merges_the_highest_scoring_pair_first() {
    // "bb" (-0.5) beats "ab" (-3): "abb" -> "▁a" + "bb".
    let tok = spm();
    assert_eq!(
        tok.encode("abb", false, false).unwrap(),
        [id(&tok, "▁a"), id(&tok, "bb")]
    );
}

#[test]
fn spm_spells_unknown_characters_with_byte_tokens() {
    let tok = spm();
    let ids = tok.encode("é", false, false).unwrap();
    assert_eq!(ids, [id(&tok, "▁"), id(&tok, "<0xC3>"), id(&tok, "<0xA9>")]);
    assert_eq!(tok.decode(&ids), "é");
}

#[test]
fn spm_adds_bos_by_default() {
    let tok = spm();
    assert!(tok.add_bos());
    assert_eq!(tok.encode("a", true, false).unwrap(), [1, id(&tok, "▁a")]);
}

#[test]
fn spm_decode_removes_the_dummy_space() {
    let tok = spm();
    assert_eq!(tok.decode(&[id(&tok, "▁ab"), id(&tok, "▁a")]), "ab a");
}

#[test]
fn phi3_special_tokens_eat_the_whitespace_after_them() {
    let mut md = spm_metadata();
    md.insert("general.name", Value::String("Phi3".into()));
    let tok = Tokenizer::from_metadata(&md).unwrap();
    // </s> (control) rstrips; <s> is exempt and keeps the space.
    assert_eq!(
        tok.encode("</s>  ab", false, true).unwrap(),
        [2, id(&tok, "▁ab")]
    );
    let kept = tok.encode("<s> ab", false, true).unwrap();
    assert_eq!(kept[..2], [1, id(&tok, "▁")]);
}
