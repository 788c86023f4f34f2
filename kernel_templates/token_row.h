// One token row of K floats in the registers of a 256-thread block, 8
// consecutive elements per thread and pass (element (p * 256 + tid) * 8 +
// e in v[p][e]; zeros past K), with the RMSNorm prologue applied when
// PROLOGUE_RMS: what the prefill tiles' row preparation kernels
// (quantize_rows, split_rows) start from.

#define QPASSES ((K + 256 * 8 - 1) / (256 * 8))
RFC_DEV void load_token_row(const float* xr, const float* norm, float v[QPASSES][8]) {
#pragma unroll
    for (int p = 0; p < QPASSES; p++) {
        const int i = (p * 256 + threadIdx.x) * 8;
        f4 a = {0.0f, 0.0f, 0.0f, 0.0f}, b = a;
        if (i < K) {
            a = ld_f4(xr + i);
            b = ld_f4(xr + i + 4);
        }
        v[p][0] = a.x, v[p][1] = a.y, v[p][2] = a.z, v[p][3] = a.w;
        v[p][4] = b.x, v[p][5] = b.y, v[p][6] = b.z, v[p][7] = b.w;
    }
#if PROLOGUE_RMS
    __shared__ float red[8];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float ss = 0.0f;
#pragma unroll
    for (int p = 0; p < QPASSES; p++)
#pragma unroll
        for (int e = 0; e < 8; e++) ss += v[p][e] * v[p][e];
    ss = warp_sum(ss);
    if (lane == 0) red[warp] = ss;
    __syncthreads();
    ss = 0.0f;
#pragma unroll
    for (int w = 0; w < 8; w++) ss += red[w];
    const float scale = rsqrtf(ss / (float)K + bits_f32(EPS_BITS));
#pragma unroll
    for (int p = 0; p < QPASSES; p++) {
        const int i = (p * 256 + threadIdx.x) * 8;
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
RFC_DEV float token_row_max(const float v[QPASSES][8]) {
    __shared__ float red_max[8];
    float m = 0.0f;
#pragma unroll
    for (int p = 0; p < QPASSES; p++)
#pragma unroll
        for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(v[p][e]));
    m = group_max(m, 32);
    if (threadIdx.x % 32 == 0) red_max[threadIdx.x / 32] = m;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < 8; w++) m = fmaxf(m, red_max[w]);
    return m;
}
