//! The GGUF writer: a builder for metadata and tensors that writes the file in
//! one pass, in order, so tensor data can be streamed from its producer.
//!
//! Layout (GGUF v2/v3, little-endian): header (magic, version, tensor count,
//! key/value count), metadata, tensor infos, zero padding to the alignment,
//! then each tensor's data followed by zero padding to the alignment. Offsets
//! in the tensor infos are relative to the start of the data section.
//!
//! Everything written is checked so that our own parser accepts the result:
//! unique keys and names, homogeneous arrays no deeper than the parser allows,
//! at most four dims, whole blocks per row, and data of exactly the right size.

use std::io::Write;
use std::path::Path;

use super::error::{GgufError, Result};
use super::metadata::Metadata;
use super::parse::{DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS};
use super::tensor::TensorInfo;
use super::value::Value;
use crate::quant::GgmlType;

const ALIGNMENT_KEY: &str = "general.alignment";

/// Builds a GGUF file. Tensors are laid out in the order they are added.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    /// The data of each tensor added with [`GgufWriter::add_tensor`]; `None`
    /// for tensors declared to be streamed later.
    data: Vec<Option<Vec<u8>>>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty GGUF v3 file with ggml's default alignment (32).
    pub fn new() -> Self {
        Self {
            version: 3,
            metadata: Metadata::default(),
            tensors: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Writes GGUF version `version` (2 or 3; their little-endian layouts are
    /// identical, v3 only added big-endian files).
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self> {
        if version != 2 && version != 3 {
            return Err(GgufError::Write(format!(
                "cannot write GGUF version {version} (2 and 3 are supported)"
            )));
        }
        self.version = version;
        Ok(self)
    }

    /// Sets `general.alignment` (a u32, as the spec says). Must come before
    /// the first tensor, whose offsets depend on it.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self> {
        self.add_metadata(ALIGNMENT_KEY, Value::U32(alignment))
    }

    /// The alignment of the data section and of every tensor in it.
    pub fn alignment(&self) -> u64 {
        self.metadata
            .get(ALIGNMENT_KEY)
            .and_then(Value::as_i128)
            .map_or(DEFAULT_ALIGNMENT, |a| a as u64)
    }

    /// Adds a metadata key. Fails on a duplicate key, an array whose elements
    /// do not all have its element type, arrays nested deeper than the parser
    /// accepts, or an invalid `general.alignment`.
    pub fn add_metadata(&mut self, key: &str, value: impl Into<Value>) -> Result<&mut Self> {
        let value = value.into();
        if self.metadata.get(key).is_some() {
            return Err(GgufError::Write(format!(
                "metadata key {key:?} added twice"
            )));
        }
        check_value(key, &value, 0)?;
        if key == ALIGNMENT_KEY {
            check_alignment(&value, !self.tensors.is_empty())?;
        }
        self.metadata.insert(key, value);
        Ok(self)
    }

    /// Adds a tensor with its data. `dims` are in GGUF order (`dims[0]` is the
    /// row length); `data` must be exactly the bytes `ty` needs for them.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        data: impl Into<Vec<u8>>,
    ) -> Result<&mut Self> {
        let data = data.into();
        self.declare_tensor(name, dims, ty)?;
        let size = self.tensors.last().map_or(0, |t| t.size);
        if data.len() as u64 != size {
            self.tensors.pop();
            return Err(GgufError::Write(format!(
                "tensor {name:?}: {} bytes of data, {ty} {dims:?} needs {size}",
                data.len()
            )));
        }
        *self.data.last_mut().expect("declared above") = Some(data);
        Ok(self)
    }

    /// Adds a tensor whose data will be given later to the
    /// [`TensorDataWriter`] returned by [`GgufWriter::begin`].
    pub fn declare_tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> Result<&mut Self> {
        let fail = |why: String| Err(GgufError::Write(format!("tensor {name:?}: {why}")));
        if self.tensors.iter().any(|t| t.name == name) {
            return fail("added twice".into());
        }
        if dims.len() > MAX_DIMS as usize {
            return fail(format!("{} dims, at most {MAX_DIMS}", dims.len()));
        }
        let row_len = dims.first().copied().unwrap_or(1);
        if !row_len.is_multiple_of(ty.block_len() as u64) {
            return fail(format!(
                "row length {row_len} is not a multiple of the {ty} block size {}",
                ty.block_len()
            ));
        }
        let size = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| ty.bytes_for(n))
            .ok_or_else(|| GgufError::Write(format!("tensor {name:?}: dims {dims:?} overflow")))?;
        let offset = match self.tensors.last() {
            Some(t) => align(t.offset + t.size, self.alignment()),
            None => 0,
        };
        self.tensors.push(TensorInfo {
            name: name.into(),
            dims: dims.to_vec(),
            ty,
            offset,
            size,
        });
        self.data.push(None);
        Ok(self)
    }

    /// The tensor table as it will be written (offsets relative to the data
    /// section).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The bytes before the data section (header, metadata, tensor infos,
    /// padding): the absolute offset of the data section.
    pub fn data_offset(&self) -> u64 {
        let mut n = CountingWriter(0);
        self.write_header_unpadded(&mut n)
            .expect("counting never fails");
        align(n.0, self.alignment())
    }

    /// The length of the whole file.
    pub fn file_len(&self) -> u64 {
        let data_len = self
            .tensors
            .last()
            .map_or(0, |t| align(t.offset + t.size, self.alignment()));
        self.data_offset() + data_len
    }

    /// Writes the header and returns a writer that takes each tensor's data in
    /// order. Data stored by `add_tensor` is not written by this path.
    pub fn begin<W: Write>(&self, mut out: W) -> Result<TensorDataWriter<'_, W>> {
        let mut counted = CountingWriter(0);
        self.write_header_unpadded(&mut counted)?;
        self.write_header_unpadded(&mut out)?;
        write_zeros(&mut out, align(counted.0, self.alignment()) - counted.0)?;
        Ok(TensorDataWriter {
            tensors: &self.tensors,
            alignment: self.alignment(),
            next: 0,
            out,
        })
    }

    /// Writes the whole file; every tensor must have been added with data.
    pub fn write_to<W: Write>(&self, out: W) -> Result<W> {
        let mut stream = self.begin(out)?;
        for (t, data) in self.tensors.iter().zip(&self.data) {
            let data = data.as_deref().ok_or_else(|| {
                GgufError::Write(format!(
                    "tensor {:?} was declared without data; stream it through begin()",
                    t.name
                ))
            })?;
            stream.write_tensor(&t.name, data)?;
        }
        stream.finish()
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.file_len() as usize);
        self.write_to(&mut v)?;
        Ok(v)
    }

    /// Writes the whole file to `path`.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        super::file_kind::check_output(path)?;
        let file = std::fs::File::create(path).map_err(io)?;
        let out = self
            .write_to(std::io::BufWriter::new(file))
            .map_err(|e| match e {
                GgufError::Output(source) => io(source),
                e => e,
            })?;
        out.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)
    }

    fn write_header_unpadded<W: Write>(&self, out: &mut W) -> Result<()> {
        out.write_all(&MAGIC)?;
        out.write_all(&self.version.to_le_bytes())?;
        out.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        out.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in self.metadata.iter() {
            write_str(out, key)?;
            out.write_all(&(value.value_type() as u32).to_le_bytes())?;
            write_value(out, value)?;
        }
        for t in &self.tensors {
            write_str(out, &t.name)?;
            out.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                out.write_all(&d.to_le_bytes())?;
            }
            out.write_all(&t.ty.id().to_le_bytes())?;
            out.write_all(&t.offset.to_le_bytes())?;
        }
        Ok(())
    }
}

/// Takes tensor data in table order after the header has been written, and
/// pads each tensor to the alignment.
pub struct TensorDataWriter<'a, W: Write> {
    tensors: &'a [TensorInfo],
    alignment: u64,
    next: usize,
    out: W,
}

impl<W: Write> TensorDataWriter<'_, W> {
    /// Writes the data of the next tensor, which must be `name`.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let t = self.tensors.get(self.next).ok_or_else(|| {
            GgufError::Write(format!("tensor {name:?}: all tensors are already written"))
        })?;
        if t.name != name {
            return Err(GgufError::Write(format!(
                "tensor {name:?} given where {:?} comes next",
                t.name
            )));
        }
        if data.len() as u64 != t.size {
            return Err(GgufError::Write(format!(
                "tensor {name:?}: {} bytes of data, {} needed",
                data.len(),
                t.size
            )));
        }
        self.out.write_all(data)?;
        write_zeros(&mut self.out, align(t.size, self.alignment) - t.size)?;
        self.next += 1;
        Ok(())
    }

    /// Checks that every tensor was written, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W> {
        if let Some(t) = self.tensors.get(self.next) {
            return Err(GgufError::Write(format!(
                "finished before the data of tensor {:?}",
                t.name
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn align(n: u64, alignment: u64) -> u64 {
    n.div_ceil(alignment) * alignment
}

fn check_alignment(value: &Value, has_tensors: bool) -> Result<()> {
    let ok = matches!(value, Value::U32(a) if a.is_power_of_two());
    if !ok {
        return Err(GgufError::Write(format!(
            "{ALIGNMENT_KEY} must be a u32 power of two, not {value:?}"
        )));
    }
    if has_tensors {
        return Err(GgufError::Write(format!(
            "{ALIGNMENT_KEY} must be set before the first tensor"
        )));
    }
    Ok(())
}

fn check_value(key: &str, value: &Value, depth: usize) -> Result<()> {
    let Value::Array(elem, items) = value else {
        return Ok(());
    };
    if depth >= MAX_ARRAY_DEPTH {
        return Err(GgufError::Write(format!(
            "metadata key {key:?}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
        )));
    }
    for item in items {
        if item.value_type() != *elem {
            return Err(GgufError::Write(format!(
                "metadata key {key:?}: array of {} holds a {}",
                elem.name(),
                item.value_type().name()
            )));
        }
        check_value(key, item, depth + 1)?;
    }
    Ok(())
}

fn write_str<W: Write>(out: &mut W, s: &str) -> std::io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

/// The value's bytes without its type tag (array elements carry none).
fn write_value<W: Write>(out: &mut W, value: &Value) -> std::io::Result<()> {
    match value {
        Value::U8(v) => out.write_all(&[*v]),
        Value::I8(v) => out.write_all(&v.to_le_bytes()),
        Value::U16(v) => out.write_all(&v.to_le_bytes()),
        Value::I16(v) => out.write_all(&v.to_le_bytes()),
        Value::U32(v) => out.write_all(&v.to_le_bytes()),
        Value::I32(v) => out.write_all(&v.to_le_bytes()),
        Value::F32(v) => out.write_all(&v.to_le_bytes()),
        Value::Bool(v) => out.write_all(&[*v as u8]),
        Value::String(s) => write_str(out, s),
        Value::Array(elem, items) => {
            out.write_all(&(*elem as u32).to_le_bytes())?;
            out.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|i| write_value(out, i))
        }
        Value::U64(v) => out.write_all(&v.to_le_bytes()),
        Value::I64(v) => out.write_all(&v.to_le_bytes()),
        Value::F64(v) => out.write_all(&v.to_le_bytes()),
    }
}

fn write_zeros<W: Write>(out: &mut W, n: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 64] = [0; 64];
    let mut left = n;
    while left > 0 {
        let k = left.min(ZEROS.len() as u64);
        out.write_all(&ZEROS[..k as usize])?;
        left -= k;
    }
    Ok(())
}

/// Counts bytes, to size the header without building it.
struct CountingWriter(u64);

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::ValueType;

    #[test]
    fn empty_file_is_header_only_padded_to_alignment() {
        let bytes = GgufWriter::new().to_bytes().unwrap();
        // 4 magic + 4 version + 8 + 8 counts = 24, padded to 32.
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
    }

    #[test]
    fn tensor_offsets_are_padded_to_the_alignment() {
        let mut w = GgufWriter::new();
        w.add_tensor("a", &[3], GgmlType::F32, vec![0u8; 12])
            .unwrap();
        w.add_tensor("b", &[1], GgmlType::F32, vec![0u8; 4])
            .unwrap();
        assert_eq!(w.tensors()[1].offset, 32);
        assert_eq!(w.file_len() - w.data_offset(), 64);
    }

    #[test]
    fn wrong_data_size_is_refused_and_leaves_no_tensor() {
        let mut w = GgufWriter::new();
        assert!(w
            .add_tensor("a", &[3], GgmlType::F32, vec![0u8; 8])
            .is_err());
        assert!(w.tensors().is_empty());
    }

    #[test]
    fn mixed_array_is_refused() {
        let mut w = GgufWriter::new();
        let bad = Value::Array(ValueType::U32, vec![Value::U32(1), Value::I32(2)]);
        assert!(w.add_metadata("k", bad).is_err());
    }

    #[test]
    fn streamed_tensors_must_come_in_order() {
        let mut w = GgufWriter::new();
        w.declare_tensor("a", &[1], GgmlType::F32).unwrap();
        w.declare_tensor("b", &[1], GgmlType::F32).unwrap();
        let mut s = w.begin(Vec::new()).unwrap();
        assert!(s.write_tensor("b", &[0; 4]).is_err());
        s.write_tensor("a", &[0; 4]).unwrap();
        s.write_tensor("b", &[0; 4]).unwrap();
        let bytes = s.finish().unwrap();
        assert_eq!(bytes.len() as u64, w.file_len());
    }
}
