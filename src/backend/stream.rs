//! Streams (ordered queues of device work) and events (timestamps in them).

use std::sync::Arc;

use super::buffer::{DeviceBuffer, DevicePtr};
use super::driver_api::Handle;
use super::error::{BackendError, Result};
use super::gpu::Gpu;
use super::pinned::PinnedBuffer;

/// `CU_STREAM_NON_BLOCKING` / `hipStreamNonBlocking`: no implicit
/// synchronisation with the legacy default stream.
const NON_BLOCKING: u32 = 1;

/// An owned stream.
pub struct Stream {
    gpu: Arc<Gpu>,
    pub(crate) handle: Handle,
}

// SAFETY: stream handles may be used from any thread of the process; the
// driver serialises work submitted to one stream.
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Stream {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Stream> {
        let api = gpu.api();
        let mut handle: Handle = std::ptr::null_mut();
        gpu.call("stream_create", || unsafe {
            (api.fns.stream_create)(&mut handle, NON_BLOCKING)
        })?;
        Ok(Stream {
            gpu: gpu.clone(),
            handle,
        })
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Waits until all work queued on this stream is done; a fault of an
    /// earlier launch is reported here.
    pub fn synchronize(&self) -> Result<()> {
        let api = self.gpu.api();
        self.gpu.call("stream_synchronize", || unsafe {
            (api.fns.stream_synchronize)(self.handle)
        })
    }

    /// Queues a copy of `data` to `dst` (`dst` must have `data.len()` bytes
    /// there; the caller guarantees it, as for a kernel argument) and waits
    /// for it, so `data` may be reused at once.
    ///
    /// # Safety
    /// `dst..dst+data.len()` must be device memory that stays allocated.
    pub unsafe fn upload(&self, dst: DevicePtr, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let api = self.gpu.api();
        self.gpu.call("memcpy_htod_async", || unsafe {
            (api.fns.memcpy_htod_async)(dst.0, data.as_ptr().cast(), data.len(), self.handle)
        })?;
        self.synchronize()
    }

    /// Copies `data` into `buf` at `offset` in stream order, waiting for it.
    pub fn upload_to(&self, buf: &mut DeviceBuffer, offset: usize, data: &[u8]) -> Result<()> {
        check_range("stream upload into device buffer", buf, offset, data.len())?;
        // SAFETY: the range was checked against the owned buffer.
        unsafe { self.upload(buf.ptr().offset(offset), data) }
    }

    /// Queues a copy of all of `src` into `dst` at `offset` and returns at
    /// once: nothing waits, and the copy runs in stream order.
    ///
    /// # Safety
    /// `src` must not be written or dropped until the stream has passed the
    /// copy (a later [`synchronize`](Self::synchronize), or a synchronous
    /// download on this stream); `dst` must stay allocated until then.
    pub unsafe fn upload_pinned(
        &self,
        dst: &mut DeviceBuffer,
        offset: usize,
        src: &PinnedBuffer,
    ) -> Result<()> {
        check_range("pinned upload into device buffer", dst, offset, src.len())?;
        let api = self.gpu.api();
        let at = dst.ptr().offset(offset);
        self.gpu.call("memcpy_htod_async", || unsafe {
            (api.fns.memcpy_htod_async)(at.0, src.host_ptr(), src.len(), self.handle)
        })
    }

    /// Copies `out.len()` bytes from `src` after the stream's queued work.
    ///
    /// # Safety
    /// `src..src+out.len()` must be allocated device memory.
    pub unsafe fn download(&self, src: DevicePtr, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let api = self.gpu.api();
        self.gpu.call("memcpy_dtoh_async", || unsafe {
            (api.fns.memcpy_dtoh_async)(out.as_mut_ptr().cast(), src.0, out.len(), self.handle)
        })?;
        self.synchronize()
    }

    /// Reads `buf[offset..offset+out.len()]` in stream order.
    pub fn download_from(&self, buf: &DeviceBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        check_range("stream download from device buffer", buf, offset, out.len())?;
        // SAFETY: the range was checked against the owned buffer.
        unsafe { self.download(buf.ptr().offset(offset), out) }
    }

    /// Queues filling `words` 32-bit words at `dst` with `value` (e.g. NaN
    /// bits to poison outputs before a test).
    ///
    /// # Safety
    /// `dst..dst+4*words` must be allocated device memory.
    pub unsafe fn fill_u32(&self, dst: DevicePtr, value: u32, words: usize) -> Result<()> {
        let api = self.gpu.api();
        self.gpu.call("memset_d32_async", || unsafe {
            (api.fns.memset_d32_async)(dst.0, value, words, self.handle)
        })
    }

    /// Fills the whole buffer with a repeated 32-bit word.
    pub fn fill_buffer_u32(&self, buf: &mut DeviceBuffer, value: u32) -> Result<()> {
        if !buf.len().is_multiple_of(4) {
            return Err(BackendError::Invalid(format!(
                "{}-byte buffer is not whole words",
                buf.len()
            )));
        }
        // SAFETY: the whole owned buffer.
        unsafe { self.fill_u32(buf.ptr(), value, buf.len() / 4) }
    }

    /// Queues zeroing `bytes` bytes at `dst`.
    ///
    /// # Safety
    /// `dst..dst+bytes` must be allocated device memory.
    pub unsafe fn zero(&self, dst: DevicePtr, bytes: usize) -> Result<()> {
        let api = self.gpu.api();
        self.gpu.call("memset_d8_async", || unsafe {
            (api.fns.memset_d8_async)(dst.0, 0, bytes, self.handle)
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let api = self.gpu.api();
        if let Err(e) = self.gpu.call("stream_destroy", || unsafe {
            (api.fns.stream_destroy)(self.handle)
        }) {
            tracing::warn!("destroying a stream: {e}");
        }
    }
}

/// An owned event, for timing device work.
pub struct Event {
    gpu: Arc<Gpu>,
    handle: Handle,
}

// SAFETY: as for streams.
unsafe impl Send for Event {}
unsafe impl Sync for Event {}

impl Event {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Event> {
        let api = gpu.api();
        let mut handle: Handle = std::ptr::null_mut();
        gpu.call("event_create", || unsafe {
            (api.fns.event_create)(&mut handle, 0)
        })?;
        Ok(Event {
            gpu: gpu.clone(),
            handle,
        })
    }

    /// Marks the point in `stream` after all work queued so far.
    pub fn record(&self, stream: &Stream) -> Result<()> {
        let api = self.gpu.api();
        self.gpu.call("event_record", || unsafe {
            (api.fns.event_record)(self.handle, stream.handle)
        })
    }

    pub fn synchronize(&self) -> Result<()> {
        let api = self.gpu.api();
        self.gpu.call("event_synchronize", || unsafe {
            (api.fns.event_synchronize)(self.handle)
        })
    }

    /// Milliseconds from `start` to this event (both recorded, this one done).
    pub fn elapsed_ms_since(&self, start: &Event) -> Result<f32> {
        let api = self.gpu.api();
        let mut ms = 0f32;
        self.gpu.call("event_elapsed", || unsafe {
            (api.fns.event_elapsed)(&mut ms, start.handle, self.handle)
        })?;
        Ok(ms)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let api = self.gpu.api();
        if let Err(e) = self.gpu.call("event_destroy", || unsafe {
            (api.fns.event_destroy)(self.handle)
        }) {
            tracing::warn!("destroying an event: {e}");
        }
    }
}

/// `buf[offset..offset+n]` lies inside the buffer, else a size mismatch
/// naming `what` (the bytes the buffer has from `offset` against `n`).
fn check_range(what: &'static str, buf: &DeviceBuffer, offset: usize, n: usize) -> Result<()> {
    if offset.checked_add(n).is_none_or(|e| e > buf.len()) {
        return Err(BackendError::SizeMismatch {
            what,
            expected: buf.len().saturating_sub(offset.min(buf.len())),
            found: n,
        });
    }
    Ok(())
}
