//! An opened GGUF file: the mapped bytes plus the parsed header.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{GgufError, Result};
use super::metadata::Metadata;
use super::parse::{parse_header, Header};
use super::tensor::{TensorInfo, TensorView};

/// The file's bytes: mapped from disk, or owned (tests, fuzzing, generated files).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file whose tensor data is read in place, without copies.
pub struct GgufFile {
    path: Option<PathBuf>,
    bytes: Bytes,
    header: Header,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        // A FIFO would block the open; a device or directory cannot be a model.
        super::file_kind::require_regular_input(path).map_err(io)?;
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; like every mmap reader we rely on the
        // file not being truncated while it is open.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_bytes_inner(Some(path.to_path_buf()), Bytes::Mapped(map))
    }

    /// Parses a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes_inner(None, Bytes::Owned(bytes))
    }

    fn from_bytes_inner(path: Option<PathBuf>, bytes: Bytes) -> Result<Self> {
        let header = parse_header(bytes.as_slice())?;
        let by_name = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path,
            bytes,
            header,
            by_name,
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn version(&self) -> u32 {
        self.header.version
    }

    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    pub fn file_len(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Lets the kernel drop this process's resident pages of
    /// `start..start + len` (whole 64 KiB runs inside it) where the file is
    /// mapped: for bytes already copied elsewhere, which would otherwise
    /// stay resident twice. A later read maps them in again from the file.
    pub fn release_range(&self, start: usize, len: usize) {
        let Bytes::Mapped(map) = &self.bytes else {
            return;
        };
        // A multiple of every page size in use (4, 16 and 64 KiB).
        let page = 64 << 10;
        let (lo, hi) = (start.next_multiple_of(page), (start + len) / page * page);
        if hi <= lo || hi > map.len() {
            return;
        }
        // SAFETY: the map is private and read-only, never written, so
        // dropping its pages loses nothing: they read back from the file.
        let r =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, lo, hi - lo) };
        if let Err(e) = r {
            tracing::debug!(%e, "madvise(DONTNEED) on copied weights refused");
        }
    }

    /// `general.architecture`, if present.
    pub fn architecture(&self) -> Option<&str> {
        self.metadata().get_str("general.architecture").ok()
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.header.tensors[i])
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// A zero-copy view of a tensor's data (bounds were checked when parsing).
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor { name: name.into() })?;
        Ok(self.view(info))
    }

    /// A view of the tensor described by `info`, which must come from this file.
    pub fn view<'a>(&'a self, info: &'a TensorInfo) -> TensorView<'a> {
        let start = (self.header.data_offset + info.offset) as usize;
        TensorView {
            info,
            data: &self.bytes.as_slice()[start..start + info.size as usize],
        }
    }
}
