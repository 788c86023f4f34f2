// Row-wise ops outside the fused matmuls: embedding gather, RMSNorm,
// gather of logit rows, and argmax. One block per row, 256 threads.

#define BLOCK 256

// Sum over the block (blockDim.x == BLOCK); every thread gets the result.
RFC_DEV float block_sum(float v, float* scratch) {
    v = warp_sum(v);
    const int w = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    __syncthreads();
    if (lane == 0) scratch[w] = v;
    __syncthreads();
    float r = 0.0f;
    for (int i = 0; i < BLOCK / RFC_WARP; i++) r += scratch[i];
    return r;
}

#ifdef EMBED_TYPE
// out[t, :] = dequantized row tokens[t] of table [V, D] (type EMBED_TYPE).
// Ids outside 0..V-1 yield zero rows (the executor validates ids first).
// Grid (T), block 256. Defines: EMBED_TYPE, D, V.
RFC_KERNEL __launch_bounds__(BLOCK) void embed(const u8* __restrict__ table, const int* __restrict__ tokens,
                                               float* __restrict__ out, int ldo, int T) {
    const int t = blockIdx.x;
    if (t >= T) return;
    const int id = tokens[t];
    const bool ok = id >= 0 && id < V;
    const u8* row = table + (u64)(ok ? id : 0) * row_bytes<EMBED_TYPE>(D);
    for (int i = threadIdx.x; i < D / 8; i += BLOCK) {
        float v[8];
        dequant8<EMBED_TYPE>(row, i / 4, i % 4, v);
#pragma unroll
        for (int e = 0; e < 8; e++) out[(u64)t * ldo + i * 8 + e] = ok ? v[e] : 0.0f;
    }
}
#endif

#ifdef NORM_D
// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * g. Grid (T). Defines NORM_D, EPS_BITS.
RFC_KERNEL __launch_bounds__(BLOCK) void rms_norm(const float* __restrict__ x, int ldx,
                                                  const float* __restrict__ g, float* __restrict__ out,
                                                  int ldo, int T) {
    __shared__ float scratch[BLOCK / RFC_WARP];
    const int t = blockIdx.x;
    if (t >= T) return;
    const float* xr = x + (u64)t * ldx;
    float s = 0.0f;
    for (int i = threadIdx.x; i < NORM_D; i += BLOCK) s += xr[i] * xr[i];
    s = block_sum(s, scratch);
    const float scale = rsqrtf(s / (float)NORM_D + bits_f32(EPS_BITS));
    for (int i = threadIdx.x; i < NORM_D; i += BLOCK) out[(u64)t * ldo + i] = xr[i] * scale * g[i];
}
#endif

#ifdef GATHER_D
// out[r] = x[rows[r]]. Grid (R). Defines GATHER_D.
RFC_KERNEL __launch_bounds__(BLOCK) void gather_rows(const float* __restrict__ x, int ldx,
                                                     const int* __restrict__ rows, float* __restrict__ out,
                                                     int ldo, int R) {
    const int r = blockIdx.x;
    if (r >= R) return;
    const float* src = x + (u64)rows[r] * ldx;
    for (int i = threadIdx.x; i < GATHER_D; i += BLOCK) out[(u64)r * ldo + i] = src[i];
}
#endif

#ifdef ARGMAX_N
// out[r] = index of the largest of logits[r, 0..ARGMAX_N) (the first of
// equal ones; NaN ignored; -1 if all NaN). Grid (R). Defines ARGMAX_N.
RFC_KERNEL __launch_bounds__(BLOCK) void argmax(const float* __restrict__ logits, int ld,
                                                int* __restrict__ out, int R) {
    __shared__ float sv[BLOCK / RFC_WARP];
    __shared__ int si[BLOCK / RFC_WARP];
    const int r = blockIdx.x;
    if (r >= R) return;
    const float* row = logits + (u64)r * ld;
    float bv = RFC_NEG_INF;
    int bi = -1;
    for (int i = threadIdx.x; i < ARGMAX_N; i += BLOCK) {
        float v = row[i];
        if (v == v && (bi < 0 || v > bv)) {
            bv = v;
            bi = i;
        }
    }
    // Larger value wins; equal values: smaller index (-1 never wins).
#pragma unroll
    for (int m = RFC_WARP / 2; m > 0; m >>= 1) {
        float ov = rfc_shfl_xor(bv, m);
        int oi = rfc_shfl_xor_i(bi, m);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
            bv = ov;
            bi = oi;
        }
    }
    const int w = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    if (lane == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < BLOCK / RFC_WARP; i++) {
            if (si[i] >= 0 && (bi < 0 || sv[i] > bv || (sv[i] == bv && si[i] < bi))) {
                bv = sv[i];
                bi = si[i];
            }
        }
        out[r] = bi;
    }
}
#endif
