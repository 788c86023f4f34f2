// Quantized matrix-vector product for decode (NT tokens per pass, 1 by
// default), with int8 activations: the fused RMSNorm prologue and the
// epilogue of epilogue.h.
//
//   out[t, :] = epilogue( q8(rmsnorm(x[t])) . W^T )
//
// Each block first quantizes the (normalized) input row into shared memory
// as two int8 terms per element, x ~ d * (q + r / 254), with one f32 scale d
// per unit of 32 (quant_i8.h, quantize8_two_term: about 15 bits). The
// dequantized sum of every 16 elements serves the weight types with a min.
// The weights are then streamed in type-specific chunks (one to four word
// loads per lane, contiguous across lanes); each weight word is dotted with
// both terms four bytes at a time (dot4_i8), one f32 multiply per weight
// scale, not per element; quant_iq.h's types (IQ, TQ, MXFP4) a whole unit
// per lane in their int8 form. Types without a fast chunk (Q4_1, Q5_1,
// Q2_K, Q3_K, Q5_K) dequantize to f32 against the same two-term
// activations.
//
// One warp computes one item (two weight rows) for the NT tokens of its
// block's pass: each weight word is unpacked once and dotted with every
// token's terms. KSPLIT warps may share an item (interleaved chunks,
// summed in shared memory); a warp handles IPW items in turn so that the
// quantized rows are reused.
//
// Defines: K (input width, whole weight blocks, a multiple of 32), NT
// (tokens per pass; 2.375 * K * NT bytes of shared memory), KSPLIT, IPB
// (items per block; IPB * KSPLIT warps), IPW, SEGi_TYPE/SEGi_ROWS,
// EPS_BITS with PROLOGUE_RMS, and the epilogue's (epilogue.h).
// Grid: (ceil(N_ITEMS / (IPB * IPW)), ceil(T / NT)); block:
// IPB * KSPLIT * RFC_WARP.

#define UNITS (K / 32)
#define WARPS (IPB * KSPLIT)
#ifndef NT
#define NT 1
#endif

// The quantized input rows: both terms, scale per 32, dequantized sum per
// 16, per token of the pass.
__shared__ u32x4 xq4[NT][K / 16];
__shared__ u32x4 xr4[NT][K / 16];
__shared__ float xd[NT][UNITS];
__shared__ float xs16[NT][K / 16];

RFC_DEV const int* xq_words(int t) { return (const int*)xq4[t]; }
RFC_DEV const int* xr_words(int t) { return (const int*)xr4[t]; }

// Both terms' integer dots of one weight word w with input word i, for
// every token.
struct Dots {
    int q, r;
};
RFC_DEV void dots_zero(Dots* d) {
#pragma unroll
    for (int t = 0; t < NT; t++) d[t].q = d[t].r = 0;
}
RFC_DEV void dot_word(int w, int i, Dots* d) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
        d[t].q = dot4_i8(w, xq_words(t)[i], d[t].q);
        d[t].r = dot4_i8(w, xr_words(t)[i], d[t].r);
    }
}
RFC_DEV void dot_word4(u32 w0, u32 w1, u32 w2, u32 w3, int i4, Dots* d) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const u32x4 q = xq4[t][i4], r = xr4[t][i4];
        d[t].q = dot4_i8((int)w0, (int)q.x, d[t].q);
        d[t].q = dot4_i8((int)w1, (int)q.y, d[t].q);
        d[t].q = dot4_i8((int)w2, (int)q.z, d[t].q);
        d[t].q = dot4_i8((int)w3, (int)q.w, d[t].q);
        d[t].r = dot4_i8((int)w0, (int)r.x, d[t].r);
        d[t].r = dot4_i8((int)w1, (int)r.y, d[t].r);
        d[t].r = dot4_i8((int)w2, (int)r.z, d[t].r);
        d[t].r = dot4_i8((int)w3, (int)r.w, d[t].r);
    }
}
// The dot in units of the input's scale d.
RFC_DEV float dots_value(Dots d) { return (float)d.q + (float)d.r * (1.0f / 254.0f); }

// Elements one lane takes per step, by weight type (8 for the f32 path, a
// whole unit for quant_iq.h's types).
template <int TY> struct Chunk { enum { ELEMS = IntUnits<TY>::ON ? 32 : 8 }; };
template <> struct Chunk<T_Q4_0> { enum { ELEMS = 16 }; };
template <> struct Chunk<T_Q5_0> { enum { ELEMS = 16 }; };
template <> struct Chunk<T_Q8_0> { enum { ELEMS = 16 }; };
template <> struct Chunk<T_Q4_K> { enum { ELEMS = 32 }; };
template <> struct Chunk<T_Q6_K> { enum { ELEMS = 32 }; };

// Unit c of a quant_iq.h type, read in its int8 form straight from its
// blocks: four parts, dotted under the unit's two scales (d[0] for
// elements 0..15, d[1] for 16..31).
template <int TY> RFC_DEVT void unit_dot(const u8* row, int c, float* acc) {
    Dots s[2][NT];
    dots_zero(s[0]);
    dots_zero(s[1]);
#pragma unroll
    for (int p = 0; p < 4; p++) {
        u32 q[2];
        i8_part<TY>(row, c, p, q);
        dot_word((int)q[0], c * 8 + 2 * p, s[p >> 1]);
        dot_word((int)q[1], c * 8 + 2 * p + 1, s[p >> 1]);
    }
    float d[2], m;
    i8_scales<TY>(row, c, d, &m);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] += xd[t][c] * (d[0] * dots_value(s[0][t]) + d[1] * dots_value(s[1][t]));
}

// Chunk c of a row dotted with the quantized inputs, added to acc[t] for
// every token (f32 path: any other type).
template <int TY> RFC_DEVT void chunk_dot(const u8* row, int c, float* acc) {
    if (IntUnits<TY>::ON) {
        unit_dot<TY>(row, c, acc);
        return;
    }
    float w[8];
    dequant8<TY>(row, c >> 2, c & 3, w);
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const i8* xq = (const i8*)xq4[t] + c * 8;
        const i8* xr = (const i8*)xr4[t] + c * 8;
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) s += w[e] * ((float)xq[e] + (float)xr[e] * (1.0f / 254.0f));
        acc[t] += s * xd[t][c >> 2];
    }
}

// Q8_0: half a block (16 values).
template <> RFC_DEVT void chunk_dot<T_Q8_0>(const u8* row, int c, float* acc) {
    const u8* b = row + (c >> 1) * 34;
    const u8* q = b + 2 + (c & 1) * 16;
    Dots s[NT];
    dots_zero(s);
    dot_word4(ld_u32_a2(q), ld_u32_a2(q + 4), ld_u32_a2(q + 8), ld_u32_a2(q + 12), c, s);
    const float d = ld_half(b);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] += d * xd[t][c >> 1] * dots_value(s[t]);
}

// Q4_0: bytes h*8..h*8+7 of the block's 16, i.e. elements h*8.. (low
// nibbles) and 16+h*8.. (high nibbles).
template <> RFC_DEVT void chunk_dot<T_Q4_0>(const u8* row, int c, float* acc) {
    const int blk = c >> 1, h = c & 1;
    const u8* b = row + blk * 18;
    const u8* q = b + 2 + h * 8;
    const int x = blk * 8 + h * 2;
    Dots s[NT];
    dots_zero(s);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        u32 w = ld_u32_a2(q + 4 * i);
        dot_word(minus8(w & 0x0F0F0F0Fu), x + i, s);
        dot_word(minus8((w >> 4) & 0x0F0F0F0Fu), x + 4 + i, s);
    }
    const float d = ld_half(b);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] += d * xd[t][blk] * dots_value(s[t]);
}

// Q5_0: as Q4_0, the fifth bit of element e from bit e of qh.
template <> RFC_DEVT void chunk_dot<T_Q5_0>(const u8* row, int c, float* acc) {
    const int blk = c >> 1, h = c & 1;
    const u8* b = row + blk * 22;
    const u32 qh = ld_u32_a2(b + 2);
    const u8* q = b + 6 + h * 8;
    const int x = blk * 8 + h * 2;
    Dots s[NT];
    dots_zero(s);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        u32 w = ld_u32_a2(q + 4 * i);
        u32 lo = (w & 0x0F0F0F0Fu) | spread4(qh >> (h * 8 + 4 * i));
        u32 hi = ((w >> 4) & 0x0F0F0F0Fu) | spread4(qh >> (16 + h * 8 + 4 * i));
        dot_word(minus16(lo), x + i, s);
        dot_word(minus16(hi), x + 4 + i, s);
    }
    const float d = ld_half(b);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] += d * xd[t][blk] * dots_value(s[t]);
}

// Q4_K: 16 bytes of one 32-byte group g of a super-block: elements
// h*16..h*16+15 of units 2g (low nibbles) and 2g+1 (high nibbles).
template <> RFC_DEVT void chunk_dot<T_Q4_K>(const u8* row, int c, float* acc) {
    const int sb = c >> 3, g = (c & 7) >> 1, h = c & 1;
    const u8* b = row + sb * 144;
    // Rows are whole 144-byte blocks from a 16-aligned base (weights.rs).
    const u32x4 q = *(const u32x4*)(b + 16 + g * 32 + h * 16);
    const int u0 = sb * 8 + 2 * g;
    const u32 m4 = 0x0F0F0F0Fu;
    Dots s0[NT], s1[NT];
    dots_zero(s0);
    dots_zero(s1);
    dot_word4(q.x & m4, q.y & m4, q.z & m4, q.w & m4, u0 * 2 + h, s0);
    dot_word4((q.x >> 4) & m4, (q.y >> 4) & m4, (q.z >> 4) & m4, (q.w >> 4) & m4, u0 * 2 + 2 + h, s1);
    float sc0, m0, sc1, m1;
    scale_min_k4(2 * g, b + 4, &sc0, &m0);
    scale_min_k4(2 * g + 1, b + 4, &sc1, &m1);
    const float d = ld_half(b), dmin = ld_half(b + 2);
#pragma unroll
    for (int t = 0; t < NT; t++)
        acc[t] += d * (sc0 * xd[t][u0] * dots_value(s0[t]) + sc1 * xd[t][u0 + 1] * dots_value(s1[t])) -
                  dmin * (m0 * xs16[t][u0 * 2 + h] + m1 * xs16[t][u0 * 2 + 2 + h]);
}

// Q6_K: positions l0..l0+7 of half n of a super-block, which hold those
// positions of its four units (low/high nibbles of ql and ql+32, two bits
// each of qh); each 8-run lies under one 16-element scale.
template <> RFC_DEVT void chunk_dot<T_Q6_K>(const u8* row, int c, float* acc) {
    const int sb = c >> 3, n = (c & 7) >> 2, l0 = (c & 3) * 8;
    const u8* b = row + sb * 210;
    const u8* ql = b + n * 64 + l0;
    const u8* qh = b + 128 + n * 32 + l0;
    const i8* sc = (const i8*)(b + 192) + n * 8 + (l0 >> 4);
    const int u0 = sb * 8 + n * 4;
    const int x = u0 * 8 + l0 / 4;
    Dots s[4][NT];
#pragma unroll
    for (int u = 0; u < 4; u++) dots_zero(s[u]);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        u32 la = ld_u32_a2(ql + 4 * i), lb = ld_u32_a2(ql + 32 + 4 * i), hb = ld_u32_a2(qh + 4 * i);
        dot_word(minus32((la & 0x0F0F0F0Fu) | ((hb & 0x03030303u) << 4)), x + i, s[0]);
        dot_word(minus32((lb & 0x0F0F0F0Fu) | (((hb >> 2) & 0x03030303u) << 4)), x + 8 + i, s[1]);
        dot_word(minus32(((la >> 4) & 0x0F0F0F0Fu) | (((hb >> 4) & 0x03030303u) << 4)), x + 16 + i, s[2]);
        dot_word(minus32(((lb >> 4) & 0x0F0F0F0Fu) | (((hb >> 6) & 0x03030303u) << 4)), x + 24 + i, s[3]);
    }
    const float d = ld_half(b + 208);
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float a = 0.0f;
#pragma unroll
        for (int u = 0; u < 4; u++) a += (float)sc[2 * u] * xd[t][u0 + u] * dots_value(s[u][t]);
        acc[t] += d * a;
    }
}

// Rows a and b (same type), chunks first, first + stride, ...; both rows
// in one loop, four steps unrolled, so that up to eight chunk loads per
// lane are in flight together.
// (The f32 path is not unrolled: its dequantization is long enough.)
// (Several tokens: unrolled less, as each step holds NT dots per word;
// two tokens still keep four chunk loads in flight.)
#define DOT_UNROLL (NT == 1 ? 4 : NT == 2 ? 2 : 1)
template <int TY> RFC_DEVT void dot2(const u8* ra, const u8* rb, int first, float* a, float* b) {
    const int chunks = K / Chunk<TY>::ELEMS;
    if (Chunk<TY>::ELEMS > 8) {
#pragma unroll DOT_UNROLL
        for (int c = first; c < chunks; c += KSPLIT * RFC_WARP) {
            chunk_dot<TY>(ra, c, a);
            chunk_dot<TY>(rb, c, b);
        }
    } else {
#pragma unroll 1
        for (int c = first; c < chunks; c += KSPLIT * RFC_WARP) {
            chunk_dot<TY>(ra, c, a);
            chunk_dot<TY>(rb, c, b);
        }
    }
}

template <int TY> RFC_DEVT void dot1(const u8* row, int first, float* acc) {
    const int chunks = K / Chunk<TY>::ELEMS;
    for (int c = first; c < chunks; c += KSPLIT * RFC_WARP) chunk_dot<TY>(row, c, acc);
}

RFC_DEV int segment_of(int r) {
    return r < SEG0_END ? 0 : r < SEG1_END ? 1 : r < SEG2_END ? 2 : 3;
}
RFC_DEV int segment_type(int s) {
    return s == 0 ? SEG0_TYPE : s == 1 ? SEG1_TYPE : s == 2 ? SEG2_TYPE : SEG3_TYPE;
}

// Token row x (times g / rms with the prologue, token_row.h) into
// xq4/xr4/xd/xs16 [t]; every thread. Each thread takes 8 consecutive
// elements per pass (4 threads share a unit).
#define XPASSES TokenRow<WARPS * RFC_WARP>::PASSES
RFC_DEV void quantize_input(const float* x, const float* norm, int t) {
    const int lane = threadIdx.x % RFC_WARP;
    float v[XPASSES][8];
    load_token_row<WARPS * RFC_WARP>(x, norm, v);
#pragma unroll
    for (int p = 0; p < XPASSES; p++) {
        // Whole units are in or out of range (K is a multiple of 32), so
        // the 4-lane groups below never mix live and padding lanes.
        const int i = (p * WARPS * RFC_WARP + threadIdx.x) * 8;
        u32 q[2], r[2];
        float d, s;
        quantize8_two_term(v[p], q, r, &d, &s);
        s += rfc_shfl_xor(s, 1);
        if (i < K) {
            u32* qw = (u32*)xq4[t] + i / 4;
            u32* rw = (u32*)xr4[t] + i / 4;
            qw[0] = q[0], qw[1] = q[1];
            rw[0] = r[0], rw[1] = r[1];
            if ((lane & 1) == 0) xs16[t][i / 16] = d * s;
            if ((lane & 3) == 0) xd[t][i / 32] = d;
        }
    }
}

RFC_KERNEL __launch_bounds__(WARPS * RFC_WARP) void matvec(MATMUL_PARAMS) {
    __shared__ float part[WARPS][2 * NT];
    const int warp = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    const int ks = warp % KSPLIT;
    const int t0 = blockIdx.y * NT;
    const int nt = min(NT, T - t0);
    // Tokens past the step's repeat its last one: their dots are computed
    // and dropped, and no shared row is left unwritten.
    // (A barrier per row: the prologue's reduction reuses its scratch.)
    for (int t = 0; t < NT; t++) {
        quantize_input(x + (u64)(t0 + min(t, nt - 1)) * ldx, norm, t);
        __syncthreads();
    }
    for (int it = 0; it < IPW; it++) {
        const int c = (blockIdx.x * IPW + it) * IPB + warp / KSPLIT;
        const bool live = c < N_ITEMS && nt > 0;
        float a[NT], b[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) a[t] = b[t] = 0.0f;
        if (live) {
            int ra = 0, rb = 0;
            pair_rows(c, &ra, &rb);
            const u8* pa = weight_row(ra, w0, w1, w2, w3);
            const u8* pb = weight_row(rb, w0, w1, w2, w3);
            const int sa = segment_of(ra), first = ks * RFC_WARP + lane;
            if (segment_type(sa) == segment_type(segment_of(rb))) {
                if (sa == 0) dot2<SEG0_TYPE>(pa, pb, first, a, b);
                else if (sa == 1) dot2<SEG1_TYPE>(pa, pb, first, a, b);
                else if (sa == 2) dot2<SEG2_TYPE>(pa, pb, first, a, b);
                else dot2<SEG3_TYPE>(pa, pb, first, a, b);
            } else {
                WITH_ROW_TYPE(ra, dot1, first, a);
                WITH_ROW_TYPE(rb, dot1, first, b);
            }
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
            a[t] = warp_sum(a[t]);
            b[t] = warp_sum(b[t]);
        }
#if KSPLIT > 1
        // The K slices of one item meet in shared memory.
        if (lane == 0) {
#pragma unroll
            for (int t = 0; t < NT; t++) {
                part[warp][2 * t] = a[t];
                part[warp][2 * t + 1] = b[t];
            }
        }
        __syncthreads();
        if (ks == 0) {
            for (int i = 1; i < KSPLIT; i++) {
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    a[t] += part[warp + i][2 * t];
                    b[t] += part[warp + i][2 * t + 1];
                }
            }
        }
        __syncthreads();
#endif
        if (live && ks == 0 && lane == 0) {
            Epi e = MAKE_EPI;
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < nt) epilogue_pair(e, t0 + t, c, a[t], b[t]);
        }
    }
}
