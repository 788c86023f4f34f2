//! Mixture-of-experts kernels (experts.hip): the router's top-k over the
//! router logits, and the routed SwiGLU feed-forward.
//!
//! The experts op runs as one launch pair per selected slot: `experts_up`
//! (gate and up of every token's slot-`j` expert, SwiGLU) into an
//! f32[T, ff] activation, then `experts_down` (that expert's down rows,
//! weighted by the route, added into the output). Slot 0 starts from the
//! residual (or zero), later slots add to the output in slot order, so
//! the sum is deterministic and needs no atomics. Experts are read by id
//! on the device: the launches never depend on the routing, so they replay
//! inside a captured graph, and a token reads only its experts' rows. The
//! activation needs room for one slot's rows only, which is the memory
//! plan's `activated` scratch part (f32[T, ff]).

use super::error::{unsupported, CodegenError};
use super::source::{gpu_supports, type_id, type_label, KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream};
use crate::quant::GgmlType;

/// Tokens a router block takes (one thread each).
const ROUTER_BLOCK: u32 = 64;
/// Warps of an experts block (experts.hip's `WARPS`), one weight row each.
const WARPS: u32 = 8;

/// The router of `n_expert` logits a token choosing `top_k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSpec {
    pub n_expert: u32,
    pub top_k: u32,
}

impl RouterSpec {
    pub const ENTRY: &'static str = "router";

    pub fn source(&self) -> Result<KernelSource, CodegenError> {
        let (e, k) = (self.n_expert, self.top_k);
        if k == 0 || k > e {
            return Err(unsupported(
                Self::ENTRY,
                format!("top_k={k} of {e} experts"),
            ));
        }
        Ok(KernelSource::new(
            Template::Experts,
            format!("router_e{e}_k{k}"),
            &[Self::ENTRY],
        )
        .define("ROUTER_E", e)
        .define("ROUTER_K", k)
        .define("ROUTER_BLOCK", ROUTER_BLOCK))
    }

    /// Routes `tokens` rows of logits (`ld` apart) into `out` (`[tokens,
    /// 2·top_k]` rows `ldo` apart: ids as f32, then weights).
    ///
    /// # Safety
    /// `logits`: `tokens` rows of `ld` f32 holding `n_expert`; `out`:
    /// `tokens` rows of `ldo` f32 holding `2·top_k`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn launch(
        &self,
        kernel: &Kernel,
        stream: &Stream,
        logits: DevicePtr,
        ld: u32,
        out: DevicePtr,
        ldo: u32,
        tokens: u32,
    ) -> Result<()> {
        if tokens == 0 {
            return Ok(());
        }
        let args = KernelArgs::new()
            .ptr(logits)
            .u32(ld)
            .ptr(out)
            .u32(ldo)
            .u32(tokens);
        let grid = tokens.div_ceil(ROUTER_BLOCK);
        kernel.launch(stream, LaunchDims::new([grid, 1, 1], ROUTER_BLOCK), &args)
    }
}

/// The routed feed-forward of `n_expert` experts of width `ff` over rows
/// of `d`, `top_k` slots a token; gate/up `[E, ff, d]`, down `[E, d, ff]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpertsSpec {
    pub d: u32,
    pub ff: u32,
    pub n_expert: u32,
    pub top_k: u32,
    pub gate: GgmlType,
    pub up: GgmlType,
    pub down: GgmlType,
}

/// Device addresses of one experts op.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExpertsArgs {
    /// The (normalized) input rows.
    pub x: DevicePtr,
    pub ldx: u32,
    /// f32[T, 2·top_k]: the router's ids and weights.
    pub route: DevicePtr,
    pub ldr: u32,
    pub gate: DevicePtr,
    pub up: DevicePtr,
    pub down: DevicePtr,
    /// Added under the residual epilogue; NULL for none.
    pub residual: DevicePtr,
    pub ldres: u32,
    /// f32[T, ff] scratch: one slot's activations.
    pub act: DevicePtr,
    pub out: DevicePtr,
    pub ldo: u32,
    pub tokens: u32,
}

impl ExpertsSpec {
    pub const UP: &'static str = "experts_up";
    pub const DOWN: &'static str = "experts_down";

    /// Refuses by name what the kernels cannot read.
    pub fn validate(&self) -> Result<(), CodegenError> {
        let what = "experts";
        for (name, ty, k) in [
            ("gate", self.gate, self.d),
            ("up", self.up, self.d),
            ("down", self.down, self.ff),
        ] {
            if !gpu_supports(ty) {
                return Err(unsupported(
                    what,
                    format!("{name} weights of {}", ty.name()),
                ));
            }
            if !k.is_multiple_of(32) || !(k as usize).is_multiple_of(ty.block_len()) {
                return Err(unsupported(
                    what,
                    format!("{name} rows of {k} {} values", ty.name()),
                ));
            }
        }
        if self.top_k == 0 || self.top_k > self.n_expert {
            return Err(unsupported(
                what,
                format!("top_k={} of {} experts", self.top_k, self.n_expert),
            ));
        }
        Ok(())
    }

    pub fn source(&self) -> Result<KernelSource, CodegenError> {
        self.validate()?;
        let label = format!(
            "experts_d{}_ff{}_e{}_k{}_{}_{}_{}",
            self.d,
            self.ff,
            self.n_expert,
            self.top_k,
            type_label(self.gate),
            type_label(self.up),
            type_label(self.down)
        );
        Ok(
            KernelSource::new(Template::Experts, label, &[Self::UP, Self::DOWN])
                .reading(self.gate)
                .reading(self.up)
                .reading(self.down)
                .define("EXPERTS_D", self.d)
                .define("EXPERTS_FF", self.ff)
                .define("EXPERTS_E", self.n_expert)
                .define("EXPERTS_K", self.top_k)
                .define("GATE_TYPE", type_id(self.gate))
                .define("UP_TYPE", type_id(self.up))
                .define("DOWN_TYPE", type_id(self.down)),
        )
    }

    /// Queues the op: for each slot in order, the up launch, then the
    /// down launch that adds the slot into the output. `warp`: the
    /// compiled target's `RFC_WARP`.
    ///
    /// # Safety
    /// Pointers as [`ExpertsArgs`] states, sized for `a.tokens` rows; the
    /// weights hold `n_expert` experts of the spec's types and shapes.
    pub unsafe fn launch(
        &self,
        up: &Kernel,
        down: &Kernel,
        stream: &Stream,
        warp: u32,
        a: &ExpertsArgs,
    ) -> Result<()> {
        if a.tokens == 0 {
            return Ok(());
        }
        let block = WARPS * warp;
        let up_grid = LaunchDims::new([self.ff.div_ceil(WARPS), a.tokens, 1], block);
        let down_grid = LaunchDims::new([self.d.div_ceil(WARPS), a.tokens, 1], block);
        for slot in 0..self.top_k {
            let args = KernelArgs::new()
                .ptr(a.x)
                .u32(a.ldx)
                .ptr(a.route)
                .u32(a.ldr)
                .ptr(a.gate)
                .ptr(a.up)
                .ptr(a.act)
                .u32(slot)
                .u32(a.tokens);
            up.launch(stream, up_grid, &args)?;
            let args = KernelArgs::new()
                .ptr(a.act)
                .ptr(a.route)
                .u32(a.ldr)
                .ptr(a.down)
                .ptr(a.residual)
                .u32(a.ldres)
                .ptr(a.out)
                .u32(a.ldo)
                .u32(slot)
                .u32(a.tokens);
            down.launch(stream, down_grid, &args)?;
        }
        Ok(())
    }
}
