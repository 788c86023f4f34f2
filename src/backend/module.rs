//! Loaded code objects and their kernels, and how a kernel is launched.

use std::ffi::{c_int, c_void, CString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::buffer::DevicePtr;
use super::driver_api::Handle;
use super::error::{BackendError, Result};
use super::fault::{self, FaultPoint};
use super::gpu::Gpu;
use super::stream::Stream;
use super::vendor::FuncAttr;

struct ModuleInner {
    gpu: Arc<Gpu>,
    handle: Handle,
}

// SAFETY: module and function handles are valid on every thread of the
// context's process.
unsafe impl Send for ModuleInner {}
unsafe impl Sync for ModuleInner {}

impl Drop for ModuleInner {
    fn drop(&mut self) {
        let api = self.gpu.api();
        if let Err(e) = self.gpu.call("module_unload", || unsafe {
            (api.fns.module_unload)(self.handle)
        }) {
            tracing::warn!("unloading a module: {e}");
        }
    }
}

/// A loaded code object (cubin or AMDGPU code object). Its kernels keep it
/// loaded.
pub struct Module {
    inner: Arc<ModuleInner>,
}

impl Module {
    /// Loads a code object produced by the runtime compiler.
    pub fn load(gpu: &Arc<Gpu>, code: &[u8]) -> Result<Module> {
        if code.is_empty() {
            return Err(BackendError::Invalid("empty code object".into()));
        }
        let api = gpu.api();
        let mut handle: Handle = std::ptr::null_mut();
        gpu.call("module_load_data", || unsafe {
            (api.fns.module_load_data)(&mut handle, code.as_ptr() as *const c_void)
        })?;
        Ok(Module {
            inner: Arc::new(ModuleInner {
                gpu: gpu.clone(),
                handle,
            }),
        })
    }

    /// The kernel `name` (an `extern "C"` entry point).
    pub fn kernel(&self, name: &str) -> Result<Kernel> {
        let c = CString::new(name)
            .map_err(|_| BackendError::Invalid(format!("kernel name {name:?}")))?;
        let gpu = &self.inner.gpu;
        let api = gpu.api();
        let mut f: Handle = std::ptr::null_mut();
        gpu.bind()?;
        let code = unsafe { (api.fns.module_get_function)(&mut f, self.inner.handle, c.as_ptr()) };
        if code != 0 {
            return Err(BackendError::Call {
                call: api.call_name("module_get_function"),
                code,
                name: format!("{} (kernel {name})", api.error_name(code)),
            });
        }
        Ok(Kernel {
            module: self.inner.clone(),
            handle: f,
            name: name.to_string(),
            shared_opt_in: AtomicU32::new(0),
        })
    }
}

/// Dynamic shared memory a launch gets without opting in.
const STATIC_SHARED_LIMIT: u32 = 48 * 1024;

/// Grid and block shape of one launch, and its dynamic shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl LaunchDims {
    /// A 1-D block over a grid of up to three dimensions.
    pub fn new(grid: [u32; 3], threads: u32) -> LaunchDims {
        LaunchDims {
            grid,
            block: [threads, 1, 1],
            shared_bytes: 0,
        }
    }
}

/// A kernel's arguments in order. Each is stored in an 8-byte slot; the
/// driver reads as many bytes as the kernel's parameter has (little-endian,
/// so a 4-byte value in the low half reads correctly).
#[derive(Debug, Clone, Default)]
pub struct KernelArgs {
    slots: Vec<u64>,
}

impl KernelArgs {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn ptr(mut self, p: DevicePtr) -> Self {
        self.slots.push(p.0);
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.slots.push(v as u64);
        self
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.slots.push(v as u32 as u64);
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        self.slots.push(v.to_bits() as u64);
        self
    }
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// A kernel's compiled resource use (the compiler's report, as the driver
/// sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelResources {
    pub registers: i32,
    pub static_shared_bytes: i32,
    /// Per-thread local memory: nonzero means spills or stack arrays.
    pub local_bytes: i32,
    pub max_threads_per_block: i32,
}

/// One entry point of a loaded module.
pub struct Kernel {
    module: Arc<ModuleInner>,
    handle: Handle,
    name: String,
    /// The dynamic shared memory this function has opted in to (0: none
    /// beyond the default), so that the driver call happens once.
    shared_opt_in: AtomicU32,
}

// SAFETY: see ModuleInner.
unsafe impl Send for Kernel {}
unsafe impl Sync for Kernel {}

impl Kernel {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn resources(&self) -> Result<KernelResources> {
        let gpu = &self.module.gpu;
        let get = |a: FuncAttr| -> Result<i32> {
            let mut v: c_int = 0;
            let id = gpu.vendor().func_attribute_id(a);
            let api = gpu.api();
            gpu.call("func_get_attribute", || unsafe {
                (api.fns.func_get_attribute)(&mut v, id, self.handle)
            })?;
            Ok(v)
        };
        Ok(KernelResources {
            registers: get(FuncAttr::NumRegs)?,
            static_shared_bytes: get(FuncAttr::SharedBytes)?,
            local_bytes: get(FuncAttr::LocalBytes)?,
            max_threads_per_block: get(FuncAttr::MaxThreadsPerBlock)?,
        })
    }

    /// Queues the kernel on `stream`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number and types, and
    /// every pointer must address memory valid for what the kernel reads and
    /// writes under `dims` (docs/KERNELS.md states each kernel's contract).
    pub unsafe fn launch(
        &self,
        stream: &Stream,
        dims: LaunchDims,
        args: &KernelArgs,
    ) -> Result<()> {
        let gpu = &self.module.gpu;
        let api = gpu.api();
        let threads: u64 = dims.block.iter().map(|&b| b as u64).product();
        if dims.grid.contains(&0) || threads == 0 || threads > 1024 {
            return Err(BackendError::Invalid(format!(
                "launch of {} with grid {:?} and block {:?}",
                self.name, dims.grid, dims.block
            )));
        }
        if fault::fires(FaultPoint::Launch, &self.name) {
            return Err(BackendError::Call {
                call: api.call_name("launch_kernel"),
                code: -1,
                name: format!("injected fault (RFC_FAULT=launch) in kernel {}", self.name),
            });
        }
        if dims.shared_bytes > STATIC_SHARED_LIMIT
            && dims.shared_bytes > self.shared_opt_in.load(Ordering::Relaxed)
        {
            // Above 48 KiB a kernel must opt in to its dynamic shared memory.
            let id = gpu
                .vendor()
                .func_attribute_id(FuncAttr::MaxDynamicSharedBytes);
            let bytes = dims.shared_bytes as c_int;
            gpu.call("func_set_attribute", || unsafe {
                (api.fns.func_set_attribute)(self.handle, id, bytes)
            })?;
            self.shared_opt_in
                .fetch_max(dims.shared_bytes, Ordering::Relaxed);
        }
        let mut slots = args.slots.clone();
        let mut ptrs: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        let [gx, gy, gz] = dims.grid;
        let [bx, by, bz] = dims.block;
        gpu.bind()?;
        let code = unsafe {
            (api.fns.launch_kernel)(
                self.handle,
                gx,
                gy,
                gz,
                bx,
                by,
                bz,
                dims.shared_bytes,
                stream.handle,
                ptrs.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        if code != 0 {
            return Err(BackendError::Call {
                call: api.call_name("launch_kernel"),
                code,
                name: format!("{} (kernel {})", api.error_name(code), self.name),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernel({})", self.name)
    }
}
