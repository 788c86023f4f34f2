//! ROCmForge: a compiler-style LLM inference runtime.
//!
//! The modules follow the pipeline: a GGUF file is opened ([`gguf`]), its
//! blocks decoded ([`quant`]), turned into a typed graph ([`frontend`] →
//! [`ir`]), rewritten ([`passes`]), and executed ([`exec`]); text goes in and
//! out through [`tokenizer`] and [`sampler`].

pub mod artifact;
pub mod backend;
pub mod codegen;
pub mod exec;
pub mod frontend;
pub mod gguf;
pub mod grammar;
pub mod ir;
pub mod load;
pub mod passes;
pub mod quant;
pub mod rng;
pub mod sampler;
pub mod sched;
pub mod serve;
pub mod synth;
pub mod tokenizer;
