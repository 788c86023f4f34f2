//! The runtime compilers, NVRTC and hiprtc: mirrored APIs again, one table.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

use super::driver_api::hip_candidates;
use super::error::{BackendError, Result};
use super::fault::{self, FaultPoint};
use super::library::{candidates, search_dirs, RuntimeLibrary};
use super::vendor::Vendor;

type Res = c_int;
type Program = *mut c_void;

macro_rules! rtc_fns {
    ($( $field:ident : ($nv:literal, $hip:literal) fn($($arg:ty),*); )*) => {
        #[derive(Clone, Copy)]
        struct RtcFns {
            $( $field: unsafe extern "C" fn($($arg),*) -> Res, )*
        }

        impl RtcFns {
            fn symbol_names(vendor: Vendor) -> Vec<&'static str> {
                vec![$( match vendor { Vendor::Cuda => $nv, Vendor::Hip => $hip }, )*]
            }

            unsafe fn resolve(lib: &RuntimeLibrary, vendor: Vendor) -> Result<Self> {
                Ok(RtcFns {
                    $( $field: lib.function(match vendor { Vendor::Cuda => $nv, Vendor::Hip => $hip })?, )*
                })
            }
        }
    };
}

rtc_fns! {
    version: ("nvrtcVersion", "hiprtcVersion") fn(*mut c_int, *mut c_int);
    create: ("nvrtcCreateProgram", "hiprtcCreateProgram") fn(
        *mut Program, *const c_char, *const c_char, c_int, *const *const c_char, *const *const c_char);
    compile: ("nvrtcCompileProgram", "hiprtcCompileProgram") fn(Program, c_int, *const *const c_char);
    log_size: ("nvrtcGetProgramLogSize", "hiprtcGetProgramLogSize") fn(Program, *mut usize);
    log: ("nvrtcGetProgramLog", "hiprtcGetProgramLog") fn(Program, *mut c_char);
    code_size: ("nvrtcGetCUBINSize", "hiprtcGetCodeSize") fn(Program, *mut usize);
    code: ("nvrtcGetCUBIN", "hiprtcGetCode") fn(Program, *mut c_char);
    destroy: ("nvrtcDestroyProgram", "hiprtcDestroyProgram") fn(*mut Program);
}

/// A loaded runtime compiler.
pub struct RtcApi {
    pub vendor: Vendor,
    pub library: String,
    fns: RtcFns,
    error_string: unsafe extern "C" fn(Res) -> *const c_char,
    /// (major, minor) as the compiler reports it.
    pub version: (i32, i32),
}

/// The process's one load of each vendor's compiler.
fn loaded_cell(vendor: Vendor) -> &'static OnceLock<Result<RtcApi>> {
    static NV: OnceLock<Result<RtcApi>> = OnceLock::new();
    static HIP: OnceLock<Result<RtcApi>> = OnceLock::new();
    match vendor {
        Vendor::Cuda => &NV,
        Vendor::Hip => &HIP,
    }
}

/// Serialises hiprtc process-wide: ROCm 5.2's crashes when two threads
/// compile at once (seen here); NVRTC is documented thread-safe and is not
/// locked.
static HIPRTC_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

// SAFETY: function pointers into a library that is never unloaded; both
// compilers allow concurrent programs on different threads.
unsafe impl Send for RtcApi {}
unsafe impl Sync for RtcApi {}

impl RtcApi {
    /// The vendor's compiler, loaded once per process.
    pub fn get(vendor: Vendor) -> Result<&'static RtcApi> {
        loaded_cell(vendor)
            .get_or_init(|| Self::load(vendor))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether [`get`](Self::get) has opened the vendor's compiler in this
    /// process (a GPU artifact runs without it).
    pub fn is_loaded(vendor: Vendor) -> bool {
        loaded_cell(vendor).get().is_some_and(|r| r.is_ok())
    }

    /// Opens the library, resolves every entry point and reads the version.
    pub fn load(vendor: Vendor) -> Result<RtcApi> {
        let lib = open_rtc_library(vendor)?;
        let errname = match vendor {
            Vendor::Cuda => "nvrtcGetErrorString",
            Vendor::Hip => "hiprtcGetErrorString",
        };
        // SAFETY: names resolved with the signatures of nvrtc.h / hiprtc.h.
        let mut api = unsafe {
            RtcApi {
                vendor,
                library: lib.path.clone(),
                fns: RtcFns::resolve(&lib, vendor)?,
                error_string: lib.function(errname)?,
                version: (0, 0),
            }
        };
        std::mem::forget(lib);
        let (mut major, mut minor) = (0, 0);
        api.check("version", unsafe {
            (api.fns.version)(&mut major, &mut minor)
        })?;
        api.version = (major, minor);
        Ok(api)
    }

    /// Every symbol the layer resolves from `vendor`'s compiler library.
    pub fn symbols(vendor: Vendor) -> Vec<&'static str> {
        let mut v = RtcFns::symbol_names(vendor);
        v.push(match vendor {
            Vendor::Cuda => "nvrtcGetErrorString",
            Vendor::Hip => "hiprtcGetErrorString",
        });
        v
    }

    /// `"nvrtc 13.0"` / `"hiprtc 5.2"`: part of every cache key.
    pub fn version_string(&self) -> String {
        let n = match self.vendor {
            Vendor::Cuda => "nvrtc",
            Vendor::Hip => "hiprtc",
        };
        format!("{n} {}.{}", self.version.0, self.version.1)
    }

    /// Compiles `source` (entry points `extern "C"`) into a code object the
    /// driver loads: a cubin for NVIDIA, an AMDGPU code object for HIP.
    /// A compile error carries the compiler's log and the kernel's name.
    pub fn compile(
        &self,
        name: &str,
        source: &str,
        options: &[String],
        target: &str,
    ) -> Result<Vec<u8>> {
        if fault::fires(FaultPoint::Compile, name) {
            return Err(BackendError::Compile {
                kernel: name.to_string(),
                target: target.to_string(),
                log: "injected fault (RFC_FAULT=compile)".into(),
            });
        }
        self.check_target(name, target)?;
        let _serial = match self.vendor {
            Vendor::Hip => Some(HIPRTC_LOCK.lock().unwrap_or_else(|p| p.into_inner())),
            Vendor::Cuda => None,
        };
        let invalid = |what: &str| {
            BackendError::Invalid(format!("{what} of kernel {name} contains a NUL byte"))
        };
        let c_src = CString::new(source).map_err(|_| invalid("source"))?;
        let c_name = CString::new(format!("{name}.cu")).map_err(|_| invalid("name"))?;
        let c_opts: Vec<CString> = options
            .iter()
            .map(|o| CString::new(o.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| invalid("an option"))?;
        let opt_ptrs: Vec<*const c_char> = c_opts.iter().map(|c| c.as_ptr()).collect();
        let mut prog: Program = std::ptr::null_mut();
        let null = std::ptr::null();
        // SAFETY: all strings are NUL-terminated and outlive the call.
        self.check("create", unsafe {
            (self.fns.create)(&mut prog, c_src.as_ptr(), c_name.as_ptr(), 0, null, null)
        })?;
        let prog = ProgramGuard { api: self, prog };
        // SAFETY: prog is live; the option array holds opt_ptrs.len() entries.
        let code =
            unsafe { (self.fns.compile)(prog.prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr()) };
        if code != 0 {
            let log = prog.log().unwrap_or_else(|e| format!("(no log: {e})"));
            return Err(BackendError::Compile {
                kernel: name.to_string(),
                target: target.to_string(),
                log: format!(
                    "{}: {}\n{log}",
                    self.call_name("compile"),
                    self.error_text(code)
                ),
            });
        }
        prog.code()
    }

    /// Whether this compiler can be asked for `target` (hiprtc before
    /// ROCm 5.5 aborts the process on gfx11, so it is never asked).
    pub fn knows_target(&self, target: &str) -> bool {
        self.check_target("", target).is_ok()
    }

    /// hiprtc aborts the process when asked for an architecture it does
    /// not know: only targets its ROCm release is known to compile for
    /// (codegen::known_targets) are passed to it.
    fn check_target(&self, name: &str, target: &str) -> Result<()> {
        if self.vendor != Vendor::Hip {
            return Ok(());
        }
        // Debian's ROCm 5.2 hiprtc reports version 9.0, so the version alone
        // cannot be trusted: a hiprtc inside libamdhip64 is ROCm 5.x (ROCm 6
        // ships libhiprtc), taken as 5.2.
        let rocm = if self.library.contains("amdhip64") {
            (5, 2)
        } else {
            self.version
        };
        let why = match crate::codegen::known_targets::amd_since(target) {
            Some(since) if rocm >= since => return Ok(()),
            Some((major, minor)) => {
                format!("predates {target} (ROCm {major}.{minor} or newer knows it)")
            }
            None => format!("is not known to compile for {target}"),
        };
        Err(BackendError::Compile {
            kernel: name.to_string(),
            target: target.to_string(),
            log: format!(
                "{} ({}) {why}; use a newer ROCm (or `rfc compile --target {target}` with an offline clang, see docs/GPU.md)",
                self.version_string(),
                self.library
            ),
        })
    }

    fn error_text(&self, code: Res) -> String {
        // SAFETY: returns a static NUL-terminated string.
        let p = unsafe { (self.error_string)(code) };
        if p.is_null() {
            return format!("error {code}");
        }
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    fn call_name(&self, field: &'static str) -> &'static str {
        let names = RtcFns::symbol_names(self.vendor);
        let fields = [
            "version",
            "create",
            "compile",
            "log_size",
            "log",
            "code_size",
            "code",
            "destroy",
        ];
        fields
            .iter()
            .position(|f| *f == field)
            .map_or(field, |i| names[i])
    }

    fn check(&self, field: &'static str, code: Res) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(BackendError::Call {
            call: self.call_name(field),
            code,
            name: self.error_text(code),
        })
    }
}

/// Destroys the program however compilation ends.
struct ProgramGuard<'a> {
    api: &'a RtcApi,
    prog: Program,
}

impl ProgramGuard<'_> {
    fn log(&self) -> Result<String> {
        let mut n = 0usize;
        self.api.check("log_size", unsafe {
            (self.api.fns.log_size)(self.prog, &mut n)
        })?;
        let mut buf = vec![0u8; n.max(1)];
        self.api.check("log", unsafe {
            (self.api.fns.log)(self.prog, buf.as_mut_ptr().cast())
        })?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    fn code(&self) -> Result<Vec<u8>> {
        let mut n = 0usize;
        self.api.check("code_size", unsafe {
            (self.api.fns.code_size)(self.prog, &mut n)
        })?;
        let mut buf = vec![0u8; n];
        self.api.check("code", unsafe {
            (self.api.fns.code)(self.prog, buf.as_mut_ptr().cast())
        })?;
        Ok(buf)
    }
}

impl Drop for ProgramGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: prog came from create and is destroyed once.
        let code = unsafe { (self.api.fns.destroy)(&mut self.prog) };
        if code != 0 {
            tracing::warn!(code, "destroying a runtime-compiler program failed");
        }
    }
}

fn open_rtc_library(vendor: Vendor) -> Result<RuntimeLibrary> {
    match vendor {
        Vendor::Cuda => {
            let dirs = search_dirs(
                &["CUDA_PATH", "CUDA_HOME"],
                "lib64",
                &[
                    "/usr/local/cuda/lib64",
                    "/usr/local/cuda/targets/x86_64-linux/lib",
                    "/usr/lib/x86_64-linux-gnu",
                ],
            );
            let c = candidates(
                &[
                    "libnvrtc.so",
                    "libnvrtc.so.13",
                    "libnvrtc.so.12",
                    "libnvrtc.so.11.2",
                ],
                &dirs,
                "libnvrtc.so",
            );
            RuntimeLibrary::open_first("NVRTC (libnvrtc)", "RFC_NVRTC_LIB", &c)
        }
        Vendor::Hip => {
            let dirs = search_dirs(&["ROCM_PATH", "HIP_PATH"], "lib", &["/opt/rocm/lib"]);
            let mut c = candidates(&["libhiprtc.so", "libhiprtc.so.6"], &dirs, "libhiprtc.so");
            c.extend(hip_candidates());
            RuntimeLibrary::open_first("hiprtc (libhiprtc or libamdhip64)", "RFC_HIPRTC_LIB", &c)
        }
    }
}
