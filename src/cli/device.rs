//! `--device auto|cpu|hip[:N]|cuda[:N]`, shared by the commands that run a
//! model; says on stderr which device runs it.

use std::path::Path;

use clap::Args;

use rocmforge::backend::DeviceSpec;
use rocmforge::exec::any_backend::{self, AnyBackend};
use rocmforge::exec::load::{LoadOptions, LoadedModel};

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
        let model = any_backend::load(path, opts, self.spec()?)?;
        eprintln!("device: {}", model.session.backend().describe());
        Ok(model)
    }
}
