//! The Walsh–Hadamard rotation llama.cpp applies around a quantized KV
//! cache (llama-kv-cache.cpp's `attn_rot_k`/`attn_rot_v`, since its PR
//! 21038): keys and q of every head are rotated by the orthonormal n×n
//! Sylvester matrix `H[i][j] = (−1)^popcount(i & j) / √n` before the keys
//! are quantized, so that a few outlier channels (Qwen2's key biases) are
//! spread over all of them instead of ruining their blocks' scales; values
//! likewise, with the attention output rotated back. `H` is symmetric and
//! its own inverse, so `(Hq)·(Hk) = q·k` and `H Σ w (Hv) = Σ w v`: only the
//! quantization error changes.
//!
//! Which rows are rotated follows llama.cpp: only block-quantized types,
//! only where `head_dim` is a multiple of 64; keys over the largest power
//! of two that divides `head_dim`, values over 64.

use super::kv_cache::KvType;

/// Smallest rotation llama.cpp applies.
const MIN: usize = 64;

/// The rotation size for keys of `ty` in heads of `head_dim`, if any.
pub(crate) fn key_rotation(ty: KvType, head_dim: usize) -> Option<usize> {
    if !rotated(ty, head_dim) {
        return None;
    }
    let mut n = MIN;
    while head_dim.is_multiple_of(2 * n) {
        n *= 2;
    }
    Some(n)
}

/// The rotation size for values of `ty` in heads of `head_dim`, if any.
pub(crate) fn value_rotation(ty: KvType, head_dim: usize) -> Option<usize> {
    rotated(ty, head_dim).then_some(MIN)
}

fn rotated(ty: KvType, head_dim: usize) -> bool {
    ty.block_len() > 1 && head_dim > 0 && head_dim.is_multiple_of(MIN)
}

/// `x ← H x` for every consecutive run of `n` elements (`n` a power of
/// two dividing `x.len()`): the fast transform, then the 1/√n scale.
pub(crate) fn rotate(x: &mut [f32], n: usize) {
    let scale = 1.0 / (n as f32).sqrt();
    for run in x.chunks_exact_mut(n) {
        let mut h = 1;
        while h < n {
            for i in (0..n).step_by(2 * h) {
                for j in i..i + h {
                    let (a, b) = (run[j], run[j + h]);
                    run[j] = a + b;
                    run[j + h] = a - b;
                }
            }
            h *= 2;
        }
        for v in run.iter_mut() {
            *v *= scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix as ggml_gen_hadamard builds it, by doubling.
    fn matrix(n: usize) -> Vec<f64> {
        let mut m = vec![0f64; n * n];
        m[0] = 1.0 / (n as f64).sqrt();
        let mut s = 1;
        while s < n {
            for i in 0..s {
                for j in 0..s {
                    let v = m[i * n + j];
                    m[(i + s) * n + j] = v;
                    m[i * n + j + s] = v;
                    m[(i + s) * n + j + s] = -v;
                }
            }
            s *= 2;
        }
        m
    }

    #[test]
    fn rotate_multiplies_each_run_by_ggmls_matrix() {
        let n = 64;
        let x: Vec<f32> = (0..2 * n).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let mut y = x.clone();
        rotate(&mut y, n);
        let m = matrix(n);
        for r in 0..2 {
            for i in 0..n {
                let want: f64 = (0..n).map(|j| m[i * n + j] * x[r * n + j] as f64).sum();
                assert!((y[r * n + i] as f64 - want).abs() < 1e-5, "{i}");
            }
        }
        // Its own inverse.
        rotate(&mut y, n);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn only_block_types_with_heads_of_whole_64s_rotate() {
        assert_eq!(key_rotation(KvType::Q8_0, 64), Some(64));
        assert_eq!(key_rotation(KvType::Q4_0, 128), Some(128));
        assert_eq!(key_rotation(KvType::Q8_0, 192), Some(64));
        assert_eq!(value_rotation(KvType::Q4_0, 128), Some(64));
        assert_eq!(key_rotation(KvType::Q8_0, 32), None);
        assert_eq!(key_rotation(KvType::F16, 64), None);
        assert_eq!(value_rotation(KvType::Bf16, 128), None);
    }
}
