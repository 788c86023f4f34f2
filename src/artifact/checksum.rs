//! The artifact's checksums: SHA-256 over a canonical encoding of each part,
//! so that they do not depend on how the container happens to lay it out.
//!
//! A value is hashed as its GGUF type id then its little-endian bytes
//! (strings and arrays length-prefixed with a u64), a string part as its
//! length then its bytes. Every part starts with its own domain label, so
//! no two parts can collide by moving bytes between them.

use sha2::{Digest, Sha256};

use crate::gguf::{TensorInfo, Value};

/// An incremental SHA-256 over labelled, length-prefixed fields.
pub struct Hasher(Sha256);

impl Hasher {
    /// A hasher for the part named `domain`.
    pub fn new(domain: &str) -> Hasher {
        let mut h = Hasher(Sha256::new());
        h.str(domain);
        h
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn u64(&mut self, n: u64) -> &mut Self {
        self.0.update(n.to_le_bytes());
        self
    }

    /// One metadata entry.
    pub fn key_value(&mut self, key: &str, value: &Value) -> &mut Self {
        self.str(key);
        self.value(value);
        self
    }

    /// One tensor-table entry (its data is hashed separately).
    pub fn tensor_info(&mut self, t: &TensorInfo) -> &mut Self {
        self.str(&t.name).u64(t.dims.len() as u64);
        for &d in &t.dims {
            self.u64(d);
        }
        self.u64(t.ty.id() as u64).u64(t.offset).u64(t.size)
    }

    fn value(&mut self, v: &Value) {
        self.0.update((v.value_type() as u32).to_le_bytes());
        match v {
            Value::U8(x) => self.0.update([*x]),
            Value::I8(x) => self.0.update(x.to_le_bytes()),
            Value::U16(x) => self.0.update(x.to_le_bytes()),
            Value::I16(x) => self.0.update(x.to_le_bytes()),
            Value::U32(x) => self.0.update(x.to_le_bytes()),
            Value::I32(x) => self.0.update(x.to_le_bytes()),
            Value::F32(x) => self.0.update(x.to_bits().to_le_bytes()),
            Value::Bool(x) => self.0.update([*x as u8]),
            Value::String(s) => {
                self.str(s);
            }
            Value::Array(ty, items) => {
                self.0.update((*ty as u32).to_le_bytes());
                self.u64(items.len() as u64);
                for item in items {
                    self.value(item);
                }
            }
            Value::U64(x) => self.0.update(x.to_le_bytes()),
            Value::I64(x) => self.0.update(x.to_le_bytes()),
            Value::F64(x) => self.0.update(x.to_bits().to_le_bytes()),
        }
    }

    /// The digest as 64 lowercase hex digits.
    pub fn hex(self) -> String {
        hex(&self.0.finalize())
    }
}

/// SHA-256 of raw bytes (no domain, no length prefix): what `sha256sum`
/// prints, used for the source model and for each weight's data.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// SHA-256 of `data` fed in chunks, calling `advance(bytes)` after each
/// (for a progress bar over large files).
pub fn sha256_hex_chunked(data: &[u8], mut advance: impl FnMut(u64)) -> String {
    const CHUNK: usize = 8 << 20;
    let mut h = Sha256::new();
    for part in data.chunks(CHUNK) {
        h.update(part);
        advance(part.len() as u64);
    }
    hex(&h.finalize())
}

/// XXH3-64 of raw bytes as 16 hex digits: the fast per-weight checksum
/// every load checks (several GB/s per core, against SHA-256's few hundred
/// MB/s), catching damage, not tampering (an attacker reseals anyway).
pub fn xxh3_hex(data: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex_chunked(b"abc", |_| {}), sha256_hex(b"abc"));
    }

    #[test]
    fn xxh3_matches_the_reference_value_of_the_empty_input() {
        assert_eq!(xxh3_hex(b""), "2d06800538d394c2");
        assert_ne!(xxh3_hex(b"a"), xxh3_hex(b"b"));
    }

    #[test]
    fn a_value_and_its_type_both_count() {
        let h = |v: Value| {
            let mut h = Hasher::new("t");
            h.key_value("k", &v);
            h.hex()
        };
        assert_ne!(h(Value::U32(1)), h(Value::I32(1)));
        assert_ne!(h(Value::U32(1)), h(Value::U32(2)));
        assert_eq!(h(Value::from("a")), h(Value::from("a")));
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_digest() {
        let mut a = Hasher::new("t");
        a.str("ab").str("c");
        let mut b = Hasher::new("t");
        b.str("a").str("bc");
        assert_ne!(a.hex(), b.hex());
    }
}
