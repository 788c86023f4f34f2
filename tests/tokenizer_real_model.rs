//! The real model's tokenizer (Qwen2.5-Coder 0.5B, qwen2 pre-tokenizer)
//! against llama.cpp: the prompt ids recorded in
//! ../shared/testdata/reference/qwen25coder05b_llamacpp.json
//! (`Llama.tokenize(prompt, add_bos=False, special=False)`).

mod common;

use common::{real_model_or_skip, shared_or_skip};
use rocmforge::gguf::GgufFile;
use rocmforge::tokenizer::chat::{ChatMessage, ChatTemplate};
use rocmforge::tokenizer::{StreamDecoder, Tokenizer};

fn tokenizer() -> Option<Tokenizer> {
    let path = common::require(
        "the real model (scripts/fetch-model.sh)",
        common::real_model(),
    )?;
    let file = GgufFile::open(path).unwrap();
    Some(Tokenizer::from_gguf(&file).unwrap())
}

fn reference(dir: &std::path::Path) -> serde_json::Value {
    let path = dir.join("testdata/reference/qwen25coder05b_llamacpp.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn prompt_ids_match_llama_cpp() {
    let _model = real_model_or_skip!();
    let dir = shared_or_skip!();
    let tok = tokenizer().unwrap();
    let reference = reference(&dir);
    let prompts = reference["prompts"].as_object().unwrap();
    assert!(!prompts.is_empty());
    for (name, p) in prompts {
        let text = p["prompt"].as_str().unwrap();
        let got = tok.encode(text, false, false).unwrap();
        assert_eq!(got, ids(&p["token_ids"]), "{name}: {text:?}");
    }
}

#[test]
fn greedy_ids_decode_to_llama_cpp_text() {
    let _model = real_model_or_skip!();
    let dir = shared_or_skip!();
    let tok = tokenizer().unwrap();
    let reference = reference(&dir);
    for (name, p) in reference["prompts"].as_object().unwrap() {
        let run = &p["flash_attn_off"];
        let greedy = ids(&run["greedy_ids"]);
        let text = run["greedy_text"].as_str().unwrap();
        assert_eq!(tok.decode(&greedy), text, "{name}");
        let mut stream = StreamDecoder::new(&tok);
        let streamed: String =
            greedy.iter().map(|&id| stream.push(id)).collect::<String>() + &stream.finish();
        assert_eq!(streamed, text, "{name} (streamed)");
    }
}

#[test]
fn special_ids_and_flags_follow_the_metadata() {
    let _model = real_model_or_skip!();
    let tok = tokenizer().unwrap();
    assert_eq!(tok.n_vocab(), 151936);
    assert_eq!(tok.bos(), Some(151643));
    assert_eq!(tok.eos(), Some(151645));
    assert!(!tok.add_bos());
}

#[test]
fn im_end_endoftext_and_fim_tokens_end_generation() {
    let _model = real_model_or_skip!();
    let tok = tokenizer().unwrap();
    for text in [
        "<|im_end|>",
        "<|endoftext|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
    ] {
        assert!(tok.is_eog(tok.token_id(text).unwrap()), "{text}");
    }
    assert!(!tok.is_eog(tok.token_id("<|im_start|>").unwrap()));
    assert!(!tok.is_eog(198));
}

#[test]
fn control_token_text_is_one_token_only_when_parsing_specials() {
    let _model = real_model_or_skip!();
    let tok = tokenizer().unwrap();
    let im_start = tok.token_id("<|im_start|>").unwrap();
    assert_eq!(
        tok.encode("<|im_start|>user", false, true).unwrap()[0],
        im_start
    );
    assert!(!tok
        .encode("<|im_start|>user", false, false)
        .unwrap()
        .contains(&im_start));
}

#[test]
fn chat_template_of_the_model_renders_chatml() {
    let _model = real_model_or_skip!();
    let file = GgufFile::open(common::real_model().unwrap()).unwrap();
    let template = ChatTemplate::from_gguf(&file).unwrap();
    let messages = [ChatMessage::new("user", "Write hello world in C.")];
    let text = template.render(&messages, true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nWrite hello world in C.<|im_end|>\n<|im_start|>assistant\n"
    );
}
