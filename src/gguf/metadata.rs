//! The metadata section: keys in file order, with typed getters whose errors
//! name the key and the expected and found type.

use indexmap::IndexMap;

use super::error::{GgufError, Result};
use super::value::Value;

/// Metadata key/value pairs in the order the file stores them (an
/// `IndexMap`: lookups by key, iteration in insertion order).
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    entries: IndexMap<String, Value>,
}

impl Metadata {
    /// Adds or replaces a key (replacing keeps the original position).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        // IndexMap keeps a replaced key at its first position.
        self.entries.insert(key.into(), value);
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`, or a `MissingKey` error.
    pub fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    fn wrong(key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.into(),
            expected,
            found: found.type_description(),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "string", v))
    }

    /// Any integer type that fits in u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_i128()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| Self::wrong(key, "a non-negative integer", v))
    }

    /// Any integer type that fits in u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_i128()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| Self::wrong(key, "an integer in u32 range", v))
    }

    /// Any integer type that fits in usize.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let v = self.require(key)?;
        v.as_i128()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| Self::wrong(key, "a non-negative integer", v))
    }

    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let v = self.require(key)?;
        v.as_i128()
            .and_then(|i| i64::try_from(i).ok())
            .ok_or_else(|| Self::wrong(key, "an integer", v))
    }

    /// F32 or F64 (integers are accepted too: some writers store 1e6 as u32).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| Self::wrong(key, "a number", v))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(Self::wrong(key, "bool", v)),
        }
    }

    /// The elements of an array value.
    pub fn get_array(&self, key: &str) -> Result<&[Value]> {
        match self.require(key)? {
            Value::Array(_, items) => Ok(items),
            v => Err(Self::wrong(key, "array", v)),
        }
    }

    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let v = self.require(key)?;
        let items = self.get_array(key)?;
        items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| Self::wrong(key, "array of string", v))
            })
            .collect()
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let v = self.require(key)?;
        let items = self.get_array(key)?;
        items
            .iter()
            .map(|i| {
                i.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| Self::wrong(key, "array of numbers", v))
            })
            .collect()
    }

    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        let v = self.require(key)?;
        let items = self.get_array(key)?;
        items
            .iter()
            .map(|i| {
                i.as_i128()
                    .and_then(|x| i64::try_from(x).ok())
                    .ok_or_else(|| Self::wrong(key, "array of integers", v))
            })
            .collect()
    }

    /// `Ok(None)` when absent, an error when present with the wrong type.
    pub fn opt<T>(&self, key: &str, get: impl Fn(&Self, &str) -> Result<T>) -> Result<Option<T>> {
        if self.get(key).is_none() {
            Ok(None)
        } else {
            get(self, key).map(Some)
        }
    }
}
