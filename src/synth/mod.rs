//! Synthetic GGUF models: random weights in exact real layouts.
//!
//! - [`preset`]: the real-shaped speed-test models of
//!   shared/tools/mk_synthetic_gguf.py (`rfc synth qwen05b|llama8b`);
//! - [`layout`]: any model's layout as `rfc inspect --json --full` prints it
//!   (`rfc synth --layout`);
//! - [`tiny`]: tiny models of each architecture for correctness tests (the
//!   HF transformers goldens regenerate them from a seed).
//!
//! Everything is drawn from [`SynthRng`], whose stream is fixed by its
//! source, so a seed names one file byte for byte.

pub mod blocks;
pub mod decoder;
pub mod error;
mod iq_blocks;
pub mod layout;
pub mod preset;
pub mod tiny;
pub mod vocab;

pub use crate::rng::Rng as SynthRng;
pub use blocks::{random_data, Values};
pub use decoder::{DecoderSpec, ExpertFfn, Fill, RoleTypes, Written};
pub use error::SynthError;
pub use preset::Preset;
pub use tiny::{TinyArch, TinySpec};
pub use vocab::Vocab;
