//! The `rfc` command line: argument parsing and user-facing output.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
