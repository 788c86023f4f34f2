//! A scalar model of the AVX-512 intrinsics the rows-in-lanes kernels
//! name (src/exec/cpu/dot/x86/avx512_{rows,q32,k}.rs), written from the
//! instructions' definitions (Intel SDM): same names and signatures as
//! `std::arch::x86_64`, so that tests/avx512_emulated.rs can compile those
//! kernels against it and run them on a machine without AVX-512. Lanes are
//! little-endian; per-128-bit-lane operations act on each quarter alone.
//! The lane-permuting ones are checked against the real AVX2 instructions
//! (same per-lane definition) where the machine has them.

#![allow(non_camel_case_types, clippy::missing_safety_doc)]

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub struct __m512i(pub [u8; 64]);

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct __m512(pub [f32; 16]);

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(32))]
pub struct __m256i(pub [u8; 32]);

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(16))]
pub struct __m128i(pub [u8; 16]);

pub type __mmask16 = u16;
pub type __mmask64 = u64;

pub const _MM_HINT_T0: i32 = 3;

impl __m512i {
    pub fn dword(&self, i: usize) -> u32 {
        u32::from_le_bytes(self.0[4 * i..4 * i + 4].try_into().unwrap())
    }
    pub fn from_dwords(f: impl Fn(usize) -> u32) -> Self {
        let mut v = [0u8; 64];
        for i in 0..16 {
            v[4 * i..4 * i + 4].copy_from_slice(&f(i).to_le_bytes());
        }
        __m512i(v)
    }
    fn qword(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.0[8 * i..8 * i + 8].try_into().unwrap())
    }
    fn from_qwords(f: impl Fn(usize) -> u64) -> Self {
        let mut v = [0u8; 64];
        for i in 0..8 {
            v[8 * i..8 * i + 8].copy_from_slice(&f(i).to_le_bytes());
        }
        __m512i(v)
    }
    fn from_bytes(f: impl Fn(usize) -> u8) -> Self {
        __m512i(std::array::from_fn(f))
    }
}

pub unsafe fn _mm_prefetch<const STRATEGY: i32>(_p: *const i8) {}

pub unsafe fn _mm_loadu_si128(p: *const __m128i) -> __m128i {
    unsafe { (p as *const [u8; 16]).read_unaligned().into() }
}

impl From<[u8; 16]> for __m128i {
    fn from(v: [u8; 16]) -> Self {
        __m128i(v)
    }
}

pub unsafe fn _mm_set1_epi8(a: i8) -> __m128i {
    __m128i([a as u8; 16])
}

pub unsafe fn _mm_add_epi8(a: __m128i, b: __m128i) -> __m128i {
    __m128i(std::array::from_fn(|i| a.0[i].wrapping_add(b.0[i])))
}

pub unsafe fn _mm512_setzero_si512() -> __m512i {
    __m512i([0; 64])
}

pub unsafe fn _mm512_setzero_ps() -> __m512 {
    __m512([0.0; 16])
}

pub unsafe fn _mm512_set1_epi32(a: i32) -> __m512i {
    __m512i::from_dwords(|_| a as u32)
}

pub unsafe fn _mm512_set1_epi8(a: i8) -> __m512i {
    __m512i([a as u8; 64])
}

pub unsafe fn _mm512_set1_ps(a: f32) -> __m512 {
    __m512([a; 16])
}

pub unsafe fn _mm512_broadcast_i32x4(a: __m128i) -> __m512i {
    __m512i::from_bytes(|i| a.0[i % 16])
}

/// The upper bits are undefined in the instruction; zero here.
pub unsafe fn _mm512_castsi128_si512(a: __m128i) -> __m512i {
    __m512i::from_bytes(|i| if i < 16 { a.0[i] } else { 0 })
}

pub unsafe fn _mm512_inserti32x4<const IMM8: i32>(a: __m512i, b: __m128i) -> __m512i {
    let at = 16 * (IMM8 as usize & 3);
    __m512i::from_bytes(|i| {
        if (at..at + 16).contains(&i) {
            b.0[i - at]
        } else {
            a.0[i]
        }
    })
}

pub unsafe fn _mm512_unpacklo_epi32(a: __m512i, b: __m512i) -> __m512i {
    // Per 128-bit lane: a0 b0 a1 b1.
    __m512i::from_dwords(|i| {
        let (lane, k) = (i / 4, i % 4);
        let src = if k % 2 == 0 { &a } else { &b };
        src.dword(4 * lane + k / 2)
    })
}

pub unsafe fn _mm512_unpackhi_epi32(a: __m512i, b: __m512i) -> __m512i {
    // Per 128-bit lane: a2 b2 a3 b3.
    __m512i::from_dwords(|i| {
        let (lane, k) = (i / 4, i % 4);
        let src = if k % 2 == 0 { &a } else { &b };
        src.dword(4 * lane + 2 + k / 2)
    })
}

pub unsafe fn _mm512_unpacklo_epi64(a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_qwords(|i| {
        let (lane, k) = (i / 2, i % 2);
        if k == 0 {
            a.qword(2 * lane)
        } else {
            b.qword(2 * lane)
        }
    })
}

pub unsafe fn _mm512_unpackhi_epi64(a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_qwords(|i| {
        let (lane, k) = (i / 2, i % 2);
        if k == 0 {
            a.qword(2 * lane + 1)
        } else {
            b.qword(2 * lane + 1)
        }
    })
}

pub unsafe fn _mm512_and_si512(a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_bytes(|i| a.0[i] & b.0[i])
}

pub unsafe fn _mm512_or_si512(a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_bytes(|i| a.0[i] | b.0[i])
}

pub unsafe fn _mm512_xor_si512(a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_bytes(|i| a.0[i] ^ b.0[i])
}

pub unsafe fn _mm512_sub_epi32(a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_dwords(|i| a.dword(i).wrapping_sub(b.dword(i)))
}

pub unsafe fn _mm512_srli_epi32<const IMM8: u32>(a: __m512i) -> __m512i {
    __m512i::from_dwords(|i| a.dword(i).checked_shr(IMM8).unwrap_or(0))
}

pub unsafe fn _mm512_slli_epi32<const IMM8: u32>(a: __m512i) -> __m512i {
    __m512i::from_dwords(|i| a.dword(i).checked_shl(IMM8).unwrap_or(0))
}

pub unsafe fn _mm512_srai_epi32<const IMM8: u32>(a: __m512i) -> __m512i {
    __m512i::from_dwords(|i| ((a.dword(i) as i32) >> IMM8.min(31)) as u32)
}

pub unsafe fn _mm512_srlv_epi32(a: __m512i, count: __m512i) -> __m512i {
    __m512i::from_dwords(|i| a.dword(i).checked_shr(count.dword(i)).unwrap_or(0))
}

pub unsafe fn _mm512_sllv_epi32(a: __m512i, count: __m512i) -> __m512i {
    __m512i::from_dwords(|i| a.dword(i).checked_shl(count.dword(i)).unwrap_or(0))
}

pub unsafe fn _mm512_shuffle_epi8(a: __m512i, b: __m512i) -> __m512i {
    // Within each 128-bit lane; an index with its top bit set gives 0.
    __m512i::from_bytes(|i| {
        let idx = b.0[i];
        if idx & 0x80 != 0 {
            0
        } else {
            a.0[16 * (i / 16) + (idx & 0x0f) as usize]
        }
    })
}

pub unsafe fn _mm512_test_epi8_mask(a: __m512i, b: __m512i) -> __mmask64 {
    (0..64).fold(0, |k, i| k | (((a.0[i] & b.0[i]) != 0) as u64) << i)
}

pub unsafe fn _mm512_mask_add_epi8(src: __m512i, k: __mmask64, a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_bytes(|i| {
        if k >> i & 1 == 1 {
            a.0[i].wrapping_add(b.0[i])
        } else {
            src.0[i]
        }
    })
}

pub unsafe fn _mm512_cmplt_epu32_mask(a: __m512i, b: __m512i) -> __mmask16 {
    (0..16).fold(0, |k, i| k | ((a.dword(i) < b.dword(i)) as u16) << i)
}

pub unsafe fn _mm512_mask_blend_epi32(k: __mmask16, a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_dwords(|i| {
        if k >> i & 1 == 1 {
            b.dword(i)
        } else {
            a.dword(i)
        }
    })
}

pub unsafe fn _mm512_castsi512_ps(a: __m512i) -> __m512 {
    __m512(std::array::from_fn(|i| f32::from_bits(a.dword(i))))
}

/// `vpmovdw`: each i32 lane truncated to its low 16 bits.
pub unsafe fn _mm512_cvtepi32_epi16(a: __m512i) -> __m256i {
    let mut v = [0u8; 32];
    for i in 0..16 {
        v[2 * i..2 * i + 2].copy_from_slice(&(a.dword(i) as u16).to_le_bytes());
    }
    __m256i(v)
}

pub unsafe fn _mm512_cvtph_ps(a: __m256i) -> __m512 {
    __m512(std::array::from_fn(|i| {
        half::f16::from_bits(u16::from_le_bytes([a.0[2 * i], a.0[2 * i + 1]])).to_f32()
    }))
}

/// Round to nearest, ties to even (the default MXCSR), as `as f32`.
pub unsafe fn _mm512_cvtepi32_ps(a: __m512i) -> __m512 {
    __m512(std::array::from_fn(|i| a.dword(i) as i32 as f32))
}

/// `vpdpbusd`: per i32 lane, the four unsigned bytes of `a` times the four
/// signed bytes of `b`, summed into `src` (wrapping, no saturation).
pub unsafe fn _mm512_dpbusd_epi32(src: __m512i, a: __m512i, b: __m512i) -> __m512i {
    __m512i::from_dwords(|i| {
        let dot: i32 = (0..4)
            .map(|k| a.0[4 * i + k] as i32 * b.0[4 * i + k] as i8 as i32)
            .sum();
        (src.dword(i) as i32).wrapping_add(dot) as u32
    })
}

pub unsafe fn _mm512_mul_ps(a: __m512, b: __m512) -> __m512 {
    __m512(std::array::from_fn(|i| a.0[i] * b.0[i]))
}

/// Fused: one rounding.
pub unsafe fn _mm512_fmadd_ps(a: __m512, b: __m512, c: __m512) -> __m512 {
    __m512(std::array::from_fn(|i| a.0[i].mul_add(b.0[i], c.0[i])))
}

/// `−(a·b) + c`, fused.
pub unsafe fn _mm512_fnmadd_ps(a: __m512, b: __m512, c: __m512) -> __m512 {
    __m512(std::array::from_fn(|i| (-a.0[i]).mul_add(b.0[i], c.0[i])))
}

pub unsafe fn _mm512_load_ps(p: *const f32) -> __m512 {
    assert!((p as usize).is_multiple_of(64), "unaligned _mm512_load_ps");
    unsafe { __m512((p as *const [f32; 16]).read()) }
}

pub unsafe fn _mm512_store_ps(p: *mut f32, a: __m512) {
    assert!((p as usize).is_multiple_of(64), "unaligned _mm512_store_ps");
    unsafe { (p as *mut [f32; 16]).write(a.0) }
}

pub unsafe fn _mm512_storeu_ps(p: *mut f32, a: __m512) {
    unsafe { (p as *mut [f32; 16]).write_unaligned(a.0) }
}

pub unsafe fn _mm512_load_si512(p: *const __m512i) -> __m512i {
    assert!(
        (p as usize).is_multiple_of(64),
        "unaligned _mm512_load_si512"
    );
    unsafe { p.read() }
}

pub unsafe fn _mm512_store_si512(p: *mut __m512i, a: __m512i) {
    assert!(
        (p as usize).is_multiple_of(64),
        "unaligned _mm512_store_si512"
    );
    unsafe { p.write(a) }
}
