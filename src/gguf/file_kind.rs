//! What kind of file system object a path names, checked before a model is
//! mapped or an output is written.
//!
//! Opening a FIFO blocks until someone writes to it, mapping a device or a
//! directory fails in odd ways, and renaming a finished file over a device
//! node replaces the device. So inputs must be regular files, and outputs
//! either do not exist yet or are regular files (symlinks are followed).

use std::io::{Error, ErrorKind};
use std::path::Path;

/// `Ok` when `path` is a regular file (after following symlinks); an error
/// naming what it is otherwise, without opening it.
pub fn require_regular_input(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "it is {}, not a regular file (a model must be a file on disk)",
            describe(&meta)
        ),
    ))
}

/// `Ok` when `path` does not exist or is a regular file: anything else (a
/// directory, FIFO, socket or device) is refused rather than written over.
pub fn require_writable_output(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "it exists and is {}: refusing to replace it with a file (give a new file name)",
                describe(&meta)
            ),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// [`require_writable_output`] as the GGUF error that names `path`.
pub fn check_output(path: &Path) -> super::error::Result<()> {
    require_writable_output(path).map_err(|source| super::GgufError::NotAnOutput {
        path: path.to_path_buf(),
        source,
    })
}

fn describe(meta: &std::fs::Metadata) -> &'static str {
    let ty = meta.file_type();
    if ty.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ty.is_socket() {
            return "a socket";
        }
        if ty.is_block_device() || ty.is_char_device() {
            return "a device";
        }
    }
    "not a regular file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_neither_an_input_nor_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let e = require_regular_input(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let e = require_writable_output(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn a_missing_output_and_an_existing_file_may_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.gguf");
        require_writable_output(&path).unwrap();
        std::fs::write(&path, b"old").unwrap();
        require_writable_output(&path).unwrap();
        require_regular_input(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = require_regular_input(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let e = require_writable_output(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }
}
