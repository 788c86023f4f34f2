//! `rfc run`'s output constraints: `--grammar`, `--grammar-file`,
//! `--json-schema` and `--json` (one of them at most).

use std::path::PathBuf;

use clap::Args;

use rocmforge::grammar::GrammarSource;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Args, Clone, Default)]
pub struct GrammarArgs {
    /// Constrain the output to a GBNF grammar (llama.cpp's format; text
    /// starting with `%llguidance` is llguidance's Lark syntax).
    #[arg(long, group = "constraint")]
    pub grammar: Option<String>,
    /// Like --grammar, from a file.
    #[arg(long = "grammar-file", group = "constraint")]
    pub grammar_file: Option<PathBuf>,
    /// Constrain the output to a JSON schema: inline JSON or a file.
    #[arg(long = "json-schema", group = "constraint")]
    pub json_schema: Option<String>,
    /// Constrain the output to any JSON object.
    #[arg(long, group = "constraint")]
    pub json: bool,
}

impl GrammarArgs {
    /// The constraint asked for, checked as far as can be without the
    /// model's vocabulary (GBNF is translated, JSON parsed).
    pub fn source(&self) -> Result<Option<GrammarSource>, Error> {
        let src = if let Some(text) = &self.grammar {
            GrammarSource::from_text(text)
        } else if let Some(path) = &self.grammar_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read grammar file {}: {e}", path.display()))?;
            let src = GrammarSource::from_text(&text);
            src.to_llguidance()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            src
        } else if let Some(arg) = &self.json_schema {
            GrammarSource::JsonSchema(schema_arg(arg)?)
        } else if self.json {
            GrammarSource::JsonObject
        } else {
            return Ok(None);
        };
        src.to_llguidance().map_err(|e| format!("--grammar: {e}"))?;
        Ok(Some(src))
    }
}

/// `--json-schema`: the JSON itself when it looks like JSON, else a file.
fn schema_arg(arg: &str) -> Result<serde_json::Value, Error> {
    let t = arg.trim_start();
    let (text, origin) = if t.starts_with('{') || t == "true" || t == "false" {
        (arg.to_string(), "--json-schema".to_string())
    } else {
        let text = std::fs::read_to_string(arg)
            .map_err(|e| format!("--json-schema: cannot read schema file {arg}: {e}"))?;
        (text, arg.to_string())
    };
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{origin}: not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
        .into()
    })
}
