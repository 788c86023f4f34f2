// The IQ, TQ and MXFP4 weight types (docs/QUANT.md), read as int8 values
// with block scales exactly as quant_i8.h reads the others:
//   w[i] = d[i / 16] * q[i],   q signed int8, no min,
// so every int8 kernel (matvec_q8.hip's decode, matmul_q8.hip's tiles and
// narrow product) takes them unchanged, and dequant8 is that product in
// f32. Every value of these formats is such a product, exact in f32:
//   IQ4_NL / IQ4_XS  q = kv[index] (-127..113),  d = d (times ls - 32)
//   MXFP4            q = E2M1 value doubled (0..12, signed), d = 2^(e-128)
//   TQ1_0 / TQ2_0    q = trit - 1 (TQ2_0's unused level 3 gives 2),  d = d
//   IQ2_*            q = ±grid (8, 25, 43),  d = d/8 * (2 ls + 1)
//   IQ3_XXS          q = ±grid (4..62),      d = d/4 * (2 ls + 1)
//   IQ3_S            q = ±grid (1..15, odd), d = d * (2 ls + 1)
//   IQ1_S / IQ1_M    q = 8 grid ± 1 (grid -1, 0, 1), d = d/8 * (2 ls + 1)
// (d an f16 or a power of two, 2 ls + 1 at most 31: each scale is exact,
// and so is its product with q, the value numpy's decoder computes.)
//
// The lattice types index grids that the code generator emits ahead of
// this header, only into kernels whose weights need them (codegen/
// lattice_grids.rs writes them from the tables the CPU decodes with),
// each with its RFC_GRID_* guard; a type's decoders and its QuantInfo
// exist only with its grid, so a kernel whose segment lacks its grid
// fails to compile instead of reading zeros.

#define T_IQ2_XXS 16
#define T_IQ2_XS 17
#define T_IQ3_XXS 18
#define T_IQ1_S 19
#define T_IQ4_NL 20
#define T_IQ3_S 21
#define T_IQ2_S 22
#define T_IQ4_XS 23
#define T_IQ1_M 29
#define T_TQ1_0 34
#define T_TQ2_0 35
#define T_MXFP4 39

// Whether a type is one of this header's: matvec_q8.hip dots them a whole
// unit per lane in their int8 form.
template <int TY> struct IntUnits { enum { ON = 0 }; };

// ---- bytes in a word ------------------------------------------------------------

// x - y byte by byte, no borrow between bytes (Hacker's Delight 2-18).
RFC_DEV u32 sub_bytes(u32 x, u32 y) { return ((x | 0x80808080u) - (y & 0x7F7F7F7Fu)) ^ ((x ^ ~y) & 0x80808080u); }

// 0xFF in byte i where bit i (0..3) of b is set.
RFC_DEV u32 byte_mask4(u32 b) { return (((b & 0xFu) * 0x00204081u) & 0x01010101u) * 0xFFu; }

// The four bytes of v (magnitudes), negated where bits 0..3 of s are set.
RFC_DEV u32 signed4(u32 v, u32 s) {
    const u32 m = byte_mask4(s);
    return sub_bytes(v ^ m, m);
}

// The eight signs of a 7-bit sign index: bit 7 makes the count of
// negatives even (lattice.rs, ksign).
RFC_DEV u32 ksign7(u32 s) { return (s & 0x7Fu) | ((u32)(__popc(s & 0x7Fu) & 1) << 7); }

// Each byte of idx (0..15) replaced by entry idx of a 16-byte table whose
// entry i is byte i % 4 of word t[i / 4]: two byte permutes (the low and
// high eight entries) and a select by bit 3.
RFC_DEV u32 lookup16(u32 idx, u32 t0, u32 t1, u32 t2, u32 t3) {
#if RFC_HIP
    // v_perm_b32: selector byte j picks byte j of {lo word: 0..3, hi word: 4..7}.
    const u32 sel = idx & 0x07070707u;
    const u32 lo = __builtin_amdgcn_perm(t1, t0, sel), hi = __builtin_amdgcn_perm(t3, t2, sel);
#else
    // __byte_perm: selector nibble j (bits 0..2) picks byte j of {x: 0..3, y: 4..7}.
    const u32 m = idx & 0x07070707u, n = m | (m >> 4);
    const u32 sel = (n & 0xFFu) | ((n >> 8) & 0xFF00u);
    const u32 lo = __byte_perm(t0, t1, sel), hi = __byte_perm(t2, t3, sel);
#endif
    const u32 upper = ((idx >> 3) & 0x01010101u) * 0xFFu;
    return (lo & ~upper) | (hi & upper);
}

// Eight bytes from any address (MXFP4's 17-byte blocks).
RFC_DEV void ld8_a1(const u8* p, u32* w) {
#pragma unroll
    for (int i = 0; i < 2; i++)
        w[i] = (u32)p[4 * i] | ((u32)p[4 * i + 1] << 8) | ((u32)p[4 * i + 2] << 16) | ((u32)p[4 * i + 3] << 24);
}

// The value of 8 elements from the int8 form: d[part / 2] * q.
template <int TY> RFC_DEVT void dequant8_int(const u8* row, int unit, int part, float* out) {
    u32 q[2];
    float d[2], m;
    i8_part<TY>(row, unit, part, q);
    i8_scales<TY>(row, unit, d, &m);
    const float s = d[part >> 1];
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = s * (float)(i8)(q[e / 4] >> (8 * (e % 4)));
}

// One type's QuantInfo, int-unit flag and dequant8 (its i8_part and
// i8_scales follow it).
#define RFC_INT_FORM(TY, BLK, NBYTES)                                                     \
    template <> struct QuantInfo<TY> { enum { BLOCK = BLK, BYTES = NBYTES }; };          \
    template <> struct IntUnits<TY> { enum { ON = 1 }; };                                \
    template <> RFC_DEVT void i8_part<TY>(const u8* row, int unit, int part, u32* q);    \
    template <> RFC_DEVT void i8_scales<TY>(const u8* row, int unit, float* d, float* m); \
    template <> RFC_DEVT void dequant8<TY>(const u8* row, int unit, int part, float* out) { \
        dequant8_int<TY>(row, unit, part, out);                                          \
    }

// ---- IQ4_NL, IQ4_XS: the non-linear codebook ---------------------------------------
// ggml's kvalues_iq4nl (quant/blocks/iq4.rs), four int8 a word.
#define IQ4_KV_WORDS 0xBFAD9881u, 0xF6EADDCFu, 0x26190D01u, 0x71594535u

// Nibbles as Q4_0's: parts 0, 1 are the low nibbles of bytes 0..15, parts
// 2, 3 their high nibbles.
RFC_DEV void iq4_values(const u32* w, int part, u32* q) {
    const int sh = (part >> 1) * 4;
    q[0] = lookup16((w[0] >> sh) & 0x0F0F0F0Fu, IQ4_KV_WORDS);
    q[1] = lookup16((w[1] >> sh) & 0x0F0F0F0Fu, IQ4_KV_WORDS);
}

RFC_INT_FORM(T_IQ4_NL, 32, 18)
template <> RFC_DEVT void i8_part<T_IQ4_NL>(const u8* row, int unit, int part, u32* q) {
    u32 w[2];
    ld8_a2(row + unit * 18 + 2 + (part & 1) * 8, w);
    iq4_values(w, part, q);
}
template <> RFC_DEVT void i8_scales<T_IQ4_NL>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + unit * 18);
    *m = 0.0f;
}

// IQ4_XS: d, scales_h (u16), scales_l[4], then 16 bytes per unit.
RFC_INT_FORM(T_IQ4_XS, 256, 136)
template <> RFC_DEVT void i8_part<T_IQ4_XS>(const u8* row, int unit, int part, u32* q) {
    // Rows are whole 136-byte blocks from a 16-aligned base (weights.rs).
    const u32* w = (const u32*)(row + (unit >> 3) * 136 + 8 + (unit & 7) * 16 + (part & 1) * 8);
    iq4_values(w, part, q);
}
template <> RFC_DEVT void i8_scales<T_IQ4_XS>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 136;
    const int s = unit & 7;
    const int ls = ((b[4 + s / 2] >> (4 * (s & 1))) & 0xF) | (((ld_u16(b + 2) >> (2 * s)) & 3) << 4);
    d[0] = d[1] = ld_half(b) * (float)(ls - 32);
    *m = 0.0f;
}

// ---- MXFP4: E2M1 values doubled, a power-of-two scale ------------------------------
// kv4 (quant/blocks/mxfp4.rs): 0, 1, 2, 3, 4, 6, 8, 12, then negated.
#define MXFP4_KV_WORDS 0x03020100u, 0x0C080604u, 0xFDFEFF00u, 0xF4F8FAFCu

RFC_INT_FORM(T_MXFP4, 32, 17)
template <> RFC_DEVT void i8_part<T_MXFP4>(const u8* row, int unit, int part, u32* q) {
    u32 w[2];
    ld8_a1(row + unit * 17 + 1 + (part & 1) * 8, w);
    const int sh = (part >> 1) * 4;
    q[0] = lookup16((w[0] >> sh) & 0x0F0F0F0Fu, MXFP4_KV_WORDS);
    q[1] = lookup16((w[1] >> sh) & 0x0F0F0F0Fu, MXFP4_KV_WORDS);
}
// 2^(e - 128), exact for every e (subnormal below e = 2).
template <> RFC_DEVT void i8_scales<T_MXFP4>(const u8* row, int unit, float* d, float* m) {
    const u32 e = row[unit * 17];
    d[0] = d[1] = bits_f32(e < 2 ? 0x00200000u << e : (e - 1) << 23);
    *m = 0.0f;
}

// ---- TQ1_0, TQ2_0: ternary -----------------------------------------------------------

// TQ2_0: element 128h + 32n + m is bits 2n.. of qs[32h + m]; d at 64.
RFC_INT_FORM(T_TQ2_0, 256, 66)
template <> RFC_DEVT void i8_part<T_TQ2_0>(const u8* row, int unit, int part, u32* q) {
    const int s = unit & 7, h = s >> 2, n = s & 3;
    u32 w[2];
    ld8_a2(row + (unit >> 3) * 66 + 32 * h + 8 * part, w);
#pragma unroll
    for (int i = 0; i < 2; i++) q[i] = sub_bytes((w[i] >> (2 * n)) & 0x03030303u, 0x01010101u);
}
template <> RFC_DEVT void i8_scales<T_TQ2_0>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + (unit >> 3) * 66 + 64);
    *m = 0.0f;
}

// TQ1_0: digit k (0..4, most significant first) of four base-3 fraction
// bytes, minus one: ((byte * 3^k mod 256) * 3) >> 8 (ternary.rs), two
// bytes at a time in 16-bit lanes (255 * 81 and 255 * 3 fit a lane).
RFC_DEV u32 tq1_trits(u32 w, int k) {
    const u32 p3 = k == 4 ? 81u : (0x1B090301u >> (8 * k)) & 0xFFu;
    const u32 ev = ((w & 0x00FF00FFu) * p3) & 0x00FF00FFu;
    const u32 od = (((w >> 8) & 0x00FF00FFu) * p3) & 0x00FF00FFu;
    const u32 t = (((ev * 3u) >> 8) & 0x00030003u) | ((od * 3u) & 0x03000300u);
    return sub_bytes(t, 0x01010101u);
}
// qs[0..32] holds units 0..4 (digit = unit); qs[32..48] units 5, 6 and
// the first half of 7 (digits 0..4 in runs of 16); qh[0..4] the last 16
// elements, four digits of four bytes. d at 52.
RFC_INT_FORM(T_TQ1_0, 256, 54)
template <> RFC_DEVT void i8_part<T_TQ1_0>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 54;
    const int s = unit & 7;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int at, k;
        if (s < 5) {
            at = 8 * part + 4 * i, k = s;
        } else if (s < 7 || part < 2) {
            at = 32 + (part & 1) * 8 + 4 * i, k = 2 * (s - 5) + (part >> 1);
        } else {
            at = 48, k = 2 * (part - 2) + i;
        }
        q[i] = tq1_trits(ld_u32_a2(b + at), k);
    }
}
template <> RFC_DEVT void i8_scales<T_TQ1_0>(const u8* row, int unit, float* d, float* m) {
    d[0] = d[1] = ld_half(row + (unit >> 3) * 54 + 52);
    *m = 0.0f;
}

// ---- the lattice types ------------------------------------------------------------------
// Part p of unit s is group 4s + p of 8 values (IQ2, IQ1: one grid entry
// of 8 bytes; IQ3: two of 4).

// d/8 * (2 ls + 1): the IQ2 and IQ1 sub-block scale.
RFC_DEV float eighth_odd(float d, u32 ls) { return d * 0.125f * (float)(2 * ls + 1); }

#ifdef RFC_GRID_IQ2XXS
// Per unit two LE u32: four grid indices; four 7-bit sign indices and ls.
RFC_INT_FORM(T_IQ2_XXS, 256, 66)
template <> RFC_DEVT void i8_part<T_IQ2_XXS>(const u8* row, int unit, int part, u32* q) {
    const u8* g = row + (unit >> 3) * 66 + 2 + (unit & 7) * 8;
    const u64 v = iq2xxs_grid[g[part]];
    const u32 s = ksign7(ld_u32_a2(g + 4) >> (7 * part));
    q[0] = signed4((u32)v, s);
    q[1] = signed4((u32)(v >> 32), s >> 4);
}
template <> RFC_DEVT void i8_scales<T_IQ2_XXS>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 66;
    d[0] = d[1] = eighth_odd(ld_half(b), ld_u32_a2(b + 2 + (unit & 7) * 8 + 4) >> 28);
    *m = 0.0f;
}
#endif

// IQ2_XS and IQ2_S: scales[s] holds unit s's two 4-bit ls (per 16).
RFC_DEV void iq2_scales16(const u8* b, u8 sc, float* d) {
    const float dd = ld_half(b);
    d[0] = eighth_odd(dd, sc & 0xF);
    d[1] = eighth_odd(dd, sc >> 4);
}

#ifdef RFC_GRID_IQ2XS
// Per group a u16: 9-bit grid index, 7-bit sign index; scales at 66.
RFC_INT_FORM(T_IQ2_XS, 256, 74)
template <> RFC_DEVT void i8_part<T_IQ2_XS>(const u8* row, int unit, int part, u32* q) {
    const u32 g = ld_u16(row + (unit >> 3) * 74 + 2 + 2 * ((unit & 7) * 4 + part));
    const u64 v = iq2xs_grid[g & 511];
    const u32 s = ksign7(g >> 9);
    q[0] = signed4((u32)v, s);
    q[1] = signed4((u32)(v >> 32), s >> 4);
}
template <> RFC_DEVT void i8_scales<T_IQ2_XS>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 74;
    iq2_scales16(b, b[66 + (unit & 7)], d);
    *m = 0.0f;
}
#endif

#ifdef RFC_GRID_IQ2S
// qs[32] (index bits 0..7) at 2, signs[32] at 34, qh[8] (bits 8..9, two
// per group) at 66, scales[8] at 74.
RFC_INT_FORM(T_IQ2_S, 256, 82)
template <> RFC_DEVT void i8_part<T_IQ2_S>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 82;
    const int s = unit & 7, g = 4 * s + part;
    const u64 v = iq2s_grid[b[2 + g] | (((b[66 + s] >> (2 * part)) & 3) << 8)];
    const u32 sg = b[34 + g];
    q[0] = signed4((u32)v, sg);
    q[1] = signed4((u32)(v >> 32), sg >> 4);
}
template <> RFC_DEVT void i8_scales<T_IQ2_S>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 82;
    iq2_scales16(b, b[74 + (unit & 7)], d);
    *m = 0.0f;
}
#endif

#ifdef RFC_GRID_IQ3XXS
// qs[64] (a grid index per 4 values) at 2, then per unit a LE u32: four
// 7-bit sign indices and ls.
RFC_INT_FORM(T_IQ3_XXS, 256, 98)
template <> RFC_DEVT void i8_part<T_IQ3_XXS>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 98;
    const int s = unit & 7, j = 4 * s + part;
    const u32 sg = ksign7(ld_u32_a2(b + 66 + 4 * s) >> (7 * part));
    q[0] = signed4(iq3xxs_grid[b[2 + 2 * j]], sg);
    q[1] = signed4(iq3xxs_grid[b[3 + 2 * j]], sg >> 4);
}
template <> RFC_DEVT void i8_scales<T_IQ3_XXS>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 98;
    const u32 ls = ld_u32_a2(b + 66 + 4 * (unit & 7)) >> 28;
    d[0] = d[1] = ld_half(b) * 0.25f * (float)(2 * ls + 1);
    *m = 0.0f;
}
#endif

#ifdef RFC_GRID_IQ3S
// qs[64] at 2, qh[8] (index bit 8, one per group of 4) at 66, signs[32]
// at 74, scales[4] (a 4-bit ls per unit) at 106.
RFC_INT_FORM(T_IQ3_S, 256, 110)
template <> RFC_DEVT void i8_part<T_IQ3_S>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 110;
    const int s = unit & 7, j = 4 * s + part;
    const u32 qh = b[66 + s] >> (2 * part);
    const u32 sg = b[74 + j];
    q[0] = signed4(iq3s_grid[b[2 + 2 * j] | ((qh & 1) << 8)], sg);
    q[1] = signed4(iq3s_grid[b[3 + 2 * j] | ((qh & 2) << 7)], sg >> 4);
}
template <> RFC_DEVT void i8_scales<T_IQ3_S>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 110;
    const int s = unit & 7;
    const u32 ls = (b[106 + s / 2] >> (4 * (s & 1))) & 0xF;
    d[0] = d[1] = ld_half(b) * (float)(2 * ls + 1);
    *m = 0.0f;
}
#endif

#ifdef RFC_GRID_IQ1S
// 8 grid + 1 or 8 grid - 1 of a grid entry's four bytes (-1, 0, 1).
RFC_DEV u32 iq1_values(u32 g, bool negative_delta) {
    const u32 v = (g << 3) & 0xF8F8F8F8u;
    return negative_delta ? sub_bytes(v, 0x01010101u) : v | 0x01010101u;
}

// qs[32] (index bits 0..7) at 2, then per unit a LE u16 at 34: three
// index bits per group, ls in bits 12..14, the delta's sign in bit 15.
RFC_INT_FORM(T_IQ1_S, 256, 50)
template <> RFC_DEVT void i8_part<T_IQ1_S>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 50;
    const int s = unit & 7;
    const u32 qh = ld_u16(b + 34 + 2 * s);
    const u64 v = iq1s_grid[b[2 + 4 * s + part] | (((qh >> (3 * part)) & 7) << 8)];
    q[0] = iq1_values((u32)v, qh & 0x8000u);
    q[1] = iq1_values((u32)(v >> 32), qh & 0x8000u);
}
template <> RFC_DEVT void i8_scales<T_IQ1_S>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 50;
    d[0] = d[1] = eighth_odd(ld_half(b), (ld_u16(b + 34 + 2 * (unit & 7)) >> 12) & 7);
    *m = 0.0f;
}

// IQ1_M: qs[32] at 0, qh[16] at 32 (per group a nibble: three index bits,
// the delta's sign), scales at 48: four LE u16 of 3-bit ls per 16 values
// (bits 3j..), the f16 d in their top nibbles (word 0 lowest).
RFC_INT_FORM(T_IQ1_M, 256, 56)
template <> RFC_DEVT void i8_part<T_IQ1_M>(const u8* row, int unit, int part, u32* q) {
    const u8* b = row + (unit >> 3) * 56;
    const int g = 4 * (unit & 7) + part;
    const u32 nib = (b[32 + g / 2] >> (4 * (g & 1))) & 0xF;
    const u64 v = iq1s_grid[b[g] | ((nib & 7) << 8)];
    q[0] = iq1_values((u32)v, nib & 8);
    q[1] = iq1_values((u32)(v >> 32), nib & 8);
}
template <> RFC_DEVT void i8_scales<T_IQ1_M>(const u8* row, int unit, float* d, float* m) {
    const u8* b = row + (unit >> 3) * 56;
    const int s = unit & 7;
    u32 bits = 0;
#pragma unroll
    for (int w = 0; w < 4; w++) bits |= (u32)(ld_u16(b + 48 + 2 * w) >> 12) << (4 * w);
    const float dd = h2f((u16)bits);
    // Scales 2s and 2s + 1 of the block's 16: bits 3 (j % 4).. of word j / 4.
    const u32 w = ld_u16(b + 48 + 2 * (s / 2)) >> (6 * (s & 1));
    d[0] = eighth_odd(dd, w & 7);
    d[1] = eighth_odd(dd, (w >> 3) & 7);
    *m = 0.0f;
}
#endif
