//! The driver entry points the layer uses, resolved once per vendor.
//!
//! The CUDA driver API and HIP's module API mirror each other call for
//! call with the same C ABI (handles are pointers, device addresses 64-bit
//! integers or pointers, results `int` enums), so one table of function
//! pointers serves both; only the symbol names differ. The few calls whose
//! shapes differ (error names, contexts, device properties) are separate
//! fields.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

use super::error::{BackendError, Result};
use super::library::{candidates, search_dirs, RuntimeLibrary};
use super::vendor::Vendor;

/// A device address (`CUdeviceptr` / `hipDeviceptr_t`).
pub(crate) type RawPtr = u64;
/// An opaque driver handle (context, module, function, stream, event,
/// graph, graph exec).
pub(crate) type Handle = *mut c_void;

type Res = c_int;

macro_rules! driver_fns {
    ($( $field:ident : ($cuda:literal, $hip:literal) fn($($arg:ty),*); )*) => {
        /// Entry points with the same signature in both APIs.
        #[derive(Clone, Copy)]
        pub(crate) struct DriverFns {
            $( pub(crate) $field: unsafe extern "C" fn($($arg),*) -> Res, )*
        }

        impl DriverFns {
            /// (field, CUDA symbol, HIP symbol) of every entry.
            const FIELDS: &'static [(&'static str, &'static str, &'static str)] =
                &[$( (stringify!($field), $cuda, $hip), )*];

            /// Every symbol name the table resolves for `vendor`.
            pub(crate) fn symbol_names(vendor: Vendor) -> Vec<&'static str> {
                Self::FIELDS.iter().map(|f| pick(vendor, f.1, f.2)).collect()
            }

            /// # Safety
            /// `lib` must be `vendor`'s driver library.
            unsafe fn resolve(lib: &RuntimeLibrary, vendor: Vendor) -> Result<Self> {
                Ok(DriverFns {
                    $( $field: lib.function(match vendor { Vendor::Cuda => $cuda, Vendor::Hip => $hip })?, )*
                })
            }
        }
    };
}

driver_fns! {
    init: ("cuInit", "hipInit") fn(c_uint);
    driver_version: ("cuDriverGetVersion", "hipDriverGetVersion") fn(*mut c_int);
    device_count: ("cuDeviceGetCount", "hipGetDeviceCount") fn(*mut c_int);
    device_get: ("cuDeviceGet", "hipDeviceGet") fn(*mut c_int, c_int);
    device_name: ("cuDeviceGetName", "hipDeviceGetName") fn(*mut c_char, c_int, c_int);
    device_attribute: ("cuDeviceGetAttribute", "hipDeviceGetAttribute") fn(*mut c_int, c_int, c_int);
    device_total_mem: ("cuDeviceTotalMem_v2", "hipDeviceTotalMem") fn(*mut usize, c_int);
    synchronize: ("cuCtxSynchronize", "hipDeviceSynchronize") fn();
    mem_alloc: ("cuMemAlloc_v2", "hipMalloc") fn(*mut RawPtr, usize);
    mem_free: ("cuMemFree_v2", "hipFree") fn(RawPtr);
    mem_get_info: ("cuMemGetInfo_v2", "hipMemGetInfo") fn(*mut usize, *mut usize);
    ctx_get_limit: ("cuCtxGetLimit", "hipDeviceGetLimit") fn(*mut usize, c_int);
    memcpy_htod: ("cuMemcpyHtoD_v2", "hipMemcpyHtoD") fn(RawPtr, *const c_void, usize);
    memcpy_dtoh: ("cuMemcpyDtoH_v2", "hipMemcpyDtoH") fn(*mut c_void, RawPtr, usize);
    memcpy_dtod: ("cuMemcpyDtoD_v2", "hipMemcpyDtoD") fn(RawPtr, RawPtr, usize);
    memcpy_htod_async: ("cuMemcpyHtoDAsync_v2", "hipMemcpyHtoDAsync") fn(RawPtr, *const c_void, usize, Handle);
    memcpy_dtoh_async: ("cuMemcpyDtoHAsync_v2", "hipMemcpyDtoHAsync") fn(*mut c_void, RawPtr, usize, Handle);
    mem_host_alloc: ("cuMemHostAlloc", "hipHostMalloc") fn(*mut *mut c_void, usize, c_uint);
    mem_free_host: ("cuMemFreeHost", "hipHostFree") fn(*mut c_void);
    memset_d8_async: ("cuMemsetD8Async", "hipMemsetD8Async") fn(RawPtr, u8, usize, Handle);
    memset_d32_async: ("cuMemsetD32Async", "hipMemsetD32Async") fn(RawPtr, c_uint, usize, Handle);
    module_load_data: ("cuModuleLoadData", "hipModuleLoadData") fn(*mut Handle, *const c_void);
    module_unload: ("cuModuleUnload", "hipModuleUnload") fn(Handle);
    module_get_function: ("cuModuleGetFunction", "hipModuleGetFunction") fn(*mut Handle, Handle, *const c_char);
    func_get_attribute: ("cuFuncGetAttribute", "hipFuncGetAttribute") fn(*mut c_int, c_int, Handle);
    func_set_attribute: ("cuFuncSetAttribute", "hipFuncSetAttribute") fn(Handle, c_int, c_int);
    launch_kernel: ("cuLaunchKernel", "hipModuleLaunchKernel") fn(
        Handle, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, Handle, *mut *mut c_void, *mut *mut c_void);
    stream_create: ("cuStreamCreate", "hipStreamCreateWithFlags") fn(*mut Handle, c_uint);
    stream_destroy: ("cuStreamDestroy_v2", "hipStreamDestroy") fn(Handle);
    stream_synchronize: ("cuStreamSynchronize", "hipStreamSynchronize") fn(Handle);
    event_create: ("cuEventCreate", "hipEventCreateWithFlags") fn(*mut Handle, c_uint);
    event_destroy: ("cuEventDestroy_v2", "hipEventDestroy") fn(Handle);
    event_record: ("cuEventRecord", "hipEventRecord") fn(Handle, Handle);
    event_synchronize: ("cuEventSynchronize", "hipEventSynchronize") fn(Handle);
    event_elapsed: ("cuEventElapsedTime", "hipEventElapsedTime") fn(*mut f32, Handle, Handle);
    stream_begin_capture: ("cuStreamBeginCapture_v2", "hipStreamBeginCapture") fn(Handle, c_int);
    stream_end_capture: ("cuStreamEndCapture", "hipStreamEndCapture") fn(Handle, *mut Handle);
    graph_instantiate: ("cuGraphInstantiateWithFlags", "hipGraphInstantiateWithFlags") fn(*mut Handle, Handle, u64);
    graph_launch: ("cuGraphLaunch", "hipGraphLaunch") fn(Handle, Handle);
    graph_exec_destroy: ("cuGraphExecDestroy", "hipGraphExecDestroy") fn(Handle);
    graph_destroy: ("cuGraphDestroy", "hipGraphDestroy") fn(Handle);
}

/// How a thread makes a device current.
#[derive(Clone, Copy)]
pub(crate) enum ContextFns {
    /// The device's primary context, made current per thread.
    Cuda {
        retain: unsafe extern "C" fn(*mut Handle, c_int) -> Res,
        release: unsafe extern "C" fn(c_int) -> Res,
        set_current: unsafe extern "C" fn(Handle) -> Res,
    },
    /// `hipSetDevice` per thread.
    Hip {
        set_device: unsafe extern "C" fn(c_int) -> Res,
        /// `hipGetDeviceProperties` (ROCm 5) or its R0600 form (ROCm 6),
        /// read only for the gfx name.
        properties: Option<unsafe extern "C" fn(*mut c_void, c_int) -> Res>,
    },
}

#[derive(Clone, Copy)]
enum ErrorNameFn {
    Cuda(unsafe extern "C" fn(Res, *mut *const c_char) -> Res),
    Hip(unsafe extern "C" fn(Res) -> *const c_char),
}

/// One vendor's driver: the library, its entry points, and the result of
/// initialising it (kept, so a machine without devices answers the same
/// clean error every time).
pub(crate) struct DriverApi {
    pub(crate) vendor: Vendor,
    pub(crate) library: String,
    pub(crate) fns: DriverFns,
    pub(crate) ctx: ContextFns,
    error_name: ErrorNameFn,
    pub(crate) version: i32,
}

// SAFETY: the table holds only function pointers into a library that is
// never unloaded; the driver APIs are thread-safe.
unsafe impl Send for DriverApi {}
unsafe impl Sync for DriverApi {}

impl DriverApi {
    /// The vendor's driver, loaded and initialised once per process.
    pub(crate) fn get(vendor: Vendor) -> Result<&'static DriverApi> {
        static CUDA: OnceLock<Result<DriverApi>> = OnceLock::new();
        static HIP: OnceLock<Result<DriverApi>> = OnceLock::new();
        let cell = match vendor {
            Vendor::Cuda => &CUDA,
            Vendor::Hip => &HIP,
        };
        cell.get_or_init(|| Self::load(vendor).and_then(Self::initialise))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Opens the library and resolves every entry point, without calling
    /// into the driver (the CI test uses this on a machine with no GPU).
    pub(crate) fn load(vendor: Vendor) -> Result<DriverApi> {
        let lib = open_driver_library(vendor)?;
        // SAFETY: each name is resolved with the signature cuda.h /
        // hip_runtime_api.h declare for it (see the tables above).
        let api = unsafe {
            DriverApi {
                vendor,
                library: lib.path.clone(),
                fns: DriverFns::resolve(&lib, vendor)?,
                ctx: resolve_context(&lib, vendor)?,
                error_name: match vendor {
                    Vendor::Cuda => ErrorNameFn::Cuda(lib.function("cuGetErrorName")?),
                    Vendor::Hip => ErrorNameFn::Hip(lib.function("hipGetErrorName")?),
                },
                version: 0,
            }
        };
        // Resolved pointers must outlive every use: the library stays open.
        std::mem::forget(lib);
        Ok(api)
    }

    fn initialise(mut self) -> Result<DriverApi> {
        let code = unsafe { (self.fns.init)(0) };
        if code != 0 {
            return Err(self.no_device_or_call("init", code));
        }
        let mut v: c_int = 0;
        self.check("driver_version", unsafe {
            (self.fns.driver_version)(&mut v)
        })?;
        self.version = v;
        if v < self.vendor.min_driver_version() {
            return Err(BackendError::DriverTooOld {
                vendor: self.vendor,
                found: self.vendor.format_version(v),
                required: self.vendor.format_version(self.vendor.min_driver_version()),
            });
        }
        tracing::debug!(vendor = %self.vendor, library = %self.library, version = %self.vendor.format_version(v), "driver initialised");
        Ok(self)
    }

    /// The driver's name of an error code (e.g. `CUDA_ERROR_OUT_OF_MEMORY`).
    pub(crate) fn error_name(&self, code: i32) -> String {
        let p = match self.error_name {
            ErrorNameFn::Cuda(f) => {
                let mut p: *const c_char = std::ptr::null();
                // SAFETY: cuGetErrorName writes a static string or fails.
                if unsafe { f(code, &mut p) } != 0 {
                    p = std::ptr::null();
                }
                p
            }
            // SAFETY: hipGetErrorName returns a static string.
            ErrorNameFn::Hip(f) => unsafe { f(code) },
        };
        if p.is_null() {
            return format!("unknown error {code}");
        }
        // SAFETY: both APIs return NUL-terminated static strings.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }

    /// `Ok` for code 0, else the typed error naming the call.
    pub(crate) fn check(&self, field: &'static str, code: c_int) -> Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(self.call_error(field, code))
        }
    }

    pub(crate) fn call_error(&self, field: &'static str, code: c_int) -> BackendError {
        BackendError::Call {
            call: self.call_name(field),
            code,
            name: self.error_name(code),
        }
    }

    /// A failed init or device count on a machine without devices reads as
    /// "no device", anything else as the failed call.
    pub(crate) fn no_device_or_call(&self, field: &'static str, code: c_int) -> BackendError {
        if self.vendor.is_no_device_code(code) {
            BackendError::NoDevice {
                vendor: self.vendor,
                detail: format!(
                    "{} returned {} ({code})",
                    self.call_name(field),
                    self.error_name(code)
                ),
            }
        } else {
            self.call_error(field, code)
        }
    }

    /// The vendor's name of a table entry, for messages.
    pub(crate) fn call_name(&self, field: &'static str) -> &'static str {
        call_name(self.vendor, field)
    }
}

fn pick(vendor: Vendor, cuda: &'static str, hip: &'static str) -> &'static str {
    match vendor {
        Vendor::Cuda => cuda,
        Vendor::Hip => hip,
    }
}

/// The real symbol behind a table field name (the field itself for calls
/// outside the table, which pass their symbol name directly).
pub(crate) fn call_name(vendor: Vendor, field: &'static str) -> &'static str {
    DriverFns::FIELDS
        .iter()
        .find(|f| f.0 == field)
        .map_or(field, |f| pick(vendor, f.1, f.2))
}

/// Every symbol the layer resolves from `vendor`'s driver library.
pub fn driver_symbols(vendor: Vendor) -> Vec<&'static str> {
    let mut names = DriverFns::symbol_names(vendor);
    names.extend_from_slice(match vendor {
        Vendor::Cuda => &[
            "cuGetErrorName",
            "cuDevicePrimaryCtxRetain",
            "cuDevicePrimaryCtxRelease_v2",
            "cuCtxSetCurrent",
        ],
        Vendor::Hip => &["hipGetErrorName", "hipSetDevice", "hipGetDeviceProperties"],
    });
    names
}

unsafe fn resolve_context(lib: &RuntimeLibrary, vendor: Vendor) -> Result<ContextFns> {
    Ok(match vendor {
        Vendor::Cuda => ContextFns::Cuda {
            retain: lib.function("cuDevicePrimaryCtxRetain")?,
            release: lib.function("cuDevicePrimaryCtxRelease_v2")?,
            set_current: lib.function("cuCtxSetCurrent")?,
        },
        Vendor::Hip => ContextFns::Hip {
            set_device: lib.function("hipSetDevice")?,
            properties: lib
                .optional("hipGetDevicePropertiesR0600")
                .or_else(|| lib.optional("hipGetDeviceProperties")),
        },
    })
}

fn open_driver_library(vendor: Vendor) -> Result<RuntimeLibrary> {
    match vendor {
        Vendor::Cuda => {
            let dirs = search_dirs(
                &[],
                "",
                &[
                    "/usr/lib/x86_64-linux-gnu",
                    "/usr/local/nvidia/lib64",
                    "/usr/lib64",
                ],
            );
            let c = candidates(&["libcuda.so.1", "libcuda.so"], &dirs, "libcuda.so");
            RuntimeLibrary::open_first("the CUDA driver (libcuda)", "RFC_CUDA_LIB", &c)
        }
        Vendor::Hip => RuntimeLibrary::open_first(
            "the HIP runtime (libamdhip64)",
            "RFC_HIP_LIB",
            &hip_candidates(),
        ),
    }
}

/// Where libamdhip64 may be (hiprtc falls back to it: ROCm 5 ships hiprtc
/// inside libamdhip64).
pub(crate) fn hip_candidates() -> Vec<String> {
    let dirs = search_dirs(&["ROCM_PATH", "HIP_PATH"], "lib", &["/opt/rocm/lib"]);
    candidates(
        &["libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5"],
        &dirs,
        "libamdhip64.so",
    )
}
