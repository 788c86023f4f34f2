// Tiled quantized matrix product for prefill (many tokens), with the same
// prologue and epilogue as matvec.hip.
//
// A block computes TM tokens x 64 weight rows: the rows of items
// i0..i0+32 (the A rows, then their B partners; see epilogue.h), so every
// thread holds both rows of the pairs it finishes. The k loop walks
// 32-element units: the x tile is normalized-weighted (x*g) as it is
// staged, the weight tile dequantized into shared memory once per block.
// sum(x^2) per token is gathered while staging x (RMSNorm prologue).
//
// Defines: K, TM (tokens per tile, 16..64 step 16), SEGi_*, EPS_BITS with
// PROLOGUE_RMS, the epilogue's. Grid: (ceil(N_ITEMS / 32), ceil(T / TM));
// block: 256 threads.

#define TN 64
#define UNITS (K / 32)
#define TI (TM / 16)

template <int TY>
RFC_DEVT void dequant_part(const u8* row, int unit, int part, float* v) {
    dequant8<TY>(row, unit, part, v);
}

RFC_KERNEL __launch_bounds__(256) void matmul(MATMUL_PARAMS) {
    __shared__ float xs[32][TM + 1];
    __shared__ float ws[32][TN + 1];
    __shared__ float scale_s[TM];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int i0 = blockIdx.x * (TN / 2);
    const int t0 = blockIdx.y * TM;

    // Staging roles: x rows (4 threads a token, 8 elements each) and
    // weight rows (4 threads a row, one 8-element part each).
    const int xl_t = tid / 4, xl_p = tid % 4;
    const int wl_r = tid / 4, wl_p = tid % 4;
    int wrow = -1;
    {
        int item = i0 + (wl_r % (TN / 2));
        if (item < N_ITEMS) {
            int ra, rb;
            pair_rows(item, &ra, &rb);
            wrow = wl_r < TN / 2 ? ra : rb;
        }
    }
    float ss = 0.0f;
    float acc[TI][4];
#pragma unroll
    for (int i = 0; i < TI; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (int u = 0; u < UNITS; u++) {
        if (xl_t < TM) {
            float v[8];
            int t = t0 + xl_t;
            if (t < T) {
                const float* xr = x + (u64)t * ldx + u * 32 + xl_p * 8;
                f4 a = ld_f4(xr), b = ld_f4(xr + 4);
                v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
                v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = 0.0f;
            }
#pragma unroll
            for (int e = 0; e < 8; e++) {
                ss += v[e] * v[e];
#if PROLOGUE_RMS
                v[e] *= norm[u * 32 + xl_p * 8 + e];
#endif
                xs[xl_p * 8 + e][xl_t] = v[e];
            }
        }
        {
            float v[8];
            if (wrow >= 0) {
                WITH_ROW_TYPE(wrow, dequant_part, u, wl_p, v);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = 0.0f;
            }
#pragma unroll
            for (int e = 0; e < 8; e++) ws[wl_p * 8 + e][wl_r] = v[e];
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < 32; k++) {
            float a[TI], b[4];
#pragma unroll
            for (int i = 0; i < TI; i++) a[i] = xs[k][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = ws[k][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < TI; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }

    ss = group_sum(ss, 4);
    if (xl_t < TM && xl_p == 0) {
#if PROLOGUE_RMS
        scale_s[xl_t] = rsqrtf(ss / (float)K + bits_f32(EPS_BITS));
#else
        scale_s[xl_t] = 1.0f;
#endif
    }
    __syncthreads();

    Epi e = MAKE_EPI;
#pragma unroll
    for (int i = 0; i < TI; i++) {
        int tl = ty + 16 * i, t = t0 + tl;
        if (t >= T) continue;
        float sc = scale_s[tl];
#pragma unroll
        for (int j = 0; j < 2; j++) {
            int item = i0 + tx + 16 * j;
            if (item < N_ITEMS) epilogue_pair(e, t, item, acc[i][j] * sc, acc[i][j + 2] * sc);
        }
    }
}
