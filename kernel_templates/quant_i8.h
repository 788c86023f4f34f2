// Quantized weights as int8 values with block scales, for the int8 matrix
// units (matmul_q8.hip): a unit of 32 elements reads as
//   w[i] = d[i / 16] * q[i] - m,   q signed int8,
// so that a dot product with int8 activations is an integer sum times
// scales, and the mins need only the activations' block sums. d[0] = d[1]
// for the types with one scale per 32; m = 0 for the types without a min.
// Q2_K (a min per 16 elements) and the float types are not read here.
//
// i8_part<TYPE>(row, unit, part, q) writes elements unit*32 + part*8 .. +8
// as two words of four signed bytes; i8_scales<TYPE>(row, unit, d, m) the
// unit's scales. Layouts: quant.h, docs/QUANT.md.

// Signed bytes q - 8, q - 16, q - 32 of unsigned 4-, 5-, 6-bit values, with
// no borrow between bytes: the low bits stay, the sign bits are set where
// the top bit was clear.
RFC_DEV int minus8(u32 q) { return (int)((q & 0x07070707u) | ((~q & 0x08080808u) * 31u)); }
RFC_DEV int minus16(u32 q) { return (int)((q & 0x0F0F0F0Fu) | ((~q & 0x10101010u) * 15u)); }
RFC_DEV int minus32(u32 q) { return (int)((q & 0x1F1F1F1Fu) | ((~q & 0x20202020u) * 7u)); }

// Bits 0..3 of b to bit 4 of bytes 0..3.
RFC_DEV u32 spread4(u32 b) {
    return ((b & 1u) << 4) | ((b & 2u) << 11) | ((b & 4u) << 18) | ((b & 8u) << 25);
}

// Signed bytes q - 4 of unsigned 3-bit values (as minus8 above).
RFC_DEV u32 minus4(u32 q) { return (q & 0x03030303u) | ((~q & 0x04040404u) * 63u); }

// Eight bytes from a 2-byte aligned address.
RFC_DEV void ld8_a2(const u8* p, u32* w) {
    w[0] = ld_u32_a2(p);
    w[1] = ld_u32_a2(p + 4);
}

// Types not read here (never called: WITH_ROW_TYPE instantiates every segment).
template <int TY> RFC_DEVT void i8_part(const u8*, int, int, u32* q) { q[0] = q[1] = 0u; }
template <int TY> RFC_DEVT void i8_scales(const u8*, int, float* d, float* m) {
    d[0] = d[1] = *m = 0.0f;
}

// Q4_0 / Q4_1: parts 0, 1 are the low nibbles of bytes 0..15, parts 2, 3
// their high nibbles.
template <> RFC_DEVT void i8_part<T_Q4_0>(const u8* row, int unit, int part, u32* q) {
    u32 w[2];
    ld8_a2(row + unit * 18 + 2 + (part & 1) * 8, w);
    const int sh = (part >> 1) * 4;
    q[0] = minus8((w[0] >> sh) & 0x0F0F0F0Fu);
    q[1] = minus8((w[1] >> sh) & 0x0F0F0F0Fu);
}
template <> RFC_DEVT void i8_scales<T_Q4_0>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + unit * 18);
    *m = 0.0f;
}
template <> RFC_DEVT void i8_part<T_Q4_1>(const u8* row, int unit, int part, u32* q) {
    const u32* w = (const u32*)(row + unit * 20 + 4 + (part & 1) * 8);
    const int sh = (part >> 1) * 4;
    q[0] = (w[0] >> sh) & 0x0F0F0F0Fu;
    q[1] = (w[1] >> sh) & 0x0F0F0F0Fu;
}
template <> RFC_DEVT void i8_scales<T_Q4_1>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + unit * 20);
    *m = -ld_half(row + unit * 20 + 2);
}

// Q5_0 / Q5_1: as Q4_0, the fifth bit of element i from bit i of qh.
RFC_DEV void q5_part(const u8* qs, u32 qh, int part, u32* q) {
    u32 w[2];
    ld8_a2(qs + (part & 1) * 8, w);
    const int sh = (part >> 1) * 4;
    q[0] = ((w[0] >> sh) & 0x0F0F0F0Fu) | spread4(qh >> (part * 8));
    q[1] = ((w[1] >> sh) & 0x0F0F0F0Fu) | spread4(qh >> (part * 8 + 4));
}
template <> RFC_DEVT void i8_part<T_Q5_0>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + unit * 22;
    q5_part(b + 6, ld_u32_a2(b + 2), part, q);
    q[0] = minus16(q[0]);
    q[1] = minus16(q[1]);
}
template <> RFC_DEVT void i8_scales<T_Q5_0>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + unit * 22);
    *m = 0.0f;
}
template <> RFC_DEVT void i8_part<T_Q5_1>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + unit * 24;
    q5_part(b + 8, *(const u32*)(b + 4), part, q);
}
template <> RFC_DEVT void i8_scales<T_Q5_1>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + unit * 24);
    *m = -ld_half(row + unit * 24 + 2);
}

template <> RFC_DEVT void i8_part<T_Q8_0>(const u8* row, int unit, int part, u32* q) {
    ld8_a2(row + unit * 34 + 2 + part * 8, q);
}
template <> RFC_DEVT void i8_scales<T_Q8_0>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + unit * 34);
    *m = 0.0f;
}

// Q3_K: 2 low bits from qs, the third from hmask (set: +0, clear: -4).
template <> RFC_DEVT void i8_part<T_Q3_K>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 110;
    const int s = unit & 7, n = s >> 2, j = s & 3;
    u32 lo[2], hm[2];
    ld8_a2(b + 32 + n * 32 + part * 8, lo);
    ld8_a2(b + part * 8, hm);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const u32 v = ((lo[i] >> (2 * j)) & 0x03030303u) | (((hm[i] >> (n * 4 + j)) & 0x01010101u) << 2);
        q[i] = minus4(v);
    }
}
template <> RFC_DEVT void i8_scales<T_Q3_K>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 110;
    const int s = unit & 7, n = s >> 2, j = s & 3;
    const float dd = ld_half(b + 108);
    d[0] = dd * scale_q3k(n * 8 + j * 2, b + 96);
    d[1] = dd * scale_q3k(n * 8 + j * 2 + 1, b + 96);
    *m = 0.0f;
}

// Q4_K / Q5_K: unit j is the low (even j) or high nibbles of 32-byte group j/2.
template <> RFC_DEVT void i8_part<T_Q4_K>(const u8* row, int unit, int part, u32* q) {
    const int j = unit & 7;
    // Rows are whole 144-byte blocks from a 16-aligned base (weights.rs).
    const u32* w = (const u32*)(row + (unit >> 3) * 144 + 16 + (j >> 1) * 32 + part * 8);
    const int sh = (j & 1) * 4;
    q[0] = (w[0] >> sh) & 0x0F0F0F0Fu;
    q[1] = (w[1] >> sh) & 0x0F0F0F0Fu;
}
// Q4_K and Q5_K share the super-block head: d, dmin, 12 scale bytes.
RFC_DEV void k4_scales(const u8* b, int unit, float* d, float* m) {
    float sc, mn;
    scale_min_k4(unit & 7, b + 4, &sc, &mn);
    d[0] = d[1] = ld_half(b) * sc;
    *m = ld_half(b + 2) * mn;
}
template <> RFC_DEVT void i8_scales<T_Q4_K>(const u8* row, int unit, float* d, float* m) {
    k4_scales(row + (unit >> 3) * 144, unit, d, m);
}
template <> RFC_DEVT void i8_part<T_Q5_K>(const u8* row, int unit, int part, u32* q) {
    const int j = unit & 7;
    const u8* b = row + (unit >> 3) * 176;
    const u32* ql = (const u32*)(b + 48 + (j >> 1) * 32 + part * 8);
    const u32* qh = (const u32*)(b + 16 + part * 8);
    const int sh = (j & 1) * 4;
#pragma unroll
    for (int i = 0; i < 2; i++) q[i] = ((ql[i] >> sh) & 0x0F0F0F0Fu) | (((qh[i] >> j) & 0x01010101u) << 4);
}
template <> RFC_DEVT void i8_scales<T_Q5_K>(const u8* row, int unit, float* d, float* m) {
    k4_scales(row + (unit >> 3) * 176, unit, d, m);
}

// Q6_K: 4 low bits from ql (nibble by unit), 2 high bits from qh, minus 32.
template <> RFC_DEVT void i8_part<T_Q6_K>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 210;
    const int s = unit & 7, half = s >> 2, q4 = s & 3;
    u32 lo[2], hi[2];
    ld8_a2(b + half * 64 + (q4 & 1) * 32 + part * 8, lo);
    ld8_a2(b + 128 + half * 32 + part * 8, hi);
    const int lsh = (q4 >> 1) * 4, hsh = 2 * q4;
#pragma unroll
    for (int i = 0; i < 2; i++) q[i] = minus32(((lo[i] >> lsh) & 0x0F0F0F0Fu) | (((hi[i] >> hsh) & 0x03030303u) << 4));
}
template <> RFC_DEVT void i8_scales<T_Q6_K>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 210;
    const int s = unit & 7, half = s >> 2, q4 = s & 3;
    const i8* sc = (const i8*)(b + 192) + half * 8 + 2 * q4;
    const float dd = ld_half(b + 208);
    d[0] = dd * (float)sc[0];
    d[1] = dd * (float)sc[1];
    *m = 0.0f;
}

// ---- activations -------------------------------------------------------------
// Eight consecutive elements quantized in two int8 terms against a scale d
// (d >= amax / 127 of the elements): x ~ d * (q + r / 254), q is x rounded
// to int8 as in ggml's Q8_1, r its rounding error rounded again
// (|x - d q| <= d / 2, so r fits in int8; what is left is at most d / 508,
// about 15 bits, where one int8 term alone moves a synthetic 24-layer
// model's logits by ~10 %). `sum8` is the dequantized sum of the eight, in
// units of d: what a min multiplies.
RFC_DEV void quantize8_two_term_at(const float* v, float d, u32* q, u32* r, float* sum8) {
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    q[0] = q[1] = r[0] = r[1] = 0u;
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float qf = rintf(v[e] * id);
        const float rf = rintf((v[e] * id - qf) * 254.0f);
        q[e / 4] |= ((u32)(int)qf & 0xFFu) << (8 * (e % 4));
        r[e / 4] |= ((u32)(int)rf & 0xFFu) << (8 * (e % 4));
        s += qf + rf * (1.0f / 254.0f);
    }
    *sum8 = s;
}
// The same with d = amax / 127 per unit of 32, held by four aligned lanes.
RFC_DEV void quantize8_two_term(const float* v, u32* q, u32* r, float* d, float* sum8) {
    float amax = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(v[e]));
    *d = group_max(amax, 4) / 127.0f;
    quantize8_two_term_at(v, *d, q, r, sum8);
}
