//! The on-disk form of one cached code object: a magic, the XXH3-64 of the
//! code, then the code. A file that does not check out (overwritten,
//! truncated, written by an older rfc) is not a cache hit: the kernel is
//! compiled again and the entry rewritten, so damage in the cache can never
//! reach an artifact or a device.

use xxhash_rust::xxh3::xxh3_64;

/// Identifies an entry of this layout (version 1).
const MAGIC: &[u8; 8] = b"RFCKOBJ1";
const HEADER: usize = MAGIC.len() + 8;

/// The bytes to store for `code`.
pub fn seal(code: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + code.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&xxh3_64(code).to_le_bytes());
    out.extend_from_slice(code);
    out
}

/// The code object in a stored entry, or why the entry is unusable.
pub fn open(bytes: &[u8]) -> Result<&[u8], &'static str> {
    if bytes.len() <= HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a cache entry of this rfc (too short or no magic)");
    }
    let (sum, code) = bytes[MAGIC.len()..].split_at(8);
    let stored = u64::from_le_bytes(sum.try_into().expect("8 bytes"));
    if stored != xxh3_64(code) {
        return Err("checksum mismatch");
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_entry_opens_to_its_code() {
        assert_eq!(open(&seal(b"\x7fELF code")).unwrap(), b"\x7fELF code");
    }

    #[test]
    fn flipped_truncated_and_foreign_entries_are_refused() {
        let good = seal(b"\x7fELF code object");
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&flipped).is_err());
        assert!(open(&good[..1]).is_err());
        assert!(open(&good[..HEADER]).is_err());
        assert!(open(b"\x7fELF raw code from an older rfc").is_err());
    }
}
