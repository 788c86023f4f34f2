// ROCmForge kernel prelude: the few differences between HIP (hiprtc, AMD)
// and CUDA (NVRTC, NVIDIA), so every template is written once.
//
// No system header is included: NVRTC finds none without the toolkit's
// include folder, and hiprtc brings its own builtin prelude. Everything a
// template needs is defined here.

#if defined(__HIPCC_RTC__) || defined(__HIP__) || defined(__HIP_DEVICE_COMPILE__)
#define RFC_HIP 1
#else
#define RFC_CUDA 1
#endif

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

#define RFC_DEV static __device__ __forceinline__
// Templates and their explicit specializations (which take no storage class).
#define RFC_DEVT __device__ __forceinline__
#define RFC_KERNEL extern "C" __global__

// ---- warps -----------------------------------------------------------------
#if RFC_HIP
#ifdef __AMDGCN_WAVEFRONT_SIZE
#define RFC_WARP __AMDGCN_WAVEFRONT_SIZE
#else
#define RFC_WARP 32
#endif
RFC_DEV float rfc_shfl_xor(float v, int m) { return __shfl_xor(v, m, RFC_WARP); }
RFC_DEV int rfc_shfl_xor_i(int v, int m) { return __shfl_xor(v, m, RFC_WARP); }
RFC_DEV float rfc_shfl(float v, int lane) { return __shfl(v, lane, RFC_WARP); }
#else
#define RFC_WARP 32
RFC_DEV float rfc_shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
RFC_DEV int rfc_shfl_xor_i(int v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
RFC_DEV float rfc_shfl(float v, int lane) { return __shfl_sync(0xffffffffu, v, lane); }
#endif

// Sum / max over the whole warp; every lane gets the result.
RFC_DEV float warp_sum(float v) {
#pragma unroll
    for (int m = RFC_WARP / 2; m > 0; m >>= 1) v += rfc_shfl_xor(v, m);
    return v;
}
RFC_DEV float warp_max(float v) {
#pragma unroll
    for (int m = RFC_WARP / 2; m > 0; m >>= 1) v = fmaxf(v, rfc_shfl_xor(v, m));
    return v;
}
// Sum over aligned groups of `width` lanes (a power of two <= RFC_WARP).
RFC_DEV float group_sum(float v, int width) {
    for (int m = width / 2; m > 0; m >>= 1) v += rfc_shfl_xor(v, m);
    return v;
}
RFC_DEV float group_max(float v, int width) {
    for (int m = width / 2; m > 0; m >>= 1) v = fmaxf(v, rfc_shfl_xor(v, m));
    return v;
}

// ---- bit casts and constants ---------------------------------------------------
RFC_DEV float bits_f32(u32 b) {
    union { u32 u; float f; } c;
    c.u = b;
    return c.f;
}
RFC_DEV u32 f32_bits(float f) {
    union { u32 u; float f; } c;
    c.f = f;
    return c.u;
}
// -infinity without INFINITY (undeclared under hiprtc).
#define RFC_NEG_INF bits_f32(0xff800000u)

// ---- half precision, as raw 16-bit patterns ------------------------------------
#if RFC_HIP
RFC_DEV float h2f(u16 b) {
    union { u16 u; _Float16 h; } c;
    c.u = b;
    return (float)c.h;
}
RFC_DEV u16 f2h(float f) {
    union { u16 u; _Float16 h; } c;
    c.h = (_Float16)f;  // round to nearest even
    return c.u;
}
#else
RFC_DEV float h2f(u16 b) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(b));
    return f;
}
RFC_DEV u16 f2h(float f) {
    u16 b;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(f));
    return b;
}
#endif

// Unaligned little-endian reads from quant blocks (blocks are only 2-byte
// aligned: 22 bytes for Q5_0, 34 for Q8_0).
RFC_DEV u16 ld_u16(const u8* p) { return *(const u16*)p; }
RFC_DEV u32 ld_u32_a2(const u8* p) { return (u32)ld_u16(p) | ((u32)ld_u16(p + 2) << 16); }
RFC_DEV float ld_half(const u8* p) { return h2f(ld_u16(p)); }

// 16-byte vector of floats (own type: no vector_types.h needed).
struct alignas(16) f4 {
    float x, y, z, w;
};
RFC_DEV f4 ld_f4(const float* p) { return *(const f4*)p; }

RFC_DEV float silu(float x) { return x / (1.0f + expf(-x)); }

// ---- int8 dot products (matvec_q8.hip) -----------------------------------------
// dot4_i8(a, b, c) = c + sum of the four signed-byte products of a and b.
#if RFC_HIP
#if defined(__gfx1100__) || defined(__gfx1101__) || defined(__gfx1102__) || defined(__gfx1103__)
// RDNA3 has only the mixed-sign form (v_dot4_i32_iu8); both signed here.
RFC_DEV int dot4_i8(int a, int b, int c) { return __builtin_amdgcn_sudot4(true, a, true, b, c, false); }
#elif defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__) || defined(__gfx1030__)
RFC_DEV int dot4_i8(int a, int b, int c) { return __builtin_amdgcn_sdot4(a, b, c, false); }
#else
RFC_DEV int dot4_i8(int a, int b, int c) {
#pragma unroll
    for (int i = 0; i < 4; i++) c += (int)(i8)(a >> (8 * i)) * (int)(i8)(b >> (8 * i));
    return c;
}
#endif
#else
RFC_DEV int dot4_i8(int a, int b, int c) {
    int r;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
#endif

// 16 bytes as four words (one 128-bit load where the address is 16-aligned).
struct alignas(16) u32x4 {
    u32 x, y, z, w;
};

// ==== matrix units: one warp's 16x16x16 tile product ===========================
// C[16x16] += A[16x16] · Bᵀ with f16 operands and f32 accumulation, both
// operands read from shared memory as K-contiguous rows ("row m of A",
// "row n of B", 16 halves each, row pitch `ld` halves, rows 4-byte aligned
// on NVIDIA and 16-byte aligned on AMD). The kernel body stays
// vendor-neutral: it loads fragments, multiplies, and finds where each of
// a lane's MMA_ACC accumulator elements sits with mma_acc_pos.
//   NVIDIA (sm_80+): two mma.sync.aligned.m16n8k16 (n = 0..7, 8..15); lane
//     l = 4g + q holds A rows g, g+8 and B rows g (+8) at k = 2q.., 2q+8..
//     (PTX ISA, "Matrix Fragments for mma.m16n8k16").
//   AMD gfx11 (wave32): v_wmma_f32_16x16x16_f16; lane l holds all 16 k of
//     A row l%16 and B row l%16; accumulator element v is row 2v + l/16,
//     column l%16 (AMD GPUOpen, "WMMA on RDNA 3"). Other AMD targets keep
//     that layout and multiply on the SIMT lanes.
#define MMA_ACC 8
#if RFC_HIP && (defined(__gfx1100__) || defined(__gfx1101__) || defined(__gfx1102__) || \
                defined(__gfx1103__) || defined(__gfx1150__) || defined(__gfx1151__))
#define RFC_WMMA 1
#endif
#if RFC_HIP
typedef _Float16 rfc_h16x16 __attribute__((ext_vector_type(16)));
typedef _Float16 rfc_h16x8 __attribute__((ext_vector_type(8)));
// Row lane%16 as two 16-byte loads (rows are only 16-byte aligned).
RFC_DEV rfc_h16x16 mma_row16(const u16* s, int ld) {
    const u16* r = s + (threadIdx.x % 16) * ld;
    rfc_h16x8 lo = *(const rfc_h16x8*)r, hi = *(const rfc_h16x8*)(r + 8);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
struct MmaA { rfc_h16x16 v; };
struct MmaB { rfc_h16x16 v; };
RFC_DEV void mma_load_a(MmaA& f, const u16* s, int ld) { f.v = mma_row16(s, ld); }
RFC_DEV void mma_load_b(MmaB& f, const u16* s, int ld) { f.v = mma_row16(s, ld); }
#if RFC_WMMA
RFC_DEV void mma_16x16x16(float* c, const MmaA& a, const MmaB& b) {
    typedef float rfc_f32x8 __attribute__((ext_vector_type(8)));
    rfc_f32x8 acc;
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = c[i];
    acc = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(a.v, b.v, acc);
#pragma unroll
    for (int i = 0; i < 8; i++) c[i] = acc[i];
}
#else
// AMD targets without WMMA (gfx9/gfx10): the same fragments and layout,
// multiplied on the SIMT lanes (A rows fetched from their lanes by
// shuffles within each 32-lane half). Correct, not fast.
RFC_DEV void mma_16x16x16(float* c, const MmaA& a, const MmaB& b) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int m = 2 * i + lane / 16;
        float s = c[i];
#pragma unroll
        for (int k = 0; k < 16; k++) s += __shfl((float)a.v[k], m, 32) * (float)b.v[k];
        c[i] = s;
    }
}
#endif
RFC_DEV void mma_acc_pos(int lane, int i, int* m, int* n) {
    *m = 2 * i + lane / 16;
    *n = lane % 16;
}
#else
struct MmaA { u32 r[4]; };
struct MmaB { u32 r[4]; };
RFC_DEV void mma_load_a(MmaA& f, const u16* s, int ld) {
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
    f.r[0] = *(const u32*)(s + g * ld + 2 * q);
    f.r[1] = *(const u32*)(s + (g + 8) * ld + 2 * q);
    f.r[2] = *(const u32*)(s + g * ld + 2 * q + 8);
    f.r[3] = *(const u32*)(s + (g + 8) * ld + 2 * q + 8);
}
RFC_DEV void mma_load_b(MmaB& f, const u16* s, int ld) {
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
    f.r[0] = *(const u32*)(s + g * ld + 2 * q);
    f.r[1] = *(const u32*)(s + g * ld + 2 * q + 8);
    f.r[2] = *(const u32*)(s + (g + 8) * ld + 2 * q);
    f.r[3] = *(const u32*)(s + (g + 8) * ld + 2 * q + 8);
}
RFC_DEV void mma_16x16x16(float* c, const MmaA& a, const MmaB& b) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float* d = c + 4 * h;
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
            "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[2 * h]),
              "r"(b.r[2 * h + 1]));
    }
}
RFC_DEV void mma_acc_pos(int lane, int i, int* m, int* n) {
    const int g = lane / 4, q = lane % 4;
    *m = g + 8 * ((i / 2) % 2);
    *n = 8 * (i / 4) + 2 * q + i % 2;
}
#endif
// ==== end of matrix units ======================================================
