//! `rfc tokenize MODEL.gguf TEXT [--pieces] [--no-special-parse]
//! [--add-special]`: the token ids of TEXT (`-` reads stdin) under the
//! model's tokenizer, on one line, or one `id<TAB>piece` line per token.

use std::io::{Read, Write};
use std::path::PathBuf;

use rocmforge::gguf::GgufFile;
use rocmforge::tokenizer::Tokenizer;

use super::CmdResult;

#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {
    /// The GGUF file (a vocab-only GGUF works too).
    pub model: PathBuf,
    /// The text to tokenize; `-` reads it from stdin.
    pub text: String,
    /// Print each token with its piece (quoted, escapes shown).
    #[arg(long)]
    pub pieces: bool,
    /// Treat texts of control tokens (`<|im_start|>`) as plain text.
    #[arg(long)]
    pub no_special_parse: bool,
    /// Add BOS/EOS as the model's add_bos_token/add_eos_token say.
    #[arg(long)]
    pub add_special: bool,
}

pub fn run(args: TokenizeArgs) -> CmdResult {
    let file = GgufFile::open(&args.model)?;
    let tok = Tokenizer::from_gguf(&file)?;
    let text = if args.text == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        args.text
    };
    let ids = tok.encode(&text, args.add_special, !args.no_special_parse)?;
    let mut out = std::io::stdout().lock();
    if args.pieces {
        for id in &ids {
            writeln!(out, "{id}\t\"{}\"", escaped(tok.token_bytes(*id)))?;
        }
    } else {
        let line: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "{}", line.join(" "))?;
    }
    Ok(())
}

/// The bytes as text with escapes shown; bytes that are not UTF-8 (part of a
/// character split over tokens) as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().flat_map(char::escape_debug));
        for b in chunk.invalid() {
            out += &format!("\\x{b:02X}");
        }
    }
    out
}
