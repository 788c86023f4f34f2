//! Activations prepared once per op input, shared by every weight matrix
//! that reads them (e.g. Q5_0 q/k and Q8_0 v of one QKV matmul).
//!
//! Quantized weights are multiplied with 8-bit activations, in the form
//! their dot kernel wants:
//! - 32-element weight blocks read [`ActBlock32`] (scale per 32, plus the
//!   block's integer sum for the offset/min corrections);
//! - K-quant super-blocks read [`ActBlock256`] (scale per 256, plus sums per
//!   16 for the mins), so sub-block scales can be applied in integers;
//! - F32/F16/BF16 weights read the activations as f32, unquantized.
//!
//! Scales are kept in f32 (ggml rounds Q8_0's to f16); values are rounded to
//! nearest in -127..=127, symmetric, so `-q` never overflows.

use super::error::KernelError;
use super::simd::SimdPath;
use crate::quant::GgmlType;

/// 32 activations: `x[i] ≈ d * qs[i]`; `sum = Σ qs`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct ActBlock32 {
    pub d: f32,
    pub sum: i32,
    pub qs: [i8; 32],
}

/// 256 activations: `x[i] ≈ d * qs[i]`; `bsums[g] = Σ qs[16g..16g+16]`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct ActBlock256 {
    pub d: f32,
    pub bsums: [i16; 16],
    pub qs: [i8; 256],
}

impl Default for ActBlock256 {
    fn default() -> Self {
        ActBlock256 {
            d: 0.0,
            bsums: [0; 16],
            qs: [0; 256],
        }
    }
}

/// The activation form a weight type's dot kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActFormat {
    F32,
    Q8x32,
    Q8x256,
}

impl ActFormat {
    /// The form that weights of type `ty` multiply with, or `None` for a
    /// type the kernels do not compute with.
    pub fn for_weights(ty: GgmlType) -> Option<ActFormat> {
        use GgmlType::*;
        match ty {
            F32 | F16 | BF16 => Some(ActFormat::F32),
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => Some(ActFormat::Q8x32),
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Some(ActFormat::Q8x256),
            _ => None,
        }
    }

    /// Elements per block of this form.
    pub fn block_len(self) -> usize {
        match self {
            ActFormat::F32 => 1,
            ActFormat::Q8x32 => 32,
            ActFormat::Q8x256 => 256,
        }
    }
}

/// `T` rows of `k` activations in the forms requested. Buffers grow to the
/// largest shape seen and are reused: after warm-up, preparing allocates
/// nothing.
#[derive(Debug, Default)]
pub struct QuantizedActs {
    t: usize,
    k: usize,
    f32s: Vec<f32>,
    q32: Vec<ActBlock32>,
    q256: Vec<ActBlock256>,
    has: [bool; 3],
}

fn slot(f: ActFormat) -> usize {
    match f {
        ActFormat::F32 => 0,
        ActFormat::Q8x32 => 1,
        ActFormat::Q8x256 => 2,
    }
}

impl QuantizedActs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Token rows held.
    pub fn rows(&self) -> usize {
        self.t
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Whether the form is present.
    pub fn has(&self, f: ActFormat) -> bool {
        self.has[slot(f)]
    }

    /// Prepares `x` (`t` rows of `k`) for weights of the given types, on the
    /// fastest path.
    pub fn prepare(
        &mut self,
        x: &[f32],
        t: usize,
        k: usize,
        weight_types: &[GgmlType],
    ) -> Result<(), KernelError> {
        self.prepare_with(SimdPath::detect(), x, t, k, weight_types)
    }

    /// [`prepare`](Self::prepare) on an explicit path (tests compare paths).
    pub fn prepare_with(
        &mut self,
        path: SimdPath,
        x: &[f32],
        t: usize,
        k: usize,
        weight_types: &[GgmlType],
    ) -> Result<(), KernelError> {
        check_len("activations", x.len(), t * k)?;
        let mut want = [false; 3];
        for &ty in weight_types {
            let f = ActFormat::for_weights(ty).ok_or(KernelError::UnsupportedType {
                what: "activation quantization",
                ty,
            })?;
            if !k.is_multiple_of(f.block_len()) {
                return Err(KernelError::RaggedRow {
                    what: "activation quantization",
                    ty,
                    cols: k,
                    block: f.block_len(),
                });
            }
            want[slot(f)] = true;
        }
        self.t = t;
        self.k = k;
        self.has = want;
        if want[0] {
            self.f32s.clear();
            self.f32s.extend_from_slice(x);
        }
        if want[1] {
            self.q32.resize(t * k / 32, ActBlock32::default());
            quantize_x32(path, x, &mut self.q32[..t * k / 32]);
        }
        if want[2] {
            self.q256.resize(t * k / 256, ActBlock256::default());
            quantize_x256(path, x, &mut self.q256[..t * k / 256]);
        }
        Ok(())
    }

    /// Row `t` as f32 (present when prepared for a float weight type).
    pub fn f32_row(&self, t: usize) -> &[f32] {
        &self.f32s[t * self.k..(t + 1) * self.k]
    }

    /// Row `t` as 32-element blocks.
    pub fn q32_row(&self, t: usize) -> &[ActBlock32] {
        let n = self.k / 32;
        &self.q32[t * n..(t + 1) * n]
    }

    /// Row `t` as 256-element blocks.
    pub fn q256_row(&self, t: usize) -> &[ActBlock256] {
        let n = self.k / 256;
        &self.q256[t * n..(t + 1) * n]
    }
}

pub(crate) fn check_len(
    what: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if found == expected {
        Ok(())
    } else {
        Err(KernelError::SizeMismatch {
            what,
            unit: "elements",
            expected,
            found,
        })
    }
}

/// Rounds `x / d` to the nearest integer in -127..=127 (`id = 1/d`, or 0 for
/// an all-zero block).
#[inline]
fn q8(x: f32, id: f32) -> i8 {
    (x * id).round().clamp(-127.0, 127.0) as i8
}

fn scale_of(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    (d, if d > 0.0 { 1.0 / d } else { 0.0 })
}

fn quantize_x32(path: SimdPath, x: &[f32], out: &mut [ActBlock32]) {
    let _ = path;
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(32)) {
        let (d, id) = scale_of(xs);
        b.d = d;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = q8(v, id);
        }
        b.sum = b.qs.iter().map(|&q| q as i32).sum();
    }
}

fn quantize_x256(path: SimdPath, x: &[f32], out: &mut [ActBlock256]) {
    let _ = path;
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(256)) {
        let (d, id) = scale_of(xs);
        b.d = d;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = q8(v, id);
        }
        for (g, s) in b.bsums.iter_mut().enumerate() {
            *s = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i16).sum();
        }
    }
}
