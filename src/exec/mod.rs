//! Execution: a compiled plan replayed step after step by a backend.
//!
//! [`cpu`] holds the CPU kernels, [`cpu_model`] the CPU executor that runs a
//! planned graph with them; [`session`] drives any backend one sequence
//! at a time (the scheduler in `sched` drives many at once).

pub mod any_backend;
pub mod cpu;
pub mod cpu_model;
pub mod error;
pub mod gpu_model;
mod graph_facts;
pub mod kv_pages;
pub mod session;
pub mod step;

pub use error::ExecError;
