//! One opened GPU: its context, its properties, and the per-thread binding
//! every driver call needs.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::driver_api::{ContextFns, DriverApi, Handle};
use super::error::{BackendError, Result};
use super::rtc_api::RtcApi;
use super::vendor::{DeviceAttr, Vendor};

/// What the layer knows about a device.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub vendor: Vendor,
    pub ordinal: u32,
    pub name: String,
    /// The compile target: `sm_90` (NVIDIA) or `gfx1100` (AMD).
    pub arch: String,
    pub multiprocessors: u32,
    pub warp_size: u32,
    pub max_shared_per_block: u32,
    pub total_memory: usize,
    /// Peak memory bandwidth in bytes/s (memory clock × 2 × bus width),
    /// when the driver reports both; the denominator of `rfc bench`'s
    /// roofline.
    pub peak_bandwidth: Option<f64>,
    pub driver_version: String,
}

/// An opened device. Shared by `Arc`: every buffer, stream and module
/// holds one, so the context outlives them.
pub struct Gpu {
    api: &'static DriverApi,
    device: c_int,
    /// CUDA's primary context (null for HIP).
    ctx: Handle,
    /// Identifies this context in each thread's binding cache.
    id: u64,
    info: DeviceInfo,
}

// SAFETY: the primary context may be made current on any thread (bind does
// so before every call); all other fields are plain data.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

thread_local! {
    /// The `Gpu::id` last made current on this thread (0: none).
    static BOUND: Cell<u64> = const { Cell::new(0) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Gpu {
    /// Opens device `ordinal` of `vendor`: loads and initialises the driver
    /// (once per process), checks the device exists, retains its context.
    pub fn open(vendor: Vendor, ordinal: u32) -> Result<Arc<Gpu>> {
        let api = DriverApi::get(vendor)?;
        let mut count: c_int = 0;
        let code = unsafe { (api.fns.device_count)(&mut count) };
        if code != 0 {
            return Err(api.no_device_or_call("device_count", code));
        }
        if count <= 0 {
            return Err(BackendError::NoDevice {
                vendor,
                detail: format!("{} reports 0 devices", api.call_name("device_count")),
            });
        }
        if ordinal >= count as u32 {
            return Err(BackendError::NoSuchDevice {
                vendor,
                ordinal,
                count: count as u32,
            });
        }
        let mut device: c_int = 0;
        api.check("device_get", unsafe {
            (api.fns.device_get)(&mut device, ordinal as c_int)
        })?;
        let ctx = match api.ctx {
            ContextFns::Cuda { retain, .. } => {
                let mut ctx: Handle = std::ptr::null_mut();
                let code = unsafe { retain(&mut ctx, device) };
                if code != 0 {
                    return Err(api.call_error("cuDevicePrimaryCtxRetain", code));
                }
                ctx
            }
            ContextFns::Hip { .. } => std::ptr::null_mut(),
        };
        let mut gpu = Gpu {
            api,
            device,
            ctx,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            info: DeviceInfo {
                vendor,
                ordinal,
                name: String::new(),
                arch: String::new(),
                multiprocessors: 0,
                warp_size: 0,
                max_shared_per_block: 0,
                total_memory: 0,
                peak_bandwidth: None,
                driver_version: vendor.format_version(api.version),
            },
        };
        // From here a failure drops `gpu`, which releases the context.
        gpu.bind()?;
        gpu.read_info()?;
        tracing::info!(
            "opened {}:{} {} ({}, {} multiprocessors, {:.1} GiB, driver {})",
            vendor,
            ordinal,
            gpu.info.name,
            gpu.info.arch,
            gpu.info.multiprocessors,
            gpu.info.total_memory as f64 / (1u64 << 30) as f64,
            gpu.info.driver_version
        );
        Ok(Arc::new(gpu))
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn vendor(&self) -> Vendor {
        self.info.vendor
    }

    pub(crate) fn api(&self) -> &'static DriverApi {
        self.api
    }

    /// The vendor's runtime compiler.
    pub fn compiler(&self) -> Result<&'static RtcApi> {
        RtcApi::get(self.info.vendor)
    }

    /// Makes this device current on the calling thread (a no-op when it
    /// already is). Every method that calls the driver does this first.
    pub fn bind(&self) -> Result<()> {
        if BOUND.with(|b| b.get()) == self.id {
            return Ok(());
        }
        match self.api.ctx {
            ContextFns::Cuda { set_current, .. } => {
                let code = unsafe { set_current(self.ctx) };
                if code != 0 {
                    return Err(self.api.call_error("cuCtxSetCurrent", code));
                }
            }
            ContextFns::Hip { set_device, .. } => {
                let code = unsafe { set_device(self.device) };
                if code != 0 {
                    return Err(self.api.call_error("hipSetDevice", code));
                }
            }
        }
        BOUND.with(|b| b.set(self.id));
        Ok(())
    }

    /// Binds, then checks `f`'s result code as the driver call `field`.
    /// Each call is logged at trace level (`RUST_LOG=rocmforge::backend::gpu=trace`
    /// lists them, e.g. to count a step's synchronizing calls); kernel
    /// launches are not calls of this kind.
    pub(crate) fn call(&self, field: &'static str, f: impl FnOnce() -> c_int) -> Result<()> {
        self.bind()?;
        tracing::trace!(call = self.api.call_name(field), "driver call");
        self.api.check(field, f())
    }

    /// Free and total device memory in bytes.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        let (mut free, mut total) = (0usize, 0usize);
        self.call("mem_get_info", || unsafe {
            (self.api.fns.mem_get_info)(&mut free, &mut total)
        })?;
        Ok((free, total))
    }

    /// The per-thread stack (local memory) the driver has reserved for
    /// this context's kernels so far: it grows, and stays grown, the first
    /// time a kernel that spills or keeps stack arrays beyond it runs
    /// (`CU_LIMIT_STACK_SIZE` / `hipLimitStackSize`, both 0).
    pub fn stack_limit(&self) -> Result<usize> {
        let mut v = 0usize;
        self.call("ctx_get_limit", || unsafe {
            (self.api.fns.ctx_get_limit)(&mut v, 0)
        })?;
        Ok(v)
    }

    /// Waits for all work on the device.
    pub fn synchronize(&self) -> Result<()> {
        self.call("synchronize", || unsafe { (self.api.fns.synchronize)() })
    }

    fn attribute(&self, a: DeviceAttr) -> Result<i32> {
        let mut v: c_int = 0;
        let id = self.info.vendor.attribute_id(a);
        self.call("device_attribute", || unsafe {
            (self.api.fns.device_attribute)(&mut v, id, self.device)
        })?;
        Ok(v)
    }

    fn read_info(&mut self) -> Result<()> {
        let mut name = [0 as c_char; 256];
        self.call("device_name", || unsafe {
            (self.api.fns.device_name)(name.as_mut_ptr(), 255, self.device)
        })?;
        self.info.name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .trim()
            .to_string();
        let mut total = 0usize;
        self.call("device_total_mem", || unsafe {
            (self.api.fns.device_total_mem)(&mut total, self.device)
        })?;
        self.info.total_memory = total;
        self.info.multiprocessors = self.attribute(DeviceAttr::MultiprocessorCount)? as u32;
        self.info.warp_size = self.attribute(DeviceAttr::WarpSize)? as u32;
        self.info.max_shared_per_block = self.attribute(DeviceAttr::MaxSharedPerBlock)? as u32;
        // Optional: some drivers report no memory clock (then no roofline).
        let clock = self.attribute(DeviceAttr::MemoryClockKhz).unwrap_or(0);
        let bus = self.attribute(DeviceAttr::MemoryBusBits).unwrap_or(0);
        self.info.peak_bandwidth =
            (clock > 0 && bus > 0).then(|| clock as f64 * 1e3 * 2.0 * bus as f64 / 8.0);
        self.info.arch = match self.info.vendor {
            Vendor::Cuda => {
                let major = self.attribute(DeviceAttr::ComputeMajor)?;
                let minor = self.attribute(DeviceAttr::ComputeMinor)?;
                format!("sm_{major}{minor}")
            }
            Vendor::Hip => self.hip_arch()?,
        };
        Ok(())
    }

    /// The gfx name (`gfx1100`), from `RFC_HIP_ARCH` or the device
    /// properties. The properties struct changed layout between ROCm 5
    /// and 6, so its `gcnArchName` is found by content, not by offset: it is
    /// the struct's only string starting with "gfx".
    fn hip_arch(&self) -> Result<String> {
        if let Ok(a) = std::env::var("RFC_HIP_ARCH") {
            return Ok(a);
        }
        let ContextFns::Hip {
            properties: Some(props),
            ..
        } = self.api.ctx
        else {
            return Err(BackendError::Invalid(
                "this HIP runtime has no hipGetDeviceProperties; set RFC_HIP_ARCH=gfx...".into(),
            ));
        };
        // Larger than either version's struct (792 bytes in 5.2, ~1.5 KiB in 6.x).
        let mut buf = vec![0u8; 16 << 10];
        self.call("hipGetDeviceProperties", || unsafe {
            props(buf.as_mut_ptr() as *mut c_void, self.device)
        })?;
        find_gfx_name(&buf).ok_or_else(|| {
            BackendError::Invalid(
                "no gfx architecture name in the device properties; set RFC_HIP_ARCH".into(),
            )
        })
    }
}

/// The first NUL-terminated "gfx..." string in `buf`, without target
/// features (`gfx90a:sramecc+:xnack-` → `gfx90a`).
fn find_gfx_name(buf: &[u8]) -> Option<String> {
    let at = buf.windows(3).position(|w| w == b"gfx")?;
    let end = buf[at..].iter().position(|&b| b == 0)? + at;
    let s = std::str::from_utf8(&buf[at..end]).ok()?;
    let name = s.split(':').next()?;
    name[3..]
        .chars()
        .all(|c| c.is_ascii_alphanumeric())
        .then(|| name.to_string())
}

impl Drop for Gpu {
    fn drop(&mut self) {
        if let ContextFns::Cuda { release, .. } = self.api.ctx {
            let code = unsafe { release(self.device) };
            if code != 0 {
                tracing::warn!(code, "cuDevicePrimaryCtxRelease failed");
            }
            BOUND.with(|b| {
                if b.get() == self.id {
                    b.set(0)
                }
            });
        }
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("info", &self.info).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::find_gfx_name;

    #[test]
    fn gfx_name_is_found_by_content_without_features() {
        let mut buf = vec![0u8; 64];
        buf[10..17].copy_from_slice(b"AMD RX\0");
        buf[30..52].copy_from_slice(b"gfx90a:sramecc+:xnack-");
        assert_eq!(find_gfx_name(&buf).as_deref(), Some("gfx90a"));
        assert_eq!(find_gfx_name(&[0u8; 16]), None);
    }
}
