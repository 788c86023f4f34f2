// Quantized matrix-vector product for decode (few tokens), with the fused
// RMSNorm prologue and the epilogue of epilogue.h.
//
//   out[t, :] = epilogue( (rmsnorm(x[t]) . W^T) )   for t < T
//
// One warp computes one item (two weight rows) for NT tokens: its lanes
// take the row's 32-element units in turn, dequantize each once and dot it
// with every token's x. RMSNorm is folded in: the dot is taken with x*g and
// multiplied by 1/rms(x) at the end, with sum(x^2) gathered in the same
// pass over x, so the normalized input is never written.
//
// Defines: K (input width, a multiple of 32 and of the weight block), NT
// (tokens per pass), WARPS (warps per block), SEGi_TYPE/SEGi_ROWS, EPS_BITS
// with PROLOGUE_RMS, and the epilogue's (epilogue.h).
// Grid: (ceil(N_ITEMS / WARPS), ceil(T / NT)); block: WARPS * RFC_WARP.

#define UNITS (K / 32)

template <int TY>
RFC_DEVT void dot_row(const u8* row, const float* x, int ldx, int nt, const float* norm, int lane,
                     float* acc, float* ss, bool want_ss) {
    for (int u = lane; u < UNITS; u += RFC_WARP) {
        float w[32];
        dequant32<TY>(row, u, w);
#if PROLOGUE_RMS
#pragma unroll
        for (int q = 0; q < 8; q++) {
            f4 g = ld_f4(norm + u * 32 + q * 4);
            w[4 * q] *= g.x;
            w[4 * q + 1] *= g.y;
            w[4 * q + 2] *= g.z;
            w[4 * q + 3] *= g.w;
        }
#endif
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t < nt) {
                const float* xr = x + (u64)t * ldx + u * 32;
                float a = 0.0f, s = 0.0f;
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    f4 v = ld_f4(xr + q * 4);
                    a += w[4 * q] * v.x + w[4 * q + 1] * v.y + w[4 * q + 2] * v.z + w[4 * q + 3] * v.w;
                    s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
                }
                acc[t] += a;
                if (want_ss) ss[t] += s;
            }
        }
    }
}

RFC_KERNEL __launch_bounds__(WARPS * RFC_WARP) void matvec(MATMUL_PARAMS) {
    const int warp = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    const int c = blockIdx.x * WARPS + warp;
    const int t0 = blockIdx.y * NT;
    if (c >= N_ITEMS || t0 >= T) return;
    const int nt = min(NT, T - t0);
    int ra, rb;
    pair_rows(c, &ra, &rb);
    float acc_a[NT], acc_b[NT], ss[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc_a[t] = acc_b[t] = ss[t] = 0.0f;
    const float* xt = x + (u64)t0 * ldx;
    WITH_ROW_TYPE(ra, dot_row, xt, ldx, nt, norm, lane, acc_a, ss, true);
    WITH_ROW_TYPE(rb, dot_row, xt, ldx, nt, norm, lane, acc_b, ss, false);
    Epi e = MAKE_EPI;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float a = warp_sum(acc_a[t]), b = warp_sum(acc_b[t]);
#if PROLOGUE_RMS
        float scale = rsqrtf(warp_sum(ss[t]) / (float)K + bits_f32(EPS_BITS));
        a *= scale;
        b *= scale;
#endif
        if (t < nt && lane == 0) epilogue_pair(e, t0 + t, c, a, b);
    }
}
