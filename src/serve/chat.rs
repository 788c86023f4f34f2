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

/// The request's messages, checked (tool calls and results included).
pub fn messages(fields: &ChatFields) -> Result<Vec<ChatMessage>, ApiError> {
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
        "system" | "user" | "assistant" | "tool" => m.role.as_str(),
        // OpenAI's newer name for the system turn.
        "developer" => "system",
        other => {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].role"),
                format!(
                "messages[{i}].role = {other:?}: the roles are system, user, assistant and tool"
            ),
            ))
        }
    };
    let tool_calls = match &m.tool_calls {
        Some(calls) if non_empty(calls) && role == "assistant" => Some(template_calls(i, calls)?),
        Some(calls) if non_empty(calls) => {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].tool_calls"),
                format!("messages[{i}]: only assistant messages carry tool_calls"),
            ))
        }
        _ => None,
    };
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
    let mut msg = ChatMessage::new(role, content);
    msg.tool_calls = tool_calls;
    msg.tool_call_id = m.tool_call_id.clone();
    Ok(msg)
}

/// An assistant turn's `tool_calls` as templates read them: OpenAI sends
/// `arguments` as a JSON text; templates (and HF) expect the object.
fn template_calls(i: usize, calls: &Value) -> Result<Value, ApiError> {
    let bad = |j: usize, what: &str| {
        ApiError::invalid_param(
            format!("messages[{i}].tool_calls[{j}]"),
            format!("messages[{i}].tool_calls[{j}]: {what}"),
        )
    };
    let Value::Array(list) = calls else {
        return Err(bad(0, "tool_calls must be a list"));
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, c) in list.iter().enumerate() {
        let name = c
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(j, "a call needs function.name"))?;
        let arguments = match c.pointer("/function/arguments") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .map_err(|e| bad(j, &format!("function.arguments is not JSON: {e}")))?,
            Some(v) => v.clone(),
            None => Value::Object(Default::default()),
        };
        out.push(serde_json::json!({
            "id": c.get("id").cloned().unwrap_or(Value::Null),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }));
    }
    Ok(Value::Array(out))
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

/// The prompt's token ids for `messages` (and the `tools` the model may
/// call) under `template`.
pub fn prompt_tokens(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[ChatMessage],
    tools: Option<&Value>,
) -> Result<Vec<u32>, ApiError> {
    if tools.is_some() && !template.renders_tools() {
        return Err(ApiError::unsupported(
            "tools",
            "this model's chat template does not render tools, so the model would not know them",
        ));
    }
    let text = template
        .render_with_tools(messages, tools, true)
        .map_err(|e| {
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
            refused_param(json!({"messages": [{"role": "robot", "content": "x"}]})),
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
    fn tool_turns_are_taken_with_their_calls_as_objects() {
        let m = parse(json!({"messages": [
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
        ]}))
        .unwrap();
        assert_eq!(
            m[1].tool_calls.as_ref().unwrap()[0]["function"]["arguments"],
            json!({"city": "Oslo"})
        );
        assert_eq!(m[2].role, "tool");
        assert_eq!(m[2].tool_call_id.as_deref(), Some("call_1"));
        let bad = json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"function": {"name": "f", "arguments": "{oops"}}]}]});
        assert_eq!(refused_param(bad), "messages[0].tool_calls[0]");
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
