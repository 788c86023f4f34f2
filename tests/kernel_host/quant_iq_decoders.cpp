// The device decoders of kernel_templates/quant_iq.h compiled for the host
// (tests/quant_iq_kernel_decoders.rs builds and runs this): every element
// of the gguf package's fixture blocks (tests/fixtures/quant/) decoded
// through dequant8 and through the int8 form (i8_part times i8_scales) must
// equal numpy's f32 bit for bit. -DHOST_AS_HIP takes the HIP branches
// (v_perm_b32 for the codebook lookups), otherwise the CUDA ones
// (__byte_perm); both intrinsics are modelled below as their manuals state.
//
// Usage: quant_iq_decoders LIST, LIST holding lines "TYPE_ID ELEMENTS
// BLOCKS_FILE EXPECTED_FILE". Prints one line per case; exit 1 on any
// mismatch.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

// ---- host stand-ins for kernel_templates/prelude.h --------------------------------
#define __device__
#define __forceinline__ inline
#define RFC_DEV static inline
#define RFC_DEVT inline
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

#ifdef HOST_AS_HIP
#define RFC_HIP 1
// v_perm_b32 (AMD RDNA3 ISA, "V_PERM_B32"): selector byte j picks byte j of
// the 8 bytes {lo word: 0..3, hi word: 4..7}; selectors 0..7 only here.
static u32 host_amdgcn_perm(u32 hi, u32 lo, u32 sel) {
    const u64 v = ((u64)hi << 32) | lo;
    u32 r = 0;
    for (int j = 0; j < 4; j++) {
        const u32 s = (sel >> (8 * j)) & 0xFF;
        if (s > 7) return 0xDEADBEEFu;  // never asked for by quant_iq.h
        r |= (u32)((v >> (8 * s)) & 0xFF) << (8 * j);
    }
    return r;
}
#define __builtin_amdgcn_perm host_amdgcn_perm
#else
#define RFC_CUDA 1
// __byte_perm (CUDA Math API): result byte j is byte (s >> 4j) & 7 of
// {x: 0..3, y: 4..7}.
static u32 __byte_perm(u32 x, u32 y, u32 s) {
    const u64 v = ((u64)y << 32) | x;
    u32 r = 0;
    for (int j = 0; j < 4; j++) r |= (u32)((v >> (8 * ((s >> (4 * j)) & 7))) & 0xFF) << (8 * j);
    return r;
}
#endif
static int __popc(u32 v) { return __builtin_popcount(v); }

RFC_DEV float bits_f32(u32 b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
RFC_DEV u32 f32_bits(float f) {
    u32 b;
    memcpy(&b, &f, 4);
    return b;
}
// IEEE half to float, exactly (subnormals, infinities, NaN payloads).
RFC_DEV float h2f(u16 h) {
    const u32 sign = (u32)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0x1F) return bits_f32(sign | 0x7F800000u | (m << 13));
    if (e != 0) return bits_f32(sign | ((e + 112) << 23) | (m << 13));
    const float v = std::ldexp((float)m, -24);
    return sign ? -v : v;
}
RFC_DEV u16 ld_u16(const u8* p) {
    u16 v;
    memcpy(&v, p, 2);
    return v;
}
RFC_DEV u32 ld_u32_a2(const u8* p) { return (u32)ld_u16(p) | ((u32)ld_u16(p + 2) << 16); }
RFC_DEV float ld_half(const u8* p) { return h2f(ld_u16(p)); }
RFC_DEV float group_max(float v, int) { return v; }  // quant_i8.h's activations, unused here

#include "grids.h"  // written by the test from codegen::lattice_grids
#include "quant.h"
#include "quant_i8.h"
#include "quant_iq.h"

// ---- the check -------------------------------------------------------------------

static bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || f32_bits(a) == f32_bits(b); }

template <int TY> static long check(const std::vector<u8>& blocks, const std::vector<float>& want, long* bad) {
    // A lone row: blocks[] must be 16-aligned as device rows are.
    static_assert(QuantInfo<TY>::BLOCK > 0, "a decoded type");
    const u8* row = blocks.data();
    const long units = (long)want.size() / 32;
    long n = 0;
    for (long u = 0; u < units; u++) {
        float d[2], m;
        i8_scales<TY>(row, (int)u, d, &m);
        for (int p = 0; p < 4; p++) {
            float a[8];
            u32 q[2];
            dequant8<TY>(row, (int)u, p, a);
            i8_part<TY>(row, (int)u, p, q);
            for (int e = 0; e < 8; e++) {
                const long i = u * 32 + p * 8 + e;
                const float b = d[p >> 1] * (float)(i8)(q[e / 4] >> (8 * (e % 4)));
                if (!same(a[e], want[i]) || !same(b, want[i]) || m != 0.0f) {
                    if (*bad < 10)
                        printf("  element %ld: dequant8 %.9g, int8 form %.9g (scale %.9g), numpy %.9g\n", i, a[e],
                               b, d[p >> 1], want[i]);
                    ++*bad;
                }
                n++;
            }
        }
    }
    return n;
}

static std::vector<u8> slurp(const char* path) {
    std::vector<u8> v;
    FILE* f = fopen(path, "rb");
    if (!f) return v;
    u8 buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + k);
    fclose(f);
    return v;
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    FILE* list = fopen(argv[1], "r");
    if (!list) return 2;
    int ty;
    long elements;
    char bp[4096], ep[4096];
    int failed = 0;
    while (fscanf(list, "%d %ld %4095s %4095s", &ty, &elements, bp, ep) == 4) {
        std::vector<u8> raw = slurp(bp), ex = slurp(ep);
        std::vector<u8> blocks(raw.size() + 64);
        // 16-aligned copy (vector storage is at least that on the host).
        memcpy(blocks.data(), raw.data(), raw.size());
        std::vector<float> want(ex.size() / 4);
        memcpy(want.data(), ex.data(), ex.size());
        if ((long)want.size() != elements || elements % 32 != 0) {
            printf("FAIL %s: %zu expected values for %ld elements\n", bp, want.size(), elements);
            failed = 1;
            continue;
        }
        long bad = 0, n = -1;
        switch (ty) {
#define CASE(T) \
    case T: n = check<T>(blocks, want, &bad); break;
            CASE(T_IQ4_NL) CASE(T_IQ4_XS) CASE(T_MXFP4) CASE(T_TQ1_0) CASE(T_TQ2_0) CASE(T_IQ2_XXS)
            CASE(T_IQ2_XS) CASE(T_IQ2_S) CASE(T_IQ3_XXS) CASE(T_IQ3_S) CASE(T_IQ1_S) CASE(T_IQ1_M)
#undef CASE
            default: break;
        }
        if (n < 0 || bad) failed = 1;
        printf("%s type %d %s: %ld elements, %ld mismatches\n", n >= 0 && !bad ? "OK  " : "FAIL", ty, bp, n, bad);
    }
    fclose(list);
    return failed;
}
