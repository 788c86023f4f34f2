//! Artifacts being written: a temporary file beside the output that is
//! renamed into place only when complete.
//!
//! Two guarantees: an interrupted compile leaves nothing behind (the files
//! in progress are listed, so that a SIGINT/SIGTERM handler can remove them
//! with [`remove_all`] before the process exits), and a file in progress
//! never looks like an artifact (its GGUF magic is written last, see
//! [`MagicLast`]), so a stray or renamed partial file is refused as "not a
//! GGUF file" instead of being run.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A list of files in progress.
pub struct InProgress(Mutex<Vec<PathBuf>>);

/// The files in progress of this process (what [`remove_all`] removes).
pub static IN_PROGRESS: InProgress = InProgress::new();

/// The GGUF magic, written over the placeholder once the file is complete.
const MAGIC: [u8; 4] = *b"GGUF";

impl InProgress {
    pub const fn new() -> InProgress {
        InProgress(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes every file in the list (for a signal handler about to exit
    /// the process); returns how many there were.
    pub fn remove_all(&self) -> usize {
        let mut list = self.lock();
        for p in list.iter() {
            let _ = std::fs::remove_file(p);
        }
        let n = list.len();
        list.clear();
        n
    }
}

impl Default for InProgress {
    fn default() -> Self {
        InProgress::new()
    }
}

/// Removes this process's files in progress; see [`InProgress::remove_all`].
pub fn remove_all() -> usize {
    IN_PROGRESS.remove_all()
}

/// A temporary file in progress: removed on drop unless committed.
pub struct PartialFile {
    path: PathBuf,
    list: &'static InProgress,
}

impl PartialFile {
    /// Lists `path` (not yet created) as in progress in `list`.
    pub fn new(path: PathBuf, list: &'static InProgress) -> PartialFile {
        list.lock().push(path.clone());
        PartialFile { path, list }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the finished file to `to`. Holding the list's lock makes the
    /// rename and a signal handler's [`remove_all`] exclusive: the file is
    /// either removed as partial or renamed as finished, never both.
    pub fn commit(self, to: &Path) -> std::io::Result<()> {
        let mut list = self.list.lock();
        let Some(i) = list.iter().position(|p| *p == self.path) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "interrupted: the partial file was removed",
            ));
        };
        std::fs::rename(&self.path, to)?;
        list.swap_remove(i);
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        let mut list = self.list.lock();
        if let Some(i) = list.iter().position(|p| *p == self.path) {
            list.swap_remove(i);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A writer whose first four bytes (the GGUF magic) are written as zeros;
/// [`MagicLast::seal`] writes the magic once everything else is on disk.
pub struct MagicLast<W> {
    inner: W,
    written: u64,
}

impl<W: Write> MagicLast<W> {
    pub fn new(inner: W) -> MagicLast<W> {
        MagicLast { inner, written: 0 }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for MagicLast<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let hidden = (MAGIC.len() as u64).saturating_sub(self.written) as usize;
        let n = if hidden > 0 {
            let k = hidden.min(buf.len());
            self.inner.write_all(&[0u8; 4][..k])?;
            k
        } else {
            self.inner.write(buf)?
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Syncs the complete file, then writes the magic at its start and syncs
/// again: until then a reader sees zeros where "GGUF" belongs.
pub fn seal(file: &mut std::fs::File) -> std::io::Result<()> {
    file.sync_all()?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&MAGIC)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_is_zero_until_the_file_is_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.partial");
        let mut w = MagicLast::new(std::fs::File::create(&path).unwrap());
        w.write_all(b"GG").unwrap();
        w.write_all(b"UF rest").unwrap();
        let mut file = w.into_inner();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0\0\0\0 rest");
        seal(&mut file).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"GGUF rest");
    }

    #[test]
    fn an_uncommitted_file_is_removed_and_a_committed_one_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".x.partial");
        let out = dir.path().join("x.rfc");
        static LIST: InProgress = InProgress::new();
        {
            let p = PartialFile::new(tmp.clone(), &LIST);
            std::fs::write(p.path(), b"half").unwrap();
        }
        assert!(!tmp.exists());
        let p = PartialFile::new(tmp.clone(), &LIST);
        std::fs::write(p.path(), b"whole").unwrap();
        p.commit(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"whole");
        assert!(!tmp.exists());
    }

    #[test]
    fn files_removed_by_a_signal_handler_are_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".y.partial");
        static LIST: InProgress = InProgress::new();
        let p = PartialFile::new(tmp.clone(), &LIST);
        std::fs::write(p.path(), b"half").unwrap();
        assert_eq!(LIST.remove_all(), 1);
        assert!(!tmp.exists());
        assert!(p.commit(&dir.path().join("y.rfc")).is_err());
        assert!(!dir.path().join("y.rfc").exists());
    }
}
