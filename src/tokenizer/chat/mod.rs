//! Chat templates: the Jinja template in `tokenizer.chat_template` rendered
//! with minijinja the way HF transformers and llama.cpp render it
//! (`trim_blocks`, `lstrip_blocks`, `raise_exception`, `strftime_now`, a
//! Python-style `tojson`, Python string methods through minijinja-contrib's
//! pycompat). A GGUF without a template gets its architecture's built-in
//! one (Gemma: `builtin::GEMMA`), else ChatML.

mod builtin;
mod functions;
mod python_json;

use minijinja::{context, Environment};
use serde::Serialize;

use crate::gguf::{GgufError, GgufFile, Metadata};

const KEY_TEMPLATE: &str = "tokenizer.chat_template";
const TEMPLATE_NAME: &str = "chat";

/// ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), llama.cpp's fallback.
pub const CHATML: &str = "{%- for message in messages -%}\
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("chat template metadata: {0}")]
    Metadata(#[from] GgufError),
    #[error("chat template does not compile: {0:#}")]
    Syntax(minijinja::Error),
    #[error("chat template failed to render: {0:#}")]
    Render(minijinja::Error),
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    /// An assistant turn's calls, as templates read them:
    /// `[{"id", "type": "function", "function": {"name", "arguments": {...}}}]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// A `tool` turn: the call it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

/// A compiled chat template with the model's BOS/EOS texts.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` are the texts the template
    /// sees under those names.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatTemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        functions::register(&mut env);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(ChatTemplateError::Syntax)?;
        Ok(Self {
            env,
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The ChatML fallback.
    pub fn chatml() -> Self {
        Self::new(CHATML, "", "").expect("the built-in ChatML template compiles")
    }

    /// The template of a GGUF, or ChatML when it has none.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ChatTemplateError> {
        Self::from_metadata(file.metadata())
    }

    pub fn from_metadata(md: &Metadata) -> Result<Self, ChatTemplateError> {
        let bos = token_text(md, "tokenizer.ggml.bos_token_id")?;
        let eos = token_text(md, "tokenizer.ggml.eos_token_id")?;
        match md.get(KEY_TEMPLATE) {
            Some(_) => Self::new(md.get_str(KEY_TEMPLATE)?, &bos, &eos),
            None => {
                let arch = md.get("general.architecture").and_then(|v| v.as_str());
                if let Some(source) = arch.and_then(builtin::for_architecture) {
                    tracing::info!(
                        "no {KEY_TEMPLATE} in the model; using the built-in one of {arch:?}"
                    );
                    return Self::new(source, &bos, &eos);
                }
                tracing::info!("no {KEY_TEMPLATE} in the model; using ChatML");
                let mut t = Self::chatml();
                (t.bos_token, t.eos_token) = (bos, eos);
                Ok(t)
            }
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt text for `messages`; with `add_generation_prompt` it ends
    /// with the header of the assistant's turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// Whether the template reads the `tools` variable at all.
    pub fn renders_tools(&self) -> bool {
        self.source.contains("tools")
    }

    /// [`Self::render`] with the functions the model may call (OpenAI's
    /// `tools` list) in the template's `tools` variable.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        let tools = tools.map(minijinja::Value::from_serialize);
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(ChatTemplateError::Render)?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
                tools => tools,
            })
            .map_err(ChatTemplateError::Render)
    }
}

/// The text of the token whose id `key` holds; empty when either is absent.
fn token_text(md: &Metadata, key: &str) -> Result<String, GgufError> {
    let Some(id) = md.opt(key, Metadata::get_usize)? else {
        return Ok(String::new());
    };
    let Some(tokens) = md
        .get("tokenizer.ggml.tokens")
        .map(|_| md.get_array("tokenizer.ggml.tokens"))
    else {
        return Ok(String::new());
    };
    Ok(tokens?
        .get(id)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
        ]
    }

    #[test]
    fn chatml_renders_each_message_and_the_assistant_header() {
        let text = ChatTemplate::chatml().render(&msgs(), true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn gemma_files_without_a_template_get_gemma_turns() {
        let mut md = Metadata::default();
        md.insert("general.architecture", "gemma3".into());
        let t = ChatTemplate::from_metadata(&md).unwrap();
        let conv = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", " Hi "),
            ChatMessage::new("assistant", "Hello."),
            ChatMessage::new("user", "Bye"),
        ];
        assert_eq!(
            t.render(&conv, true).unwrap(),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n\
             <start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
        md.insert("general.architecture", "llama".into());
        let chatml = ChatTemplate::from_metadata(&md).unwrap();
        assert!(chatml
            .render(&conv, false)
            .unwrap()
            .starts_with("<|im_start|>system"));
    }

    #[test]
    fn chatml_without_generation_prompt_ends_after_the_last_message() {
        let text = ChatTemplate::chatml().render(&msgs(), false).unwrap();
        assert!(text.ends_with("Hi<|im_end|>\n"));
    }

    #[test]
    fn block_tags_do_not_leave_newlines_or_indentation() {
        let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&msgs(), false).unwrap(), "[Hi]\n");
    }

    #[test]
    fn bos_and_eos_texts_are_visible_to_the_template() {
        let t = ChatTemplate::new("{{ bos_token }}x{{ eos_token }}", "<s>", "</s>").unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "<s>x</s>");
    }

    #[test]
    fn raise_exception_becomes_a_render_error() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "").unwrap();
        let err = t.render(&msgs(), false).unwrap_err();
        assert!(err.to_string().contains("roles must alternate"), "{err}");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new("{{ messages[1].content.strip().upper() }}", "", "").unwrap();
        assert_eq!(
            t.render(
                &[msgs()[0].clone(), ChatMessage::new("user", " hi ")],
                false
            )
            .unwrap(),
            "HI"
        );
    }

    #[test]
    fn tools_are_none_when_not_given() {
        let t = ChatTemplate::new("{% if tools is none %}none{% endif %}", "", "").unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "none");
    }

    #[test]
    fn a_syntax_error_is_reported_when_compiling() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(ChatTemplateError::Syntax(_))
        ));
    }
}
