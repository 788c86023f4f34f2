//! JSON written as Python's `json.dumps(x, ensure_ascii=False)` writes it,
//! which is what HF chat templates get from `tojson`: `", "` and `": "`
//! between items (`","` at line ends when indenting), non-ASCII kept.

use serde_json::Value;

pub fn dumps(v: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write(&mut out, v, indent, 0);
    out
}

fn write(out: &mut String, v: &Value, indent: Option<usize>, depth: usize) {
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(out, i, indent, depth + 1);
                write(out, item, indent, depth + 1);
            }
            close(out, ']', indent, depth);
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                separator(out, i, indent, depth + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write(out, item, indent, depth + 1);
            }
            close(out, '}', indent, depth);
        }
        other => out.push_str(&other.to_string()),
    }
}

fn separator(out: &mut String, i: usize, indent: Option<usize>, depth: usize) {
    match indent {
        Some(n) => {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
        None if i > 0 => out.push_str(", "),
        None => {}
    }
}

fn close(out: &mut String, bracket: char, indent: Option<usize>, depth: usize) {
    if let Some(n) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * depth));
    }
    out.push(bracket);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_output_uses_python_separators() {
        assert_eq!(dumps(&json!({"a": [1, "x"]}), None), r#"{"a": [1, "x"]}"#);
    }

    #[test]
    fn non_ascii_is_kept() {
        assert_eq!(dumps(&json!("Äpfel"), None), "\"Äpfel\"");
    }

    #[test]
    fn indent_puts_items_on_their_own_lines() {
        assert_eq!(
            dumps(&json!({"a": [1]}), Some(2)),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn empty_containers_stay_on_one_line() {
        assert_eq!(
            dumps(&json!({"a": [], "b": {}}), Some(2)),
            "{\n  \"a\": [],\n  \"b\": {}\n}"
        );
    }
}
