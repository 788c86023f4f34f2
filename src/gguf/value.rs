//! Metadata values: the thirteen GGUF value types, arrays included.

use std::fmt;

/// The type tag of a metadata value, as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The smallest number of bytes a value of this type takes in the file;
    /// used to reject counts the remaining bytes could not hold.
    pub fn min_bytes(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Element type and elements; nested arrays are arrays of `Value::Array`.
    Array(ValueType, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// A short description of the type for error messages (`array of u32`).
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(t, _) => format!("array of {}", t.name()),
            v => v.value_type().name().to_string(),
        }
    }

    /// The value as an integer, for any integer type (and bool).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v as i128,
            Value::I8(v) => v as i128,
            Value::U16(v) => v as i128,
            Value::I16(v) => v as i128,
            Value::U32(v) => v as i128,
            Value::I32(v) => v as i128,
            Value::U64(v) => v as i128,
            Value::I64(v) => v as i128,
            _ => return None,
        })
    }

    /// The value as a float, for float and integer types.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A JSON rendering (arrays in full).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            // The shortest decimal that reads back as the same f32 (1e-6,
            // not 9.999999974752427e-7).
            Value::F32(v) => json_float(v.to_string().parse().unwrap_or(*v as f64)),
            Value::F64(v) => json_float(*v),
            Value::Bool(b) => J::Bool(*b),
            Value::String(s) => J::String(s.clone()),
            Value::Array(_, items) => J::Array(items.iter().map(Value::to_json).collect()),
            v => {
                let i = v.as_i128().unwrap_or_default();
                if let Ok(u) = u64::try_from(i) {
                    J::from(u)
                } else {
                    J::from(i as i64)
                }
            }
        }
    }

    /// A one-line rendering where arrays longer than `max_items` are
    /// summarized by element type, length and first items.
    pub fn summary(&self, max_items: usize) -> String {
        match self {
            Value::Array(t, items) if items.len() > max_items => {
                let head: Vec<String> = items[..max_items]
                    .iter()
                    .map(|v| v.summary(max_items))
                    .collect();
                format!("[{}; {}] [{}, ...]", t.name(), items.len(), head.join(", "))
            }
            Value::Array(_, items) => {
                let all: Vec<String> = items.iter().map(|v| v.summary(max_items)).collect();
                format!("[{}]", all.join(", "))
            }
            Value::String(s) => format!("{s:?}"),
            v => v.to_string(),
        }
    }
}

fn json_float(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(v.to_string()))
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => f.write_str(s),
            Value::Array(..) => f.write_str(&self.summary(usize::MAX)),
            v => write!(f, "{}", v.as_i128().unwrap_or_default()),
        }
    }
}

/// Scalar Rust types that map to one GGUF value type; lets `Vec<T>` become a
/// typed array even when empty.
pub trait ValueElement: Into<Value> {
    const VALUE_TYPE: ValueType;
}

macro_rules! scalar_value {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v)
            }
        }
        impl ValueElement for $t {
            const VALUE_TYPE: ValueType = ValueType::$variant;
        }
    )*};
}

scalar_value!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    f32 => F32, bool => Bool, String => String, u64 => U64, i64 => I64, f64 => F64,
);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}

impl ValueElement for &str {
    const VALUE_TYPE: ValueType = ValueType::String;
}

impl<T: ValueElement> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Value::Array(T::VALUE_TYPE, items.into_iter().map(Into::into).collect())
    }
}

impl<T: ValueElement + Clone> From<&[T]> for Value {
    fn from(items: &[T]) -> Self {
        items.to_vec().into()
    }
}

impl Value {
    /// A JSON rendering where arrays longer than `max_items` become
    /// `{"type":"array","element_type":..,"len":..,"head":[first max_items]}`.
    pub fn to_json_summary(&self, max_items: usize) -> serde_json::Value {
        match self {
            Value::Array(t, items) if items.len() > max_items => serde_json::json!({
                "type": "array",
                "element_type": t.name(),
                "len": items.len(),
                "head": items[..max_items]
                    .iter()
                    .map(|v| v.to_json_summary(max_items))
                    .collect::<Vec<_>>(),
            }),
            Value::Array(_, items) => serde_json::Value::Array(
                items.iter().map(|v| v.to_json_summary(max_items)).collect(),
            ),
            v => v.to_json(),
        }
    }
}
