//! Loading: a GGUF file or an artifact to a model ready to run on a device.
//!
//! This room sits above both [`crate::exec`] (the executors, which run
//! plans without knowing where they were stored) and [`crate::artifact`]
//! (the stored form): a GGUF goes through the frontend and the passes, an
//! artifact's stored IR, plan and code objects are restored, and either
//! becomes a CPU or GPU executor. `rfc run`, `rfc serve` and the benches
//! all load through here.
//!
//! - [`options`]: the limits a model is compiled and loaded for;
//! - [`model`]: the loaded model and the load error;
//! - [`cpu`]: a GGUF compiled for the CPU;
//! - [`device`]: the device a user names (`auto`, `cpu`, `cuda[:N]`,
//!   `hip[:N]`), GGUF or artifact;
//! - [`cpu_artifact`], [`gpu_artifact`]: an artifact restored for the CPU
//!   or its GPU (stored code objects, no kernel compiler);
//! - [`tune_artifact`]: a GPU artifact's matmul variants timed on its GPU
//!   and recorded in it.

pub mod cpu;
pub mod cpu_artifact;
pub mod device;
pub mod gpu_artifact;
pub mod model;
pub mod options;
pub mod tune_artifact;

pub use crate::exec::kv_pages::PAGE_SIZE;
pub use cpu::load_cpu;
pub use cpu_artifact::{load_cpu_artifact, load_cpu_verified};
pub use device::{load, load_gpu, load_with, on_cpu, require_f16_cache};
pub use gpu_artifact::load_gpu_artifact;
pub use model::{LoadError, LoadedModel};
pub use options::{kv_pool_pages, plan_env, LoadOptions};
pub use tune_artifact::tune_artifact;
