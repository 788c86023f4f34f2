// Quantized matrix-vector product for decode (few tokens), with the fused
// RMSNorm prologue and the epilogue of epilogue.h.
//
//   out[t, :] = epilogue( (rmsnorm(x[t]) . W^T) )   for t < T
//
// One warp computes one item (two weight rows) for NT tokens: its lanes
// take 8-element parts of both rows in turn, dequantize each once and dot
// it with every token's x. RMSNorm is folded in: the dot is taken with x*g and
// multiplied by 1/rms(x) at the end, with sum(x^2) gathered in the same
// pass over x, so the normalized input is never written.
//
// Long rows are split: KSPLIT warps take interleaved slices of one item's
// parts and meet in shared memory, so a matrix of few rows still spreads
// over the whole GPU.
//
// Defines: K (input width, a multiple of 32 and of the weight block), NT
// (tokens per pass), IPB (items per block), KSPLIT (warps per item),
// SEGi_TYPE/SEGi_ROWS, EPS_BITS with PROLOGUE_RMS, and the epilogue's
// (epilogue.h). Grid: (ceil(N_ITEMS / IPB), ceil(T / NT)); block:
// IPB * KSPLIT * RFC_WARP.

#define UNITS (K / 32)
#define PARTS (K / 8)

// Dot products of rows a and b (same weight type) with NT tokens of x*g.
// Each lane takes 8-element parts in turn (4 lanes share a 32-element
// unit), both rows in one loop so their loads are in flight together;
// sum(x^2) per token is gathered on the way.
template <int TY>
RFC_DEVT void dot2(const u8* ra, const u8* rb, const float* x, int ldx, int nt, const float* norm, int first,
                   float* acc_a, float* acc_b, float* ss) {
    for (int p = first; p < PARTS; p += KSPLIT * RFC_WARP) {
        float wa[8], wb[8];
        dequant8<TY>(ra, p >> 2, p & 3, wa);
        dequant8<TY>(rb, p >> 2, p & 3, wb);
#if PROLOGUE_RMS
        f4 g0 = ld_f4(norm + p * 8), g1 = ld_f4(norm + p * 8 + 4);
        float g[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
#pragma unroll
        for (int e = 0; e < 8; e++) {
            wa[e] *= g[e];
            wb[e] *= g[e];
        }
#endif
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t < nt) {
                const float* xr = x + (u64)t * ldx + p * 8;
                f4 v0 = ld_f4(xr), v1 = ld_f4(xr + 4);
                float v[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
                float a = 0.0f, b = 0.0f, s2 = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    a += wa[e] * v[e];
                    b += wb[e] * v[e];
                    s2 += v[e] * v[e];
                }
                acc_a[t] += a;
                acc_b[t] += b;
                ss[t] += s2;
            }
        }
    }
}

// One row (the two rows of a pair lie in different segments).
template <int TY>
RFC_DEVT void dot1(const u8* row, const float* x, int ldx, int nt, const float* norm, int first, float* acc) {
    for (int p = first; p < PARTS; p += KSPLIT * RFC_WARP) {
        float w[8];
        dequant8<TY>(row, p >> 2, p & 3, w);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t < nt) {
                const float* xr = x + (u64)t * ldx + p * 8;
                float a = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) {
#if PROLOGUE_RMS
                    a += w[e] * norm[p * 8 + e] * xr[e];
#else
                    a += w[e] * xr[e];
#endif
                }
                acc[t] += a;
            }
        }
    }
}

RFC_DEV int segment_of(int r) {
    return r < SEG0_END ? 0 : r < SEG1_END ? 1 : r < SEG2_END ? 2 : 3;
}

RFC_KERNEL __launch_bounds__(IPB * KSPLIT * RFC_WARP) void matvec(MATMUL_PARAMS) {
    __shared__ float part[IPB * KSPLIT][3 * NT];
    const int warp = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    const int ks = warp % KSPLIT;
    const int c = blockIdx.x * IPB + warp / KSPLIT;
    const int t0 = blockIdx.y * NT;
    const int nt = min(NT, T - t0);
    const bool live = c < N_ITEMS && nt > 0;
    float acc_a[NT], acc_b[NT], ss[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc_a[t] = acc_b[t] = ss[t] = 0.0f;
    int ra = 0, rb = 0;
    if (live) {
        pair_rows(c, &ra, &rb);
        const float* xt = x + (u64)t0 * ldx;
        const u8* pa = weight_row(ra, w0, w1, w2, w3);
        const u8* pb = weight_row(rb, w0, w1, w2, w3);
        const int sa = segment_of(ra), first = ks * RFC_WARP + lane;
        if (sa == segment_of(rb)) {
            if (sa == 0) dot2<SEG0_TYPE>(pa, pb, xt, ldx, nt, norm, first, acc_a, acc_b, ss);
            else if (sa == 1) dot2<SEG1_TYPE>(pa, pb, xt, ldx, nt, norm, first, acc_a, acc_b, ss);
            else if (sa == 2) dot2<SEG2_TYPE>(pa, pb, xt, ldx, nt, norm, first, acc_a, acc_b, ss);
            else dot2<SEG3_TYPE>(pa, pb, xt, ldx, nt, norm, first, acc_a, acc_b, ss);
        } else {
            // Rare (a pair across a segment boundary): sum(x^2) from a dot2
            // of row a with itself, row b alone.
            float dummy[NT];
#pragma unroll
            for (int t = 0; t < NT; t++) dummy[t] = 0.0f;
            WITH_ROW_TYPE(ra, dot2, pa, xt, ldx, nt, norm, first, acc_a, dummy, ss);
            WITH_ROW_TYPE(rb, dot1, xt, ldx, nt, norm, first, acc_b);
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        acc_a[t] = warp_sum(acc_a[t]);
        acc_b[t] = warp_sum(acc_b[t]);
        ss[t] = warp_sum(ss[t]);
    }
#if KSPLIT > 1
    // The K slices of one item meet in shared memory.
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < NT; t++) {
            part[warp][3 * t] = acc_a[t];
            part[warp][3 * t + 1] = acc_b[t];
            part[warp][3 * t + 2] = ss[t];
        }
    }
    __syncthreads();
    if (ks != 0) return;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        for (int i = 1; i < KSPLIT; i++) {
            acc_a[t] += part[warp + i][3 * t];
            acc_b[t] += part[warp + i][3 * t + 1];
            ss[t] += part[warp + i][3 * t + 2];
        }
    }
#endif
    if (!live || lane != 0) return;
    Epi e = MAKE_EPI;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float a = acc_a[t], b = acc_b[t];
#if PROLOGUE_RMS
        float scale = rsqrtf(ss[t] / (float)K + bits_f32(EPS_BITS));
        a *= scale;
        b *= scale;
#endif
        if (t < nt) epilogue_pair(e, t0 + t, c, a, b);
    }
}
