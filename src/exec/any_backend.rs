//! One model type for every device: [`AnyBackend`] is the CPU or the GPU
//! executor (the `load` module makes one for the device a user names).

use super::cpu_model::CpuModel;
use super::gpu_model::GpuModel;
use super::session::{StepBackend, StepLimits};
use super::step::{StepInputs, TopRows};
use super::ExecError;
use crate::backend::{Device, Vendor};

/// The CPU or a GPU executor.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnyBackend {
    /// `why`: how the CPU was chosen ("asked for", or why no GPU).
    Cpu {
        model: CpuModel,
        why: String,
    },
    Gpu(GpuModel),
}

impl AnyBackend {
    /// `cuda:0 (NVIDIA H100 80GB HBM3, sm_90)` or `cpu (...)`.
    pub fn describe(&self) -> String {
        match self {
            AnyBackend::Cpu { why, .. } => format!("cpu ({why})"),
            AnyBackend::Gpu(g) => Device::Gpu(g.gpu().clone()).describe(),
        }
    }

    /// `cpu`, `cuda` or `hip`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyBackend::Cpu { .. } => "cpu",
            AnyBackend::Gpu(g) => match g.gpu().vendor() {
                Vendor::Cuda => "cuda",
                Vendor::Hip => "hip",
            },
        }
    }

    pub fn gpu_model(&mut self) -> Option<&mut GpuModel> {
        match self {
            AnyBackend::Gpu(g) => Some(g),
            AnyBackend::Cpu { .. } => None,
        }
    }

    /// Runs `step` and returns each output row's argmax token: on a GPU
    /// only the ids cross to the host.
    pub fn run_step_argmax(&mut self, step: &StepInputs) -> Result<Vec<u32>, ExecError> {
        match self {
            AnyBackend::Gpu(g) => g.run_step_argmax(step),
            AnyBackend::Cpu { model, .. } => {
                let vocab = model.vocab();
                let logits = model.run_step(step)?;
                Ok(logits.chunks_exact(vocab).map(argmax).collect())
            }
        }
    }
}

/// Index of the largest value, the first of equal ones (NaN never wins).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

impl StepBackend for AnyBackend {
    fn run_step(&mut self, step: &StepInputs) -> Result<&[f32], ExecError> {
        match self {
            AnyBackend::Cpu { model, .. } => model.run_step(step),
            AnyBackend::Gpu(g) => g.run_step(step),
        }
    }

    fn limits(&self) -> StepLimits {
        match self {
            AnyBackend::Cpu { model, .. } => model.limits(),
            AnyBackend::Gpu(g) => g.limits(),
        }
    }

    fn vocab(&self) -> usize {
        match self {
            AnyBackend::Cpu { model, .. } => model.vocab(),
            AnyBackend::Gpu(g) => g.vocab(),
        }
    }

    fn top_candidates(&self) -> usize {
        match self {
            AnyBackend::Cpu { model, .. } => model.top_candidates(),
            AnyBackend::Gpu(g) => g.top_candidates(),
        }
    }

    fn run_step_top(&mut self, step: &StepInputs) -> Result<TopRows<'_>, ExecError> {
        match self {
            AnyBackend::Cpu { model, .. } => model.run_step_top(step),
            AnyBackend::Gpu(g) => g.run_step_top(step),
        }
    }

    fn last_logits(&mut self) -> Result<&[f32], ExecError> {
        match self {
            AnyBackend::Cpu { model, .. } => model.last_logits(),
            AnyBackend::Gpu(g) => g.last_logits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.25]), 1);
    }
}
