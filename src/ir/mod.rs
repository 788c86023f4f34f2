//! The typed tensor IR: the center of the compiler.
//!
//! A [`Graph`] of [`Op`]s whose values have a [`TensorType`] (element type,
//! block-quant types included, and a shape whose dims may be symbolic
//! [`Dim`]s). The frontend builds it from a GGUF file and an architecture
//! spec, passes rewrite it, and the executors run it.

pub mod dim;
pub mod graph;
pub mod op;
pub mod parse;
pub mod rope;
pub mod tensor_type;
pub mod text;
pub mod verify;

pub use dim::{Dim, DimEnv};
pub use graph::{Graph, Node, NodeId};
pub use op::{
    AttentionSpec, Epilogue, InputKind, MatMulOp, Op, Operand, Prologue, Role, RopeScaling,
    RopeSpec, RopeStyle,
};
pub use tensor_type::TensorType;
