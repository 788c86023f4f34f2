//! The GPU driver layer: CUDA (libcuda + libnvrtc) and HIP (libamdhip64 +
//! hiprtc) loaded at run time with `libloading`, so one binary builds
//! without any GPU SDK and uses whichever device it finds
//! (ARCHITECTURE.md, decision 5).
//!
//! Both vendors' driver APIs mirror each other, so one table of entry
//! points ([`driver_api`]) and one set of owning wrappers serve both:
//! [`Gpu`] (a device context), [`DeviceBuffer`] (one owner, freed on drop,
//! no `Clone`), [`PinnedBuffer`] (page-locked host staging), [`Stream`], [`Event`], [`Module`]/[`Kernel`], and captured
//! graphs ([`Capture`] → [`GraphExec`]). Every call is checked into a
//! [`BackendError`] naming the call and the code's name. docs/GPU.md
//! describes the layer; [`fault`] injects failures for tests.

mod buffer;
mod device_spec;
mod driver_api;
mod error;
pub mod fault;
mod gpu;
mod graph;
mod kernel_compiler;
mod library;
mod module;
mod offline_clang;
mod pinned;
mod rtc_api;
mod stream;
mod vendor;

use std::sync::Arc;

pub use buffer::{DeviceBuffer, DevicePtr};
pub use device_spec::DeviceSpec;
pub use driver_api::driver_symbols;
pub use error::{BackendError, Result};
pub use gpu::{DeviceInfo, Gpu};
pub use graph::{Capture, GraphExec};
pub use kernel_compiler::KernelCompiler;
pub use module::{Kernel, KernelArgs, KernelResources, LaunchDims, Module};
pub use offline_clang::{isa_version, NotAvailable, OfflineClang};
pub use pinned::PinnedBuffer;
pub use rtc_api::RtcApi;
pub use stream::{Event, Stream};
pub use vendor::Vendor;

/// Where a model runs.
#[derive(Debug, Clone)]
pub enum Device {
    Cpu,
    Gpu(Arc<Gpu>),
}

impl Device {
    /// Opens what `spec` names. `Auto` tries CUDA then HIP device 0 and
    /// settles for the CPU, saying why (through `tracing`). A GPU counts as
    /// working only if its runtime compiler loads too.
    pub fn open(spec: DeviceSpec) -> Result<Device> {
        match spec {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Gpu { vendor, ordinal } => {
                let gpu = Gpu::open(vendor, ordinal)?;
                gpu.compiler()?;
                Ok(Device::Gpu(gpu))
            }
            DeviceSpec::Auto => {
                let mut reasons = Vec::new();
                for vendor in [Vendor::Cuda, Vendor::Hip] {
                    match Gpu::open(vendor, 0).and_then(|g| g.compiler().map(|_| g)) {
                        Ok(g) => {
                            tracing::info!("device auto: using {vendor}:0 ({})", g.info().name);
                            return Ok(Device::Gpu(g));
                        }
                        Err(e) => reasons.push(format!("{vendor}: {e}")),
                    }
                }
                tracing::info!("device auto: using the CPU ({})", reasons.join("; "));
                Ok(Device::Cpu)
            }
        }
    }

    /// `cpu` or `cuda:0 (NVIDIA H100 80GB HBM3, sm_90)`.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Gpu(g) => {
                let i = g.info();
                format!("{}:{} ({}, {})", i.vendor, i.ordinal, i.name, i.arch)
            }
        }
    }
}

/// Checks that `vendor`'s driver and compiler libraries load and that every
/// entry point the layer uses resolves, without initialising the driver.
/// Returns the two library paths.
pub fn probe_libraries(vendor: Vendor) -> Result<(String, String)> {
    let d = driver_api::DriverApi::load(vendor)?;
    let r = RtcApi::load(vendor)?;
    Ok((d.library, r.library))
}
