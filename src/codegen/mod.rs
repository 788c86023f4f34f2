//! Code generation: the kernel templates of kernel_templates/ specialized
//! for a model's exact shapes and a target GPU (ARCHITECTURE.md, decision
//! 4), and compiled once per (template, constants, target, compiler
//! version) through [`KernelCache`].
//!
//! Each kernel family has a spec type that validates its constants, makes
//! the [`KernelSource`], and launches the compiled kernel with typed
//! arguments: [`MatMulSpec`] (fused matmuls, decode and prefill variants),
//! [`AttentionKernelSpec`], [`RowOp`] (embedding, RMSNorm, row gather,
//! argmax), [`KvStoreSpec`] (the paged cache of [`KvLayout`]) and the
//! element-wise ops. docs/KERNELS.md states every
//! template's contract.

pub mod attention;
pub mod cache;
pub mod cache_entry;
pub mod elementwise;
pub mod error;
pub mod experts;
pub mod known_targets;
pub mod kv_layout;
pub mod kv_store;
pub mod lattice_grids;
pub mod matmul;
pub mod plan;
pub mod rows;
pub mod source;
pub mod target;

pub use attention::{AttentionArgs, AttentionKernelSpec};
pub use cache::KernelCache;
pub use error::CodegenError;
pub use experts::{ExpertsArgs, ExpertsSpec, RouterSpec};
pub use kv_layout::KvLayout;
pub use kv_store::{KvStoreArgs, KvStoreSpec};
pub use matmul::{
    KvEpilogue, MatMulArgs, MatMulKernel, MatMulSpec, MatMulVariant, RepackFormat, RopeEpilogue,
    Segment,
};
pub use rows::RowOp;
pub use source::{KernelSource, Template, GPU_TYPES};
pub use target::Target;
