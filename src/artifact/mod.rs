//! Compiled artifacts (`rfc compile MODEL.gguf -o MODEL.rfc`): everything
//! `rfc run` needs in one file, so that it starts without the frontend, the
//! passes or a kernel compiler.
//!
//! The container is a GGUF file written by our own writer (standard GGUF
//! tools list it): the source model's metadata (tokenizer, hparams) kept,
//! `rfc.*` keys holding the format version, target, final IR text, memory
//! plan, launch schedule, kernel sources and checksums, and as tensors every
//! weight the compiled graph reads (original names and bytes, page-aligned
//! for mmap) followed by the kernel code objects (`rfc.kernel.NNNN`, I8).
//! docs/ARTIFACT.md is the format's reference.
//!
//! - [`write`]: compile a GGUF model into an artifact;
//! - [`read`]: open one, checking version, length and checksums;
//! - [`summary`]: what is inside, for `rfc inspect`.
//!
//! `crate::load` turns an artifact into a model on a device.

pub mod checksum;
pub mod error;
pub mod kernels;
pub mod partial;
pub mod peek;
pub mod plan_check;
pub mod plan_record;
pub mod progress;
pub mod read;
pub mod summary;
pub mod target;
pub mod write;

pub use error::ArtifactError;
pub use peek::peek_target;
pub use progress::{Bars, Progress, Silent};
pub use read::Artifact;
pub use target::ArtifactTarget;
pub use write::{compile_artifact, reseal, CompileOptions, CompileReport};

use crate::gguf::{GgufFile, Metadata, TensorInfo};

/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The GGUF version of the container (part of the header checksum).
pub const GGUF_VERSION: u32 = 3;

/// Tensor data alignment: one page, so each weight can be mapped, advised
/// or registered for DMA on its own.
pub const ALIGNMENT: u32 = 4096;

/// The `rfc.*` metadata keys.
pub mod keys {
    pub const FORMAT_VERSION: &str = "rfc.format_version";
    pub const COMPILER: &str = "rfc.compiler";
    pub const TARGET: &str = "rfc.target";
    pub const KERNEL_COMPILER: &str = "rfc.kernel_compiler";
    pub const SOURCE_NAME: &str = "rfc.source.name";
    pub const SOURCE_SHA256: &str = "rfc.source_sha256";
    pub const SPEC: &str = "rfc.spec";
    pub const TIED_OUTPUT: &str = "rfc.tied_output";
    pub const OPTIONAL_TENSORS: &str = "rfc.optional_tensors";
    pub const WEIGHT_LAYOUT: &str = "rfc.weights.layout";
    pub const IR: &str = "rfc.ir";
    pub const PLAN: &str = "rfc.plan";
    pub const LAUNCHES: &str = "rfc.launches";
    /// GPU targets: the matmul variant per step size (JSON,
    /// `exec::gpu_model::tune::MatMulTuning`), timed where the target's
    /// GPU was present at compile time, else the stated defaults.
    pub const MATMUL_TUNING: &str = "rfc.matmul_tuning";
    pub const KERNEL_LABELS: &str = "rfc.kernel.labels";
    pub const KERNEL_ENTRIES: &str = "rfc.kernel.entries";
    pub const KERNEL_SOURCES: &str = "rfc.kernel.sources";
    pub const CHECKSUM_PREFIX: &str = "rfc.checksum.";
    pub const CHECKSUM_HEADER: &str = "rfc.checksum.header";
    pub const CHECKSUM_IR: &str = "rfc.checksum.ir";
    pub const CHECKSUM_PLAN: &str = "rfc.checksum.plan";
    pub const CHECKSUM_KERNELS: &str = "rfc.checksum.kernels";
    pub const CHECKSUM_WEIGHTS: &str = "rfc.checksum.weights";
    /// One XXH3-64 per weight, checked by every load unless skipped.
    pub const CHECKSUM_WEIGHTS_FAST: &str = "rfc.checksum.weights_xxh3";
    /// Prefix of the code-object tensors.
    pub const KERNEL_TENSOR_PREFIX: &str = "rfc.kernel.";
}

/// Whether `file` is an artifact (has `rfc.format_version`) rather than a
/// plain GGUF model.
pub fn is_artifact(file: &GgufFile) -> bool {
    file.metadata().get(keys::FORMAT_VERSION).is_some()
}

/// Keys whose values have a checksum of their own, and the checksums.
/// Only the checksum keys this format defines are left out of the header:
/// a damaged key name (`rfc.checksum.weights_xxh2`) is then a header
/// mismatch instead of a checksum list that silently went missing.
fn covered_elsewhere(key: &str) -> bool {
    [
        keys::CHECKSUM_HEADER,
        keys::CHECKSUM_IR,
        keys::CHECKSUM_PLAN,
        keys::CHECKSUM_KERNELS,
        keys::CHECKSUM_WEIGHTS,
        keys::CHECKSUM_WEIGHTS_FAST,
    ]
    .contains(&key)
        || [
            keys::IR,
            keys::PLAN,
            keys::LAUNCHES,
            keys::KERNEL_LABELS,
            keys::KERNEL_ENTRIES,
            keys::KERNEL_SOURCES,
        ]
        .contains(&key)
}

/// `rfc.checksum.header`: the GGUF version, every metadata entry but the
/// parts with their own checksum, then the whole tensor table.
fn header_digest(gguf_version: u32, md: &Metadata, tensors: &[TensorInfo]) -> String {
    let mut h = checksum::Hasher::new(keys::CHECKSUM_HEADER);
    h.u64(gguf_version as u64);
    for (k, v) in md.iter().filter(|(k, _)| !covered_elsewhere(k)) {
        h.key_value(k, v);
    }
    for t in tensors {
        h.tensor_info(t);
    }
    h.hex()
}

fn ir_digest(ir: &str) -> String {
    let mut h = checksum::Hasher::new(keys::CHECKSUM_IR);
    h.str(ir);
    h.hex()
}

fn plan_digest(plan: &str, launches: &str) -> String {
    let mut h = checksum::Hasher::new(keys::CHECKSUM_PLAN);
    h.str(plan).str(launches);
    h.hex()
}

/// Labels, entries, sources and code of every kernel, in order.
fn kernels_digest<'a>(
    labels: &[&str],
    entries: &[&str],
    sources: &[&str],
    codes: impl Iterator<Item = &'a [u8]>,
) -> String {
    let mut h = checksum::Hasher::new(keys::CHECKSUM_KERNELS);
    h.u64(labels.len() as u64);
    for part in [labels, entries, sources] {
        for s in part {
            h.str(s);
        }
    }
    for code in codes {
        h.bytes(code);
    }
    h.hex()
}

/// Whether a tensor holds a kernel code object rather than a weight.
fn is_kernel_tensor(name: &str) -> bool {
    name.starts_with(keys::KERNEL_TENSOR_PREFIX)
}

/// The name of the `i`th code-object tensor (short: ggml limits tensor
/// names to 63 bytes, and labels are longer).
fn kernel_tensor_name(i: usize) -> String {
    format!("{}{i:04}", keys::KERNEL_TENSOR_PREFIX)
}
