//! Device memory with exactly one owner.
//!
//! A [`DeviceBuffer`] frees its memory when dropped and cannot be cloned: a
//! copy is [`DeviceBuffer::duplicate`], which allocates. Kernels address
//! memory through [`DevicePtr`] values (plain addresses, e.g. an offset in
//! the activation arena), which never own anything.

use std::sync::Arc;

use bytemuck::Pod;

use super::error::{BackendError, Result};
use super::fault::{self, FaultPoint};
use super::gpu::Gpu;

/// A device address: what kernels receive. Copyable, owns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DevicePtr(pub u64);

impl DevicePtr {
    pub const NULL: DevicePtr = DevicePtr(0);

    pub fn is_null(self) -> bool {
        self == DevicePtr::NULL
    }

    /// The address `bytes` further on.
    pub fn offset(self, bytes: usize) -> DevicePtr {
        DevicePtr(self.0 + bytes as u64)
    }
}

/// An owned device allocation.
pub struct DeviceBuffer {
    gpu: Arc<Gpu>,
    ptr: u64,
    bytes: usize,
}

impl DeviceBuffer {
    /// Allocates `bytes` (uninitialised). Zero bytes allocate nothing.
    pub fn new(gpu: &Arc<Gpu>, bytes: usize) -> Result<DeviceBuffer> {
        let api = gpu.api();
        let mut ptr = 0u64;
        if bytes > 0 {
            if fault::fires(FaultPoint::Alloc, "") {
                return Err(BackendError::OutOfMemory {
                    call: api.call_name("mem_alloc"),
                    bytes,
                    detail: "injected fault (RFC_FAULT=alloc)".into(),
                });
            }
            gpu.bind()?;
            let code = unsafe { (api.fns.mem_alloc)(&mut ptr, bytes) };
            if code == gpu.vendor().oom_code() {
                let free = gpu.memory_info().map(|m| m.0).unwrap_or(0);
                return Err(BackendError::OutOfMemory {
                    call: api.call_name("mem_alloc"),
                    bytes,
                    detail: format!("{} bytes free", free),
                });
            }
            api.check("mem_alloc", code)?;
        }
        Ok(DeviceBuffer {
            gpu: gpu.clone(),
            ptr,
            bytes,
        })
    }

    /// Allocates and fills with `data`.
    pub fn from_slice<T: Pod>(gpu: &Arc<Gpu>, data: &[T]) -> Result<DeviceBuffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let mut b = DeviceBuffer::new(gpu, bytes.len())?;
        b.write(0, bytes)?;
        Ok(b)
    }

    pub fn ptr(&self) -> DevicePtr {
        DevicePtr(self.ptr)
    }

    /// The address `offset` bytes in, checked against the buffer's size.
    pub fn at(&self, offset: usize) -> Result<DevicePtr> {
        if offset > self.bytes {
            return Err(BackendError::Invalid(format!(
                "offset {offset} past the end of a {}-byte buffer",
                self.bytes
            )));
        }
        Ok(DevicePtr(self.ptr + offset as u64))
    }

    pub fn len(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Copies `data` to `offset..offset+len`, after all queued device work
    /// (the copy is synchronous and ordered after every stream).
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range("write to device buffer", offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.gpu.synchronize()?;
        let api = self.gpu.api();
        self.gpu.call("memcpy_htod", || unsafe {
            (api.fns.memcpy_htod)(self.ptr + offset as u64, data.as_ptr().cast(), data.len())
        })
    }

    /// Copies `offset..offset+out.len()` to `out`, after all queued work.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        self.check_range("read from device buffer", offset, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        self.gpu.synchronize()?;
        let api = self.gpu.api();
        self.gpu.call("memcpy_dtoh", || unsafe {
            (api.fns.memcpy_dtoh)(out.as_mut_ptr().cast(), self.ptr + offset as u64, out.len())
        })
    }

    /// The whole buffer as a vector of `T`; the size must be whole `T`s.
    pub fn to_vec<T: Pod>(&self) -> Result<Vec<T>> {
        let n = std::mem::size_of::<T>();
        if !self.bytes.is_multiple_of(n) {
            return Err(BackendError::SizeMismatch {
                what: "device buffer read as whole elements",
                expected: self.bytes / n * n,
                found: self.bytes,
            });
        }
        let mut v = vec![T::zeroed(); self.bytes / n];
        self.read(0, bytemuck::cast_slice_mut(&mut v))?;
        Ok(v)
    }

    /// Reads exactly `out.len()` elements: the buffer must hold that many.
    pub fn read_exact<T: Pod>(&self, out: &mut [T]) -> Result<()> {
        let want = std::mem::size_of_val(out);
        if want != self.bytes {
            return Err(BackendError::SizeMismatch {
                what: "read of a whole device buffer",
                expected: self.bytes,
                found: want,
            });
        }
        self.read(0, bytemuck::cast_slice_mut(out))
    }

    /// A new buffer with the same contents (an explicit allocation).
    pub fn duplicate(&self) -> Result<DeviceBuffer> {
        let b = DeviceBuffer::new(&self.gpu, self.bytes)?;
        if self.bytes > 0 {
            self.gpu.synchronize()?;
            let api = self.gpu.api();
            self.gpu.call("memcpy_dtod", || unsafe {
                (api.fns.memcpy_dtod)(b.ptr, self.ptr, self.bytes)
            })?;
            self.gpu.synchronize()?;
        }
        Ok(b)
    }

    fn check_range(&self, what: &'static str, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes => Ok(()),
            _ => Err(BackendError::SizeMismatch {
                what,
                expected: self.bytes.saturating_sub(offset.min(self.bytes)),
                found: len,
            }),
        }
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.ptr == 0 {
            return;
        }
        let api = self.gpu.api();
        if let Err(e) = self
            .gpu
            .call("mem_free", || unsafe { (api.fns.mem_free)(self.ptr) })
        {
            tracing::warn!("freeing {} device bytes: {e}", self.bytes);
        }
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({:#x}, {} bytes)", self.ptr, self.bytes)
    }
}
