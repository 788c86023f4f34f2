// One token row of K floats in the registers of a block of THREADS
// threads, 8 consecutive elements per thread and pass (element (p *
// THREADS + tid) * 8 + e in v[p][e]; zeros past K), with the RMSNorm
// prologue applied when PROLOGUE_RMS: what the prefill tiles' row
// preparation (quantize_rows, scale_rows) and the decode matvec's input
// quantization (matvec_q8.hip) start from. Each thread issues all its
// loads before using any, so the row costs about one memory latency.

template <int THREADS> struct TokenRow {
    enum { PASSES = (K + THREADS * 8 - 1) / (THREADS * 8), WARPS_ = THREADS / RFC_WARP };
};

template <int THREADS> RFC_DEVT void load_token_row(const float* xr, const float* norm, float (*v)[8]) {
#pragma unroll
    for (int p = 0; p < TokenRow<THREADS>::PASSES; p++) {
        const int i = (p * THREADS + threadIdx.x) * 8;
        f4 a = {0.0f, 0.0f, 0.0f, 0.0f}, b = a;
        if (i < K) {
            a = ld_f4(xr + i);
            b = ld_f4(xr + i + 4);
        }
        v[p][0] = a.x, v[p][1] = a.y, v[p][2] = a.z, v[p][3] = a.w;
        v[p][4] = b.x, v[p][5] = b.y, v[p][6] = b.z, v[p][7] = b.w;
    }
#if PROLOGUE_RMS
    __shared__ float red[TokenRow<THREADS>::WARPS_];
    const int warp = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    float ss = 0.0f;
#pragma unroll
    for (int p = 0; p < TokenRow<THREADS>::PASSES; p++)
#pragma unroll
        for (int e = 0; e < 8; e++) ss += v[p][e] * v[p][e];
    ss = warp_sum(ss);
    if (lane == 0) red[warp] = ss;
    __syncthreads();
    ss = 0.0f;
#pragma unroll
    for (int w = 0; w < TokenRow<THREADS>::WARPS_; w++) ss += red[w];
    const float scale = rsqrtf(ss / (float)K + bits_f32(EPS_BITS));
#pragma unroll
    for (int p = 0; p < TokenRow<THREADS>::PASSES; p++) {
        const int i = (p * THREADS + threadIdx.x) * 8;
        if (i < K) {
            f4 a = ld_f4(norm + i), b = ld_f4(norm + i + 4);
            float g[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
            for (int e = 0; e < 8; e++) v[p][e] *= g[e] * scale;
        }
    }
#else
    (void)norm;
#endif
}

// The largest |v| of the block's row (every thread gets it; synchronizes).
template <int THREADS> RFC_DEVT float token_row_max(const float (*v)[8]) {
    __shared__ float red_max[TokenRow<THREADS>::WARPS_];
    float m = 0.0f;
#pragma unroll
    for (int p = 0; p < TokenRow<THREADS>::PASSES; p++)
#pragma unroll
        for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(v[p][e]));
    m = group_max(m, RFC_WARP);
    if (threadIdx.x % RFC_WARP == 0) red_max[threadIdx.x / RFC_WARP] = m;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < TokenRow<THREADS>::WARPS_; w++) m = fmaxf(m, red_max[w]);
    return m;
}

// The row preparation kernels' blocks (quantize_rows, scale_rows).
#define QPASSES TokenRow<256>::PASSES
