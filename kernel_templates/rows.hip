// Row-wise ops outside the fused matmuls: embedding gather, RMSNorm,
// gather of logit rows, argmax and the top candidates of a logits row.
// One block per row, 256 threads.

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

#ifdef TOPK_N
// The TOPK_K most likely tokens of each row and the row's log-sum-exp, so
// that a sampler whose candidates lie among them needs only these from
// the device (a vocabulary of logits per row stays behind). Per row r,
// out[r * (2 * TOPK_K + 1) ...] holds TOPK_K ids (int; -1 past the end of
// a short row), then their logits (float), largest first, equal logits
// by smaller id (as the host's candidate sort), then log(sum(exp(row))).
// NaN is ignored. Grid (R). Defines TOPK_N, TOPK_K.
RFC_DEV bool topk_before(float v, int i, float w, int j) {
    return i >= 0 && (j < 0 || v > w || (v == w && i < j));
}

RFC_KERNEL __launch_bounds__(BLOCK) void topk(const float* __restrict__ logits, int ld,
                                              int* __restrict__ out, int R) {
    __shared__ float sv[BLOCK / RFC_WARP];
    __shared__ int si[BLOCK / RFC_WARP];
    __shared__ int sw[BLOCK / RFC_WARP];
    __shared__ float sm[BLOCK / RFC_WARP];
    __shared__ float ss[BLOCK / RFC_WARP];
    const int r = blockIdx.x;
    if (r >= R) return;
    const float* row = logits + (u64)r * ld;
    // Each thread's best TOPK_K, sorted, in registers (every index below
    // is a compile-time constant after unrolling), and its share of the
    // log-sum-exp as a running (max, sum of exp(x - max)).
    float tv[TOPK_K];
    int ti[TOPK_K];
#pragma unroll
    for (int j = 0; j < TOPK_K; j++) {
        tv[j] = RFC_NEG_INF;
        ti[j] = -1;
    }
    float m = RFC_NEG_INF, s = 0.0f;
    for (int i = threadIdx.x; i < TOPK_N; i += BLOCK) {
        const float v = row[i];
        if (v != v) continue;
        if (v == RFC_NEG_INF) {
            // exp(-inf) adds nothing to the sum.
        } else if (v > m) {
            s = s * expf(m - v) + 1.0f;
            m = v;
        } else {
            s += expf(v - m);
        }
        if (!topk_before(v, i, tv[TOPK_K - 1], ti[TOPK_K - 1])) continue;
        // Insert, carrying each displaced entry one place down.
        float cv = v;
        int ci = i;
#pragma unroll
        for (int j = 0; j < TOPK_K; j++) {
            const bool b = topk_before(cv, ci, tv[j], ti[j]);
            const float ov = tv[j];
            const int oi = ti[j];
            tv[j] = b ? cv : ov;
            ti[j] = b ? ci : oi;
            cv = b ? ov : cv;
            ci = b ? oi : ci;
        }
    }
    // The log-sum-exp over the block.
#pragma unroll
    for (int o = RFC_WARP / 2; o > 0; o >>= 1) {
        const float om = rfc_shfl_xor(m, o), os = rfc_shfl_xor(s, o);
        const float nm = fmaxf(m, om);
        s = (m == RFC_NEG_INF ? 0.0f : s * expf(m - nm)) + (om == RFC_NEG_INF ? 0.0f : os * expf(om - nm));
        m = nm;
    }
    const int w = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    if (lane == 0) {
        sm[w] = m;
        ss[w] = s;
    }
    __syncthreads();
    int* o = out + (u64)r * (2 * TOPK_K + 1);
    if (threadIdx.x == 0) {
        float bm = RFC_NEG_INF, bs = 0.0f;
        for (int k = 0; k < BLOCK / RFC_WARP; k++) {
            const float nm = fmaxf(bm, sm[k]);
            bs = (bm == RFC_NEG_INF ? 0.0f : bs * expf(bm - nm)) + (sm[k] == RFC_NEG_INF ? 0.0f : ss[k] * expf(sm[k] - nm));
            bm = nm;
        }
        const float lse = bm == RFC_NEG_INF ? RFC_NEG_INF : bm + logf(bs);
        o[2 * TOPK_K] = (int)f32_bits(lse);
    }
    // TOPK_K rounds: the best head of all threads' lists wins, and its
    // thread shifts its list up by one.
    for (int k = 0; k < TOPK_K; k++) {
        float bv = tv[0];
        int bi = ti[0];
        int bt = threadIdx.x;
#pragma unroll
        for (int x = RFC_WARP / 2; x > 0; x >>= 1) {
            const float ov = rfc_shfl_xor(bv, x);
            const int oi = rfc_shfl_xor_i(bi, x);
            const int ot = rfc_shfl_xor_i(bt, x);
            if (topk_before(ov, oi, bv, bi)) {
                bv = ov;
                bi = oi;
                bt = ot;
            }
        }
        __syncthreads();
        if (lane == 0) {
            sv[w] = bv;
            si[w] = bi;
            sw[w] = bt;
        }
        __syncthreads();
        bv = sv[0];
        bi = si[0];
        bt = sw[0];
        for (int y = 1; y < BLOCK / RFC_WARP; y++) {
            if (topk_before(sv[y], si[y], bv, bi)) {
                bv = sv[y];
                bi = si[y];
                bt = sw[y];
            }
        }
        if (threadIdx.x == 0) {
            o[k] = bi;
            o[TOPK_K + k] = (int)f32_bits(bv);
        }
        if (threadIdx.x == bt && bi >= 0) {
#pragma unroll
            for (int j = 0; j + 1 < TOPK_K; j++) {
                tv[j] = tv[j + 1];
                ti[j] = ti[j + 1];
            }
            tv[TOPK_K - 1] = RFC_NEG_INF;
            ti[TOPK_K - 1] = -1;
        }
    }
}
#endif
