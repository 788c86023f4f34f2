//! Small AVX2 helpers shared by the x86 kernels.

use std::arch::x86_64::*;

/// The f32 value of the IEEE half at `p` (unaligned).
#[inline(always)]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees two readable bytes at p.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Sum of the eight lanes.
#[inline(always)]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 16 bytes of nibbles → 32 bytes: low nibbles first, then high nibbles
/// (ggml's order for 32-element blocks).
#[inline(always)]
pub(super) unsafe fn nibbles_32(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    let x = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let m = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(x, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(x), m);
    _mm256_set_m128i(hi, lo)
}

/// The 16-entry codebook `book` in both 128-bit lanes, for `vpshufb`.
#[inline(always)]
pub(super) unsafe fn codebook(book: &[i8; 16]) -> __m256i {
    // SAFETY: 16 readable bytes.
    unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(book.as_ptr() as *const __m128i)) }
}

/// Bit `j` of `bits` → byte `j` = 0xff if set, else 0.
#[inline(always)]
pub(super) unsafe fn bits_to_bytes(bits: u32) -> __m256i {
    let v = _mm256_set1_epi32(bits as i32);
    // Byte j takes source byte j/8; each lane holds all four source bytes.
    let spread = _mm256_shuffle_epi8(
        v,
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0x0000_0000_0000_0000,
        ),
    );
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select)
}

/// Unsigned bytes `u` times signed bytes `s`, summed in fours into i32
/// lanes. `u * s` pairs must not overflow i16 (|sum of two| < 32768).
#[inline(always)]
pub(super) unsafe fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

thread_local! {
    /// Per-thread scratch for block-major token-group tables; grows to the
    /// largest row seen, then is reused (no allocation per call).
    static GROUP_SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's scratch, at least `n` floats long. Give it back with
/// [`put_scratch`]. (Taken and returned rather than lent to a closure:
/// a closure would not inherit the caller's `#[target_feature]`s when the
/// caller is an `#[inline(always)]` body.)
pub(super) fn take_scratch(n: usize) -> Vec<f32> {
    let mut v = GROUP_SCRATCH.take();
    if v.len() < n {
        v.resize(n, 0.0);
    }
    v
}

/// Returns the scratch taken by [`take_scratch`].
pub(super) fn put_scratch(v: Vec<f32>) {
    GROUP_SCRATCH.set(v);
}

/// Block-major copies of a token group's block scales and scaled sums:
/// `dx[b][t] = x[t].d[b]`, `dsum[b][t] = x[t].dsum[b]`.
pub(super) fn transpose_group<const T: usize>(
    x: &[crate::exec::cpu::acts::Q8x32Row; T],
    dx: &mut [[f32; T]],
    dsum: &mut [[f32; T]],
) {
    for (b, (d, s)) in dx.iter_mut().zip(dsum.iter_mut()).enumerate() {
        for t in 0..T {
            d[t] = x[t].d[b];
            s[t] = x[t].dsum[b];
        }
    }
}
