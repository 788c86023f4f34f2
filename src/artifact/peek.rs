//! A cheap look at an artifact's target: the writer puts
//! `general.alignment`, `rfc.format_version` and `rfc.target` first, so the
//! first few hundred bytes tell whether a file is an artifact and for what,
//! without parsing the tokenizer metadata that follows. Used to pick a
//! device before loading (a CPU artifact needs no GPU probing).

use std::io::Read;
use std::path::Path;

use super::keys;
use super::target::ArtifactTarget;

/// How much of the file the peek reads.
const PEEK_BYTES: u64 = 4096;
/// The first keys, in the order the writer puts them.
const FIRST_KEYS: usize = 3;

/// The target of the artifact at `path`, or `None` when it is not an
/// artifact (or not readable: the real open reports why).
pub fn peek_target(path: &Path) -> Option<ArtifactTarget> {
    // A FIFO would block the open; the real open names the problem.
    crate::gguf::file_kind::require_regular_input(path).ok()?;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(PEEK_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    let mut r = Reader { b: &head, at: 0 };
    if r.take(4)? != b"GGUF" {
        return None;
    }
    r.take(4 + 8)?; // version, tensor count
    let n_kv = r.u64()?;
    let mut is_artifact = false;
    for _ in 0..n_kv.min(FIRST_KEYS as u64) {
        let key = r.string()?;
        match (key, r.u32()?) {
            (keys::FORMAT_VERSION, 4) => is_artifact = r.u32().is_some(),
            (keys::TARGET, 8) if is_artifact => {
                return ArtifactTarget::parse(r.string()?).ok();
            }
            (_, 4) => {
                r.u32()?;
            }
            _ => return None,
        }
    }
    None
}

/// Little-endian reads over the peeked bytes; `None` past their end.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.u64()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }
}
