//! Page-locked host memory: what an asynchronous host-to-device copy may
//! read without the driver first staging it (and without the call waiting
//! for the copy). One owner, freed on drop, no `Clone`.

use std::ffi::c_void;
use std::sync::Arc;

use bytemuck::Pod;

use super::error::{BackendError, Result};
use super::gpu::Gpu;

/// An owned page-locked host allocation (`cuMemHostAlloc` /
/// `hipHostMalloc`), zeroed when made.
pub struct PinnedBuffer {
    gpu: Arc<Gpu>,
    ptr: *mut c_void,
    bytes: usize,
}

// SAFETY: plain host memory owned by this value; the driver allows it to
// be used and freed from any thread of the process.
unsafe impl Send for PinnedBuffer {}
unsafe impl Sync for PinnedBuffer {}

impl PinnedBuffer {
    /// Allocates `bytes` (at least one) of page-locked memory.
    pub fn new(gpu: &Arc<Gpu>, bytes: usize) -> Result<PinnedBuffer> {
        let bytes = bytes.max(1);
        let api = gpu.api();
        let mut ptr: *mut c_void = std::ptr::null_mut();
        gpu.call("mem_host_alloc", || unsafe {
            (api.fns.mem_host_alloc)(&mut ptr, bytes, 0)
        })?;
        if ptr.is_null() {
            return Err(BackendError::Invalid(format!(
                "{} returned a null pointer for {bytes} bytes",
                api.call_name("mem_host_alloc")
            )));
        }
        // SAFETY: `bytes` bytes were just allocated at `ptr`.
        unsafe { std::ptr::write_bytes(ptr.cast::<u8>(), 0, bytes) };
        Ok(PinnedBuffer {
            gpu: gpu.clone(),
            ptr,
            bytes,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: owned, initialised (zeroed at allocation) memory.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.bytes) }
    }

    /// The memory as whole `T`s (page-aligned, so any `T` fits its start).
    pub fn as_mut_slice<T: Pod>(&mut self) -> &mut [T] {
        let n = self.bytes / std::mem::size_of::<T>();
        // SAFETY: owned, initialised memory, exclusively borrowed; the
        // driver's allocation is page-aligned.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.bytes) };
        bytemuck::cast_slice_mut(&mut bytes[..n * std::mem::size_of::<T>()])
    }

    pub(crate) fn host_ptr(&self) -> *const c_void {
        self.ptr
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        // A queued copy may still read this memory: free it only once the
        // device is idle.
        if let Err(e) = self.gpu.synchronize() {
            tracing::warn!("before freeing pinned memory: {e}");
        }
        let api = self.gpu.api();
        if let Err(e) = self.gpu.call("mem_free_host", || unsafe {
            (api.fns.mem_free_host)(self.ptr)
        }) {
            tracing::warn!("freeing {} pinned host bytes: {e}", self.bytes);
        }
    }
}

impl std::fmt::Debug for PinnedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinnedBuffer({:p}, {} bytes)", self.ptr, self.bytes)
    }
}
