//! A model's layout — metadata and tensor table — read from the JSON that
//! `rfc inspect MODEL.gguf --json --full` prints, written back as a GGUF
//! file with random weights: same keys and values (the vocabulary too, so
//! the tokenizer works), same tensor names, types and shapes.
//!
//! The JSON keeps values but not their GGUF types, so types are chosen the
//! way llama.cpp's converters write them: integers u32 (i32 when negative,
//! 64-bit beyond 32 bits; the few keys ggml types otherwise are listed in
//! [`int_type`]), floats f32, tokenizer.ggml.token_type an i32 array.
//! Summarized arrays (`inspect` without `--full`) are refused, since their
//! items are gone.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value as J;

use super::blocks::{random_data, Values};
use super::error::SynthError;
use super::SynthRng;
use crate::gguf::{GgufError, GgufWriter, Value, ValueType};
use crate::quant::GgmlType;

/// One tensor of the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutTensor {
    pub name: String,
    /// GGUF order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

/// A model's metadata and tensor table, without data.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<LayoutTensor>,
}

impl Layout {
    /// Reads `rfc inspect --json --full` output from `path`.
    pub fn read(path: &Path) -> Result<Layout, SynthError> {
        let text = std::fs::read_to_string(path).map_err(|source| SynthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Layout::from_json(&text).map_err(|why| SynthError::Layout {
            path: path.to_path_buf(),
            why,
        })
    }

    /// Parses `rfc inspect --json --full` output.
    pub fn from_json(text: &str) -> Result<Layout, String> {
        let root: J = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let md = root
            .get("metadata")
            .and_then(J::as_object)
            .ok_or("no \"metadata\" object")?;
        let metadata = md
            .iter()
            .map(|(k, v)| Ok((k.clone(), metadata_value(k, v)?)))
            .collect::<Result<_, String>>()?;
        let tensors = root
            .get("tensors")
            .and_then(J::as_array)
            .ok_or("no \"tensors\" array")?
            .iter()
            .enumerate()
            .map(|(i, t)| layout_tensor(t).map_err(|why| format!("tensors[{i}]: {why}")))
            .collect::<Result<_, String>>()?;
        Ok(Layout { metadata, tensors })
    }

    /// A writer holding the metadata and the declared tensor table.
    pub fn gguf_header(&self) -> Result<GgufWriter, SynthError> {
        let mut w = GgufWriter::new();
        // The alignment must precede the tensors; metadata order is otherwise kept.
        for (k, v) in &self.metadata {
            w.add_metadata(k, v.clone())?;
        }
        for t in &self.tensors {
            w.declare_tensor(&t.name, &t.dims, t.ty)?;
        }
        Ok(w)
    }

    /// Writes the file to `out` with random weights drawn from `seed`.
    pub fn write<W: Write>(&self, seed: u64, out: W) -> Result<W, SynthError> {
        let header = self.gguf_header()?;
        let mut stream = header.begin(out)?;
        let root = SynthRng::new(seed);
        for t in &self.tensors {
            let n = t.dims.iter().product::<u64>() as usize;
            let data = random_data(&mut root.fork(&t.name), t.ty, n, tensor_values(t))
                .map_err(|e| e.in_tensor(&t.name))?;
            stream.write_tensor(&t.name, &data)?;
        }
        Ok(stream.finish()?)
    }

    /// Writes the file at `path`.
    pub fn write_file(&self, seed: u64, path: &Path) -> Result<(), SynthError> {
        let io = |source| GgufError::Io {
            path: PathBuf::from(path),
            source,
        };
        crate::gguf::file_kind::check_output(path)?;
        let file = std::fs::File::create(path).map_err(io)?;
        let out = self
            .write(seed, std::io::BufWriter::new(file))
            .map_err(|e| match e {
                SynthError::Gguf(GgufError::Output(source)) => io(source).into(),
                e => e,
            })?;
        out.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(())
    }
}

/// Norms near 1, biases small, rope frequency factors 1, matrices with a
/// spread of 1/sqrt(row length) kept within 0.01..0.1, so that values stay
/// O(0.01..0.1) and activations O(1).
fn tensor_values(t: &LayoutTensor) -> Values {
    let name = t.name.as_str();
    if name.starts_with("rope_freqs") {
        Values::normal(1.0, 0.0)
    } else if name.ends_with(".bias") {
        Values::normal(0.0, 0.01)
    } else if name.contains("norm") || t.dims.len() == 1 {
        Values::normal(1.0, 0.01)
    } else {
        let std = (t.dims[0] as f32).sqrt().recip().clamp(0.01, 0.1);
        Values::normal(0.0, std)
    }
}

fn layout_tensor(t: &J) -> Result<LayoutTensor, String> {
    let name = t.get("name").and_then(J::as_str).ok_or("no \"name\"")?;
    let ty_name = t.get("type").and_then(J::as_str).ok_or("no \"type\"")?;
    let ty = GgmlType::from_name(ty_name)
        .ok_or_else(|| format!("{name}: unknown tensor type {ty_name:?}"))?;
    let dims = t
        .get("shape")
        .and_then(J::as_array)
        .ok_or_else(|| format!("{name}: no \"shape\" array"))?
        .iter()
        .map(J::as_u64)
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| format!("{name}: shape is not a list of non-negative integers"))?;
    Ok(LayoutTensor {
        name: name.into(),
        dims,
        ty,
    })
}

/// The GGUF value of metadata key `key` printed as `j`.
fn metadata_value(key: &str, j: &J) -> Result<Value, String> {
    let elem = array_element_type(key);
    to_value(key, j, elem).map_err(|why| format!("metadata key {key:?}: {why}"))
}

fn to_value(key: &str, j: &J, array_elem: Option<ValueType>) -> Result<Value, String> {
    Ok(match j {
        J::Bool(b) => Value::Bool(*b),
        J::String(s) => Value::String(s.clone()),
        J::Number(n) => number_value(key, n, None)?,
        J::Array(items) => {
            let elem = array_elem.unwrap_or_else(|| infer_element_type(items));
            let values = items
                .iter()
                .map(|i| match (i, elem) {
                    (J::Number(n), ValueType::F32 | ValueType::F64) => {
                        Ok(Value::F32(n.as_f64().unwrap_or_default() as f32))
                    }
                    (J::Number(n), t) => number_value(key, n, Some(t)),
                    (i, _) => to_value(key, i, None),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(bad) = values.iter().find(|v| v.value_type() != elem) {
                return Err(format!(
                    "array of {} holds a {}",
                    elem.name(),
                    bad.type_description()
                ));
            }
            Value::Array(elem, values)
        }
        J::Object(o) if o.get("type").and_then(J::as_str) == Some("array") => {
            return Err(
                "the array is summarized; print the layout with `rfc inspect --json --full`".into(),
            )
        }
        other => return Err(format!("no GGUF value for JSON {other}")),
    })
}

/// Array element types converters write that inference would get wrong.
fn array_element_type(key: &str) -> Option<ValueType> {
    match key {
        "tokenizer.ggml.token_type" => Some(ValueType::I32),
        "tokenizer.ggml.scores" => Some(ValueType::F32),
        "tokenizer.ggml.tokens" | "tokenizer.ggml.merges" => Some(ValueType::String),
        _ => None,
    }
}

/// Strings, bools or nested arrays by their first item; numbers are f32 if
/// any is fractional, i32 if any is negative, else u32 (the empty array too).
fn infer_element_type(items: &[J]) -> ValueType {
    match items.first() {
        Some(J::String(_)) => ValueType::String,
        Some(J::Bool(_)) => ValueType::Bool,
        Some(J::Array(_)) => ValueType::Array,
        _ if items.iter().any(|i| i.is_f64()) => ValueType::F32,
        _ if items.iter().any(|i| i.as_i64().is_some_and(|v| v < 0)) => ValueType::I32,
        _ => ValueType::U32,
    }
}

fn number_value(key: &str, n: &serde_json::Number, ty: Option<ValueType>) -> Result<Value, String> {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        // Every float key llama.cpp reads is an f32; JSON holds its shortest decimal.
        return Ok(Value::F32(f as f32));
    }
    let i = n
        .as_i64()
        .map(i128::from)
        .or(n.as_u64().map(i128::from))
        .ok_or_else(|| format!("number {n} out of range"))?;
    let ty = ty.unwrap_or_else(|| int_type(key, i));
    let v = match ty {
        ValueType::U8 => u8::try_from(i).ok().map(Value::U8),
        ValueType::I8 => i8::try_from(i).ok().map(Value::I8),
        ValueType::U16 => u16::try_from(i).ok().map(Value::U16),
        ValueType::I16 => i16::try_from(i).ok().map(Value::I16),
        ValueType::U32 => u32::try_from(i).ok().map(Value::U32),
        ValueType::I32 => i32::try_from(i).ok().map(Value::I32),
        ValueType::U64 => u64::try_from(i).ok().map(Value::U64),
        ValueType::I64 => i64::try_from(i).ok().map(Value::I64),
        _ => None,
    };
    v.ok_or_else(|| format!("{i} does not fit a {}", ty.name()))
}

/// The integer type of a scalar key: ggml's split keys are u16/i32, every
/// other integer key llama.cpp reads is a u32.
fn int_type(key: &str, i: i128) -> ValueType {
    match key {
        "split.no" | "split.count" => ValueType::U16,
        "split.tensors.count" => ValueType::I32,
        _ if u32::try_from(i).is_ok() => ValueType::U32,
        _ if i32::try_from(i).is_ok() => ValueType::I32,
        _ if i >= 0 => ValueType::U64,
        _ => ValueType::I64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: &str = r#"{
        "metadata": {
            "general.architecture": "llama",
            "llama.block_count": 1,
            "llama.rope.freq_base": 500000.0,
            "llama.attention.layer_norm_rms_epsilon": 1e-5,
            "tokenizer.ggml.tokens": ["a", "b"],
            "tokenizer.ggml.token_type": [1, 3],
            "tokenizer.ggml.add_bos_token": true
        },
        "tensors": [
            {"name": "token_embd.weight", "type": "Q4_K", "shape": [256, 2], "offset": 0, "size": 288},
            {"name": "output_norm.weight", "type": "F32", "shape": [256]}
        ]
    }"#;

    #[test]
    fn values_get_the_types_converters_write() {
        let l = Layout::from_json(LAYOUT).unwrap();
        let get = |k: &str| {
            l.metadata
                .iter()
                .find(|(key, _)| key == k)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get("llama.block_count"), Value::U32(1));
        assert_eq!(
            get("llama.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5)
        );
        assert_eq!(
            get("tokenizer.ggml.token_type"),
            Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(3)])
        );
        assert_eq!(get("tokenizer.ggml.add_bos_token"), Value::Bool(true));
    }

    #[test]
    fn written_file_has_the_layout() {
        let l = Layout::from_json(LAYOUT).unwrap();
        let f = crate::gguf::GgufFile::from_bytes(l.write(0, Vec::new()).unwrap()).unwrap();
        let t = f.tensor("token_embd.weight").unwrap();
        assert_eq!(
            (t.info.ty, t.info.dims.clone()),
            (GgmlType::Q4_K, vec![256, 2])
        );
        assert_eq!(
            f.metadata().get_str("general.architecture").unwrap(),
            "llama"
        );
    }

    #[test]
    fn summarized_arrays_are_refused() {
        let j = r#"{"metadata": {"tokenizer.ggml.tokens":
            {"type": "array", "element_type": "string", "len": 100, "head": ["a"]}},
            "tensors": []}"#;
        let err = Layout::from_json(j).unwrap_err();
        assert!(err.contains("--full"), "{err}");
    }
}
