//! Chat messages → prompt tokens: each message's content (a string or a
//! list of text parts) is checked, the list is rendered through the
//! model's chat template with the assistant's header appended, and the
//! text is tokenized with special tokens parsed (the template writes them
//! as text) and BOS added where the tokenizer asks for it — as `rfc run
//! --chat` does.

use serde_json::Value;

use super::errors::ApiError;
use super::openai_types::{ChatFields, MessageIn};
use crate::tokenizer::chat::{ChatMessage, ChatTemplate};
use crate::tokenizer::Tokenizer;

/// The request's messages, checked; tool calling is refused.
pub fn messages(fields: &ChatFields) -> Result<Vec<ChatMessage>, ApiError> {
    refuse_tools(fields)?;
    let Some(list) = &fields.messages else {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` is required",
        ));
    };
    if list.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` is empty: give at least one message",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect()
}

fn message(i: usize, m: &MessageIn) -> Result<ChatMessage, ApiError> {
    let role = match m.role.as_str() {
        "system" | "user" | "assistant" => m.role.as_str(),
        // OpenAI's newer name for the system turn.
        "developer" => "system",
        other => {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].role"),
                format!("messages[{i}].role = {other:?}: the roles are system, user and assistant (tool calls are not supported)"),
            ))
        }
    };
    if m.tool_calls.as_ref().is_some_and(non_empty) {
        return Err(ApiError::unsupported(
            &format!("messages[{i}].tool_calls"),
            "tool calls are not supported",
        ));
    }
    let content = match &m.content {
        Value::String(s) => s.clone(),
        // An assistant turn that only called tools has no content.
        Value::Null if role == "assistant" => String::new(),
        Value::Array(parts) => text_parts(i, parts)?,
        _ => {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].content"),
                format!("messages[{i}].content must be a string or a list of text parts"),
            ))
        }
    };
    Ok(ChatMessage::new(role, content))
}

/// `[{"type": "text", "text": ...}, ...]` joined by newlines; any other
/// part type (images, audio) is refused.
fn text_parts(i: usize, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(t) => texts.push(t),
                None => {
                    return Err(ApiError::invalid_param(
                        param.clone(),
                        format!("{param}: a text part needs a string `text`"),
                    ))
                }
            },
            Some(other) => {
                return Err(ApiError::invalid_param(
                    param.clone(),
                    format!(
                        "{param}: content parts of type {other:?} are not supported (text only)"
                    ),
                )
                .with_code("unsupported_content_type"))
            }
            None => {
                return Err(ApiError::invalid_param(
                    param.clone(),
                    format!("{param}: a content part needs a `type` (\"text\")"),
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

/// Tools, functions and a tool choice other than "none" are refused.
fn refuse_tools(f: &ChatFields) -> Result<(), ApiError> {
    for (name, v) in [
        ("tools", &f.tools),
        ("functions", &f.functions),
        ("function_call", &f.function_call),
    ] {
        if v.as_ref().is_some_and(non_empty) {
            return Err(ApiError::unsupported(
                name,
                format!("{name}: tool and function calling are not supported"),
            ));
        }
    }
    if let Some(tc) = &f.tool_choice {
        if !(tc.is_null() || tc.as_str() == Some("none")) {
            return Err(ApiError::unsupported(
                "tool_choice",
                "tool_choice: tool calling is not supported",
            ));
        }
    }
    Ok(())
}

/// The prompt's token ids for `messages` under `template`.
pub fn prompt_tokens(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[ChatMessage],
) -> Result<Vec<u32>, ApiError> {
    let text = template.render(messages, true).map_err(|e| {
        ApiError::invalid_param(
            "messages",
            format!("the model's chat template refused these messages: {e}"),
        )
    })?;
    let mut ids = tokenizer.encode(&text, true, true).map_err(|e| {
        ApiError::invalid_param("messages", format!("the prompt does not tokenize: {e}"))
    })?;
    // A template that writes `bos_token` itself would otherwise give two.
    if let Some(bos) = tokenizer.bos() {
        if tokenizer.add_bos() && ids.len() >= 2 && ids[0] == bos && ids[1] == bos {
            ids.remove(0);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::extract::typed;
    use serde_json::json;

    fn parse(v: Value) -> Result<Vec<ChatMessage>, ApiError> {
        messages(&typed::<ChatFields>(&v)?)
    }

    fn refused_param(v: Value) -> String {
        parse(v)
            .expect_err("refused")
            .detail
            .param
            .unwrap_or_default()
    }

    #[test]
    fn string_and_text_part_contents_are_accepted() {
        let m = parse(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null},
            {"role": "developer", "content": "x", "name": "ignored"},
        ]}))
        .unwrap();
        assert_eq!(
            m,
            vec![
                ChatMessage::new("system", "be brief"),
                ChatMessage::new("user", "a\nb"),
                ChatMessage::new("assistant", ""),
                ChatMessage::new("system", "x"),
            ]
        );
    }

    #[test]
    fn image_parts_are_refused_with_their_index() {
        let v = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "http://x"}}]}]});
        let e = parse(v).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("messages[0].content[1]"));
        assert!(
            e.detail.message.contains("image_url"),
            "{}",
            e.detail.message
        );
    }

    #[test]
    fn missing_or_empty_messages_are_refused() {
        assert_eq!(refused_param(json!({})), "messages");
        assert_eq!(refused_param(json!({"messages": []})), "messages");
        assert_eq!(refused_param(json!({"messages": "hi"})), "messages");
        assert_eq!(
            refused_param(json!({"messages": [{"content": "hi"}]})),
            "messages[0]"
        );
    }

    #[test]
    fn bad_roles_and_contents_name_the_message() {
        assert_eq!(
            refused_param(json!({"messages": [{"role": "tool", "content": "x"}]})),
            "messages[0].role"
        );
        assert_eq!(
            refused_param(json!({"messages": [{"role": "user", "content": 5}]})),
            "messages[0].content"
        );
        assert_eq!(
            refused_param(json!({"messages": [{"role": "user"}]})),
            "messages[0].content"
        );
        assert_eq!(
            refused_param(json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]})),
            "messages[0].content[0]"
        );
    }

    #[test]
    fn tools_are_refused_but_empty_or_none_pass() {
        let msgs = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(
            refused_param(json!({"messages": msgs, "tools": [{"type": "function"}]})),
            "tools"
        );
        assert_eq!(
            refused_param(json!({"messages": msgs, "tool_choice": "auto"})),
            "tool_choice"
        );
        assert_eq!(
            refused_param(json!({"messages": msgs, "functions": [{}]})),
            "functions"
        );
        assert!(parse(json!({"messages": msgs, "tools": [], "tool_choice": "none"})).is_ok());
        assert!(parse(json!({"messages": msgs, "tools": null})).is_ok());
    }

    #[test]
    fn chatml_renders_the_generation_prompt() {
        let t = ChatTemplate::chatml();
        let text = t.render(&[ChatMessage::new("user", "hi")], true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
