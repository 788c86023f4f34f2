//! The GGUF header parser: bytes in, metadata and tensor infos out.
//!
//! Every count and length is checked against the bytes that remain before
//! anything is allocated, so a hostile header can never make us allocate more
//! than the file holds, recurse without bound, or panic.

use std::collections::HashMap;

use super::error::{GgufError, Result};
use super::metadata::Metadata;
use super::tensor::TensorInfo;
use super::value::{Value, ValueType};
use crate::quant::GgmlType;

/// `GGUF` as the first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// ggml's default when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays of arrays deeper than this are rejected (real files use depth 1).
pub const MAX_ARRAY_DEPTH: usize = 8;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: u32 = 4;

/// The parsed header of a GGUF file.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
}

/// A bounds-checked reader over the file bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                file_len: self.bytes.len() as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in what remains, at `min_each` bytes per item.
    fn count(&mut self, what: &'static str, min_each: u64) -> Result<u64> {
        let offset = self.pos as u64;
        let n = self.u64(&|| format!("{what} count"))?;
        if n.checked_mul(min_each).is_none_or(|b| b > self.remaining()) {
            return Err(GgufError::CountTooLarge {
                what,
                count: n,
                offset,
            });
        }
        Ok(n)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let offset = self.pos as u64;
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > self.remaining() {
            return Err(GgufError::CountTooLarge {
                what: "string length",
                count: len,
                offset,
            });
        }
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| GgufError::NotUtf8 {
            what: what(),
            offset: offset + 8,
        })
    }
}

/// Parses the header of a GGUF file held in `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic: [u8; 4] = c.array(&|| "magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic {
            found: magic.to_vec(),
        });
    }
    let version = c.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        let hint = if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            " (this looks like a big-endian file)"
        } else if version == 1 {
            " (version 1 is obsolete; re-convert the model)"
        } else {
            ""
        };
        return Err(GgufError::UnsupportedVersion { version, hint });
    }
    // Minimum encoded size of one tensor info (empty name, zero dims) and of
    // one key/value pair (empty key, a one-byte value).
    let n_tensors = c.count("tensor", 8 + 4 + 4 + 8)?;
    let n_kv = c.count("metadata key/value", 8 + 4 + 1)?;

    let mut metadata = Metadata::default();
    for _ in 0..n_kv {
        let key_offset = c.pos as u64;
        let key = c.string(&|| "metadata key".into())?;
        let type_offset = c.pos as u64;
        let type_id = c.u32(&|| format!("type of metadata key {key:?}"))?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.clone(),
            type_id,
            offset: type_offset,
        })?;
        let value = read_value(&mut c, ty, &key, 0)?;
        if metadata.get(&key).is_some() {
            return Err(GgufError::DuplicateKey {
                key,
                offset: key_offset,
            });
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => {
            let a = v.as_i128().ok_or_else(|| GgufError::WrongType {
                key: "general.alignment".into(),
                expected: "an unsigned integer",
                found: v.type_description(),
            })?;
            let a = u64::try_from(a).map_err(|_| GgufError::WrongType {
                key: "general.alignment".into(),
                expected: "a non-negative integer",
                found: format!("{a}"),
            })?;
            if a == 0 || !a.is_power_of_two() {
                return Err(GgufError::BadAlignment { value: a });
            }
            a
        }
    };

    let mut tensors = Vec::with_capacity(capacity_within::<TensorInfo>(n_tensors, &c));
    let mut names: HashMap<String, ()> = HashMap::new();
    for i in 0..n_tensors {
        let t = read_tensor_info(&mut c, i)?;
        if names.insert(t.name.clone(), ()).is_some() {
            return Err(GgufError::DuplicateTensor { name: t.name });
        }
        tensors.push(t);
    }

    let end_of_infos = c.pos as u64;
    let data_offset = end_of_infos.div_ceil(alignment) * alignment;
    if !tensors.is_empty() && data_offset > bytes.len() as u64 {
        return Err(GgufError::Truncated {
            what: "padding before the tensor data".into(),
            offset: end_of_infos,
            needed: data_offset - end_of_infos,
            file_len: bytes.len() as u64,
        });
    }
    let data_len = (bytes.len() as u64).saturating_sub(data_offset);
    for t in &tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(GgufError::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        if t.offset
            .checked_add(t.size)
            .is_none_or(|end| end > data_len)
        {
            return Err(GgufError::TensorOutOfBounds {
                tensor: t.name.clone(),
                offset: t.offset,
                size: t.size,
                data_len,
            });
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

/// A capacity for `n` items (already checked against the remaining bytes)
/// whose allocation is no larger than those bytes; a `Vec` grows past it only
/// as items are actually read.
fn capacity_within<T>(n: u64, c: &Cursor<'_>) -> usize {
    let fits = c.remaining() / std::mem::size_of::<T>().max(1) as u64;
    n.min(fits) as usize
}

fn read_value(c: &mut Cursor<'_>, ty: ValueType, key: &str, depth: usize) -> Result<Value> {
    let what = || format!("value of metadata key {key:?}");
    Ok(match ty {
        ValueType::U8 => Value::U8(c.array::<1>(&what)?[0]),
        ValueType::I8 => Value::I8(c.array::<1>(&what)?[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(&what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(c.array(&what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(&what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(&what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(c.array(&what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(&what)?)),
        // One byte, 0 or 1 (the GGUF spec): any other byte is damage, not
        // a truth value.
        ValueType::Bool => {
            let offset = c.pos as u64;
            match c.array::<1>(&what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                byte => {
                    return Err(GgufError::BadBool {
                        key: key.into(),
                        byte,
                        offset,
                    })
                }
            }
        }
        ValueType::String => Value::String(c.string(&what)?),
        ValueType::Array => {
            let offset = c.pos as u64;
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::NestingTooDeep {
                    key: key.into(),
                    max: MAX_ARRAY_DEPTH,
                    offset,
                });
            }
            let elem_id = c.u32(&|| format!("element type of array {key:?}"))?;
            let elem = ValueType::from_id(elem_id).ok_or_else(|| GgufError::UnknownValueType {
                key: key.into(),
                type_id: elem_id,
                offset,
            })?;
            let n = c.count("array element", elem.min_bytes())?;
            let mut items = Vec::with_capacity(capacity_within::<Value>(n, c));
            for _ in 0..n {
                items.push(read_value(c, elem, key, depth + 1)?);
            }
            Value::Array(elem, items)
        }
    })
}

fn read_tensor_info(c: &mut Cursor<'_>, index: u64) -> Result<TensorInfo> {
    let name_offset = c.pos as u64;
    let name = c
        .string(&|| format!("name of tensor #{index}"))
        .map_err(|e| match e {
            GgufError::NotUtf8 { .. } => GgufError::NotUtf8 {
                what: format!("name of tensor #{index}"),
                offset: name_offset + 8,
            },
            e => e,
        })?;
    let n_dims = c.u32(&|| format!("dim count of tensor {name:?}"))?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name,
            n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(c.u64(&|| format!("dim {d} of tensor {name:?}"))?);
    }
    let type_id = c.u32(&|| format!("type of tensor {name:?}"))?;
    let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
        tensor: name.clone(),
        type_id,
    })?;
    let offset = c.u64(&|| format!("data offset of tensor {name:?}"))?;
    // Zero dims are skipped so that no partial product (row count, element
    // count of any sub-shape) can overflow either: [0, 2^40, 2^40] has zero
    // elements but 2^80 "rows" (found by fuzzing).
    dims.iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| GgufError::ShapeOverflow {
            tensor: name.clone(),
            dims: dims.clone(),
        })?;
    let n_elements: u64 = dims.iter().product();
    let row_len = dims.first().copied().unwrap_or(1);
    if !row_len.is_multiple_of(ty.block_len() as u64) {
        return Err(GgufError::RowNotBlockMultiple {
            tensor: name,
            ty,
            row_len,
            block_len: ty.block_len(),
        });
    }
    let size = ty
        .bytes_for(n_elements)
        .ok_or_else(|| GgufError::ShapeOverflow {
            tensor: name.clone(),
            dims: dims.clone(),
        })?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        size,
    })
}
