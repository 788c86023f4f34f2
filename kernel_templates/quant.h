// Dequantization of GGUF weight rows, 32 elements ("a unit") at a time.
//
// Every supported type is read as units of 32 consecutive elements: a whole
// block for the 32-element formats, one sub-block of a 256-element K-quant
// super-block. `dequant8<TYPE>(row, unit, part, out)` writes elements
// unit*32 + part*8 .. +8 of a row. Type ids are GGML's (ggml_type).
// Block layouts: ggml-common.h / docs/QUANT.md.

#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q5_0 6
#define T_Q5_1 7
#define T_Q8_0 8
#define T_Q2_K 10
#define T_Q3_K 11
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14
#define T_BF16 30

// Bytes of one row of `k` elements.
template <int TY> struct QuantInfo;
template <> struct QuantInfo<T_F32> { enum { BLOCK = 1, BYTES = 4 }; };
template <> struct QuantInfo<T_F16> { enum { BLOCK = 1, BYTES = 2 }; };
template <> struct QuantInfo<T_BF16> { enum { BLOCK = 1, BYTES = 2 }; };
template <> struct QuantInfo<T_Q4_0> { enum { BLOCK = 32, BYTES = 18 }; };
template <> struct QuantInfo<T_Q4_1> { enum { BLOCK = 32, BYTES = 20 }; };
template <> struct QuantInfo<T_Q5_0> { enum { BLOCK = 32, BYTES = 22 }; };
template <> struct QuantInfo<T_Q5_1> { enum { BLOCK = 32, BYTES = 24 }; };
template <> struct QuantInfo<T_Q8_0> { enum { BLOCK = 32, BYTES = 34 }; };
template <> struct QuantInfo<T_Q2_K> { enum { BLOCK = 256, BYTES = 84 }; };
template <> struct QuantInfo<T_Q3_K> { enum { BLOCK = 256, BYTES = 110 }; };
template <> struct QuantInfo<T_Q4_K> { enum { BLOCK = 256, BYTES = 144 }; };
template <> struct QuantInfo<T_Q5_K> { enum { BLOCK = 256, BYTES = 176 }; };
template <> struct QuantInfo<T_Q6_K> { enum { BLOCK = 256, BYTES = 210 }; };

template <int TY> RFC_DEVT u64 row_bytes(u64 k) {
    return k / QuantInfo<TY>::BLOCK * QuantInfo<TY>::BYTES;
}

RFC_DEV float bf16_to_f32(u16 b) { return bits_f32((u32)b << 16); }

// 6-bit scale and min j (0..7) of a Q4_K/Q5_K super-block's 12 scale bytes.
RFC_DEV void scale_min_k4(int j, const u8* q, float* sc, float* m) {
    if (j < 4) {
        *sc = (float)(q[j] & 63);
        *m = (float)(q[j + 4] & 63);
    } else {
        *sc = (float)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (float)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Signed 6-bit scale `is` (0..15) of a Q3_K super-block's 12 scale bytes.
RFC_DEV float scale_q3k(int is, const u8* b) {
    int lo = is < 8 ? (b[is] & 0xF) : (b[is - 8] >> 4);
    int hi = (b[8 + (is & 3)] >> (2 * (is >> 2))) & 3;
    return (float)((lo | (hi << 4)) - 32);
}

template <int TY> RFC_DEVT void dequant8(const u8* row, int unit, int part, float* out);

template <> RFC_DEVT void dequant8<T_F32>(const u8* row, int unit, int part, float* out) {
    const float* p = (const float*)row + unit * 32 + part * 8;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = p[e];
}

template <> RFC_DEVT void dequant8<T_F16>(const u8* row, int unit, int part, float* out) {
    const u16* p = (const u16*)row + unit * 32 + part * 8;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = h2f(p[e]);
}

template <> RFC_DEVT void dequant8<T_BF16>(const u8* row, int unit, int part, float* out) {
    const u16* p = (const u16*)row + unit * 32 + part * 8;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = bf16_to_f32(p[e]);
}

template <> RFC_DEVT void dequant8<T_Q8_0>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + unit * 34;
    float d = ld_half(b);
    const i8* qs = (const i8*)(b + 2) + part * 8;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = d * (float)qs[e];
}

// Low nibbles hold elements 0..15, high nibbles 16..31.
RFC_DEV int nib32(const u8* qs, int i) { return i < 16 ? (qs[i] & 0xF) : (qs[i - 16] >> 4); }

template <> RFC_DEVT void dequant8<T_Q4_0>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + unit * 18;
    float d = ld_half(b);
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = d * (float)(nib32(b + 2, part * 8 + e) - 8);
}

template <> RFC_DEVT void dequant8<T_Q4_1>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + unit * 20;
    float d = ld_half(b), m = ld_half(b + 2);
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = d * (float)nib32(b + 4, part * 8 + e) + m;
}

template <> RFC_DEVT void dequant8<T_Q5_0>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + unit * 22;
    float d = ld_half(b);
    u32 qh = ld_u32_a2(b + 2);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        int i = part * 8 + e;
        int q = nib32(b + 6, i) | (((qh >> i) & 1) << 4);
        out[e] = d * (float)(q - 16);
    }
}

template <> RFC_DEVT void dequant8<T_Q5_1>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + unit * 24;
    float d = ld_half(b), m = ld_half(b + 2);
    u32 qh = ld_u32_a2(b + 4);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        int i = part * 8 + e;
        int q = nib32(b + 8, i) | (((qh >> i) & 1) << 4);
        out[e] = d * (float)q + m;
    }
}

template <> RFC_DEVT void dequant8<T_Q2_K>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + (unit >> 3) * 84;
    int s = unit & 7, n = s >> 2, j = s & 3;
    float d = ld_half(b + 80), dmin = ld_half(b + 82);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        int l = part * 8 + e;
        u8 sc = b[n * 8 + j * 2 + (l >> 4)];
        int q = (b[16 + n * 32 + l] >> (2 * j)) & 3;
        out[e] = d * (float)(sc & 0xF) * (float)q - dmin * (float)(sc >> 4);
    }
}

template <> RFC_DEVT void dequant8<T_Q3_K>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + (unit >> 3) * 110;
    int s = unit & 7, n = s >> 2, j = s & 3;
    float d = ld_half(b + 108);
#pragma unroll
    for (int e = 0; e < 8; e++) {
        int l = part * 8 + e;
        float dl = d * scale_q3k(n * 8 + j * 2 + (l >> 4), b + 96);
        int q = (b[32 + n * 32 + l] >> (2 * j)) & 3;
        int hbit = (b[l] >> (n * 4 + j)) & 1;
        out[e] = dl * (float)(q - (hbit ? 0 : 4));
    }
}

template <> RFC_DEVT void dequant8<T_Q4_K>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + (unit >> 3) * 144;
    int j = unit & 7;
    float sc, m;
    scale_min_k4(j, b + 4, &sc, &m);
    float d = ld_half(b) * sc, dm = ld_half(b + 2) * m;
    const u8* q = b + 16 + (j >> 1) * 32 + part * 8;
    int shift = (j & 1) * 4;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = d * (float)((q[e] >> shift) & 0xF) - dm;
}

template <> RFC_DEVT void dequant8<T_Q5_K>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + (unit >> 3) * 176;
    int j = unit & 7;
    float sc, m;
    scale_min_k4(j, b + 4, &sc, &m);
    float d = ld_half(b) * sc, dm = ld_half(b + 2) * m;
    const u8* qh = b + 16 + part * 8;
    const u8* ql = b + 48 + (j >> 1) * 32 + part * 8;
    int shift = (j & 1) * 4;
#pragma unroll
    for (int e = 0; e < 8; e++) {
        int q = ((ql[e] >> shift) & 0xF) | (((qh[e] >> j) & 1) << 4);
        out[e] = d * (float)q - dm;
    }
}

template <> RFC_DEVT void dequant8<T_Q6_K>(const u8* row, int unit, int part, float* out) {
    const u8* b = row + (unit >> 3) * 210;
    int s = unit & 7, half = s >> 2, q4 = s & 3;
    float d = ld_half(b + 208);
    const u8* ql = b + half * 64 + (q4 & 1) * 32;
    const u8* qh = b + 128 + half * 32;
    const i8* sc = (const i8*)(b + 192) + half * 8 + 2 * q4;
    int lshift = (q4 >> 1) * 4, hshift = 2 * q4;
#pragma unroll
    for (int e = 0; e < 8; e++) {
        int l = part * 8 + e;
        int q = ((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4);
        out[e] = d * (float)sc[l >> 4] * (float)(q - 32);
    }
}

// All 32 elements of a unit.
template <int TY> RFC_DEVT void dequant32(const u8* row, int unit, float* out) {
#pragma unroll
    for (int p = 0; p < 4; p++) dequant8<TY>(row, unit, p, out + p * 8);
}
