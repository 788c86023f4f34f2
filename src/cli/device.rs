//! `--device auto|cpu|hip[:N]|cuda[:N]`, shared by the commands that run a
//! model; says on stderr which device runs it.

use std::path::Path;

use clap::Args;

use rocmforge::backend::DeviceSpec;
use rocmforge::exec::any_backend::AnyBackend;
use rocmforge::load::{LoadOptions, LoadedModel};

#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Where to run: auto (a GPU if one works, else the CPU), cpu, cuda[:N] or hip[:N].
    #[arg(long, default_value = "auto")]
    pub device: String,
}

impl DeviceArgs {
    pub fn spec(&self) -> Result<DeviceSpec, rocmforge::backend::BackendError> {
        DeviceSpec::parse(&self.device)
    }

    /// Loads `path` for the device and prints which one took it.
    pub fn load(
        &self,
        path: &Path,
        opts: &LoadOptions,
    ) -> Result<LoadedModel<AnyBackend>, Box<dyn std::error::Error + Send + Sync>> {
        self.load_with(path, opts, false)
    }

    /// [`load`](Self::load); with `verify`, a GPU artifact's weights are
    /// checked against their checksums first.
    pub fn load_with(
        &self,
        path: &Path,
        opts: &LoadOptions,
        verify: bool,
    ) -> Result<LoadedModel<AnyBackend>, Box<dyn std::error::Error + Send + Sync>> {
        let mut model = rocmforge::load::load_with(path, opts, self.spec()?, verify)?;
        eprintln!("device: {}", model.session.backend().describe());
        if let Some(origin) = kernel_origin(&mut model) {
            eprintln!("kernels: {origin}");
        }
        Ok(model)
    }
}

/// Where a GPU model's kernels came from (`None` on the CPU).
pub fn kernel_origin(model: &mut LoadedModel<AnyBackend>) -> Option<String> {
    let g = model.session.backend_mut().gpu_model()?;
    Some(g.kernel_origin().to_string())
}

/// Whether a runtime kernel compiler's library is mapped into this
/// process (`/proc/self/maps`, Linux): a GPU artifact runs without one.
pub fn rtc_library_mapped() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.contains("libnvrtc") || m.contains("libhiprtc"))
        .unwrap_or(false)
}
