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

// GELU, tanh approximation, as x * sigmoid(2y) with y = sqrt(2/pi) (x +
// 0.044715 x^3): the same number as 0.5 x (1 + tanh y), never overflowing
// (the CPU backend's gelu_tanh, src/exec/cpu/math.rs).
RFC_DEV float gelu_tanh(float x) {
    const float y = 0.7978846f * x * (0.044715f * x * x + 1.0f);
    return x / (1.0f + expf(-2.0f * y));
}

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
// 8 bytes as two words.
struct alignas(8) u32x2 {
    u32 x, y;
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
// The accumulator rows a lane holds: element i is in row slot
// mma_row_slot(i), slot r is tile row mma_slot_row(lane, r). Here a lane
// holds four elements of each of rows g and g + 8.
#define MMA_ROWS 2
RFC_DEV int mma_row_slot(int i) { return (i / 2) % 2; }
RFC_DEV int mma_slot_row(int lane, int r) { return lane / 4 + 8 * r; }
// Max / sum over each row of a 16 x 16 accumulator tile, per row slot: the
// lane's four elements, then the three other lanes of its quad.
RFC_DEV void mma_rows_max(const float* v, float* r) {
    r[0] = fmaxf(fmaxf(v[0], v[1]), fmaxf(v[4], v[5]));
    r[1] = fmaxf(fmaxf(v[2], v[3]), fmaxf(v[6], v[7]));
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) r[0] = fmaxf(r[0], rfc_shfl_xor(r[0], o)), r[1] = fmaxf(r[1], rfc_shfl_xor(r[1], o));
}
RFC_DEV void mma_rows_sum(const float* v, float* r) {
    r[0] = (v[0] + v[1]) + (v[4] + v[5]);
    r[1] = (v[2] + v[3]) + (v[6] + v[7]);
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) r[0] += rfc_shfl_xor(r[0], o), r[1] += rfc_shfl_xor(r[1], o);
}
// An accumulator tile (rows m, columns k) as the A operand of the next
// product, in two f16 terms (v ~ hi + lo). The m16n8k16 accumulator and
// A layouts coincide (elements 2j, 2j+1 are register j's two halves), so
// it stays in registers. (NVIDIA only, as the row helpers above.)
RFC_DEV u32 pack_h2(u16 a, u16 b) { return (u32)a | ((u32)b << 16); }
RFC_DEV void mma_acc_to_a(const float* v, MmaA& hi, MmaA& lo) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const u16 h0 = f2h(v[2 * j]), h1 = f2h(v[2 * j + 1]);
        hi.r[j] = pack_h2(h0, h1);
        lo.r[j] = pack_h2(f2h(v[2 * j] - h2f(h0)), f2h(v[2 * j + 1] - h2f(h1)));
    }
}
#endif
// ==== end of matrix units ======================================================

// ==== int8 matrix units: one warp's 16x16xKI tile product ======================
// C[16x16] (int32) += A[16xKI] · Bᵀ with signed int8 operands, KI = 16 or 32,
// both read from shared memory as K-contiguous int8 rows (row pitch `ld`
// bytes, rows 16-byte aligned; ld = 16 mod 128 keeps the NVIDIA loads free
// of bank conflicts). Accumulator positions as mma_acc_pos above.
//   NVIDIA (sm_80+): mma.sync.aligned.m16n8k{16,32}.row.col.s32.s8.s8.s32,
//     two per tile (n = 0..7, 8..15); lane 4g + q holds A rows g, g+8 and B
//     row g (+8) at k = 4q.. (+16) (PTX ISA, "Matrix Fragments for
//     mma.m16n8k32" / "mma.m16n8k16" with .s8). (ldmatrix loads of the
//     same fragments measured 15 % slower in matmul_q8.hip on the H100.)
//   AMD gfx11: v_wmma_i32_16x16x16_iu8 (both signed), one per 16 k, lane l
//     holding all 16 k of row l%16; other AMD targets multiply on the SIMT
//     lanes in the same layout.
#if RFC_HIP
typedef int rfc_i32x4 __attribute__((ext_vector_type(4)));
template <int KI> struct MmaI8 { rfc_i32x4 v[KI / 16]; };
template <int KI> RFC_DEVT void mma_i8_load(MmaI8<KI>& f, const i8* s, int ld) {
    const i8* r = s + (threadIdx.x % 16) * ld;
#pragma unroll
    for (int h = 0; h < KI / 16; h++) f.v[h] = *(const rfc_i32x4*)(r + 16 * h);
}
template <int KI> using MmaI8A = MmaI8<KI>;
template <int KI> using MmaI8B = MmaI8<KI>;
#define mma_i8_load_a mma_i8_load
#define mma_i8_load_b mma_i8_load
template <int KI> RFC_DEVT void mma_i8(int* c, const MmaI8<KI>& a, const MmaI8<KI>& b) {
#if RFC_WMMA
    typedef int rfc_i32x8 __attribute__((ext_vector_type(8)));
    rfc_i32x8 acc;
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = c[i];
#pragma unroll
    for (int h = 0; h < KI / 16; h++)
        acc = __builtin_amdgcn_wmma_i32_16x16x16_iu8_w32(true, a.v[h], true, b.v[h], acc, false);
#pragma unroll
    for (int i = 0; i < 8; i++) c[i] = acc[i];
#else
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int m = 2 * i + lane / 16;
        int s = c[i];
#pragma unroll
        for (int h = 0; h < KI / 16; h++)
#pragma unroll
            for (int w = 0; w < 4; w++) s = dot4_i8(__shfl(a.v[h][w], m, 32), b.v[h][w], s);
        c[i] = s;
    }
#endif
}
#else
template <int KI> struct MmaI8A { u32 r[KI / 8]; };
template <int KI> struct MmaI8B { u32 r[KI / 8]; };
template <int KI> RFC_DEVT void mma_i8_load_a(MmaI8A<KI>& f, const i8* s, int ld) {
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
#pragma unroll
    for (int h = 0; h < KI / 16; h++) {
        f.r[2 * h] = *(const u32*)(s + g * ld + 16 * h + 4 * q);
        f.r[2 * h + 1] = *(const u32*)(s + (g + 8) * ld + 16 * h + 4 * q);
    }
}
// Registers per n-half: KI / 16, k-order.
template <int KI> RFC_DEVT void mma_i8_load_b(MmaI8B<KI>& f, const i8* s, int ld) {
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int h = 0; h < KI / 16; h++) f.r[n * (KI / 16) + h] = *(const u32*)(s + (8 * n + g) * ld + 16 * h + 4 * q);
}
template <int KI> RFC_DEVT void mma_i8(int* c, const MmaI8A<KI>& a, const MmaI8B<KI>& b) {
#pragma unroll
    for (int n = 0; n < 2; n++) {
        int* d = c + 4 * n;
        // A regs in PTX order: (g, k0), (g+8, k0) [, (g, k16), (g+8, k16)].
        if (KI == 32)
            asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[KI / 16]), "r"(a.r[KI / 16 + 1]),
                  "r"(b.r[(KI / 16) * n]), "r"(b.r[(KI / 16) * n + KI / 32]));
        else
            asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 "
                "{%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                : "r"(a.r[0]), "r"(a.r[1]), "r"(b.r[n]));
    }
}
#endif
// ==== end of int8 matrix units =================================================
