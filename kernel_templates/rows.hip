// Row-wise ops outside the fused matmuls: embedding gather, RMSNorm, the
// per-head RMSNorm of queries and keys, gather of logit rows, argmax and
// the top candidates of a logits row.
// One block per row: 256 threads (TOPK_BLOCK for the top candidates).

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

#ifdef HEAD_NORM_D
// Per head h of each row: out[t, h] = x[t, h] / sqrt(mean(x[t, h]^2) + eps) * g
// (Qwen3's and Gemma 3's Q/K norm; g is one head's HEAD_NORM_D weights).
// Grid (T), block 256: a warp per head, heads taken in turn. Each lane
// reads and writes the same elements, so out may be x. Defines
// HEAD_NORM_D, HEAD_NORM_HEADS, EPS_BITS.
RFC_KERNEL __launch_bounds__(BLOCK) void head_rms_norm(const float* x, int ldx,
                                                       const float* __restrict__ g, float* out,
                                                       int ldo, int T) {
    const int t = blockIdx.x;
    if (t >= T) return;
    const int w = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    for (int h = w; h < HEAD_NORM_HEADS; h += BLOCK / RFC_WARP) {
        const float* xr = x + (u64)t * ldx + h * HEAD_NORM_D;
        float s = 0.0f;
        for (int i = lane; i < HEAD_NORM_D; i += RFC_WARP) s += xr[i] * xr[i];
        s = warp_sum(s);
        const float scale = rsqrtf(s / (float)HEAD_NORM_D + bits_f32(EPS_BITS));
        float* o = out + (u64)t * ldo + h * HEAD_NORM_D;
        for (int i = lane; i < HEAD_NORM_D; i += RFC_WARP) o[i] = xr[i] * scale * g[i];
    }
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
// NaN is ignored. Grid (R), block TOPK_BLOCK. Defines TOPK_N, TOPK_K,
// TOPK_BLOCK (a power of two).
//
// Two passes over the row instead of a selection per thread: (value, id)
// pairs are totally ordered (larger value, then smaller id), so the K-th
// best of any K distinct elements bounds the row's K-th best from below.
// Pass one takes each thread's best element (and the log-sum-exp); the
// K-th best of those is the bound. Pass two keeps the elements at or
// above it (the top K and typically few more) in shared memory, where one
// sort finishes. If more than a block's worth pass (ties, masked rows),
// the K-th best of those kept is a strictly higher bound: repeat.
static_assert(TOPK_K <= TOPK_BLOCK, "a sort holds the candidates");

RFC_DEV bool topk_before(float v, int i, float w, int j) {
    return i >= 0 && (j < 0 || v > w || (v == w && i < j));
}

// Sorts TOPK_BLOCK pairs in shared memory, best first (topk_before; ids
// -1 last): bitonic, one pair per thread. Callers synchronize before.
RFC_DEV void topk_sort(float* v, int* id) {
    const int t = threadIdx.x;
    for (int k = 2; k <= TOPK_BLOCK; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            const int p = t ^ j;
            if (p > t) {
                const float a = v[t], b = v[p];
                const int ia = id[t], ib = id[p];
                const bool best_first = (t & k) == 0;
                if (best_first ? topk_before(b, ib, a, ia) : topk_before(a, ia, b, ib)) {
                    v[t] = b;
                    v[p] = a;
                    id[t] = ib;
                    id[p] = ia;
                }
            }
            __syncthreads();
        }
    }
}

RFC_KERNEL __launch_bounds__(TOPK_BLOCK) void topk(const float* __restrict__ logits, int ld,
                                                   int* __restrict__ out, int R) {
    __shared__ float sv[TOPK_BLOCK];
    __shared__ int si[TOPK_BLOCK];
    __shared__ float sm[TOPK_BLOCK / RFC_WARP];
    __shared__ float ss[TOPK_BLOCK / RFC_WARP];
    __shared__ int kept;
    const int r = blockIdx.x;
    if (r >= R) return;
    const int t = threadIdx.x;
    const float* row = logits + (u64)r * ld;
    int* o = out + (u64)r * (2 * TOPK_K + 1);
    // Pass one: this thread's best pair, and its share of the log-sum-exp
    // as a running (max, sum of exp(x - max)).
    float bv = RFC_NEG_INF, m = RFC_NEG_INF, s = 0.0f;
    int bi = -1;
    for (int i = t; i < TOPK_N; i += TOPK_BLOCK) {
        const float v = row[i];
        if (v != v) continue;
        if (bi < 0 || v > bv) {
            bv = v;
            bi = i;
        }
        if (v == RFC_NEG_INF) {
            // exp(-inf) adds nothing to the sum.
        } else if (v > m) {
            s = s * expf(m - v) + 1.0f;
            m = v;
        } else {
            s += expf(v - m);
        }
    }
#pragma unroll
    for (int x = RFC_WARP / 2; x > 0; x >>= 1) {
        const float om = rfc_shfl_xor(m, x), os = rfc_shfl_xor(s, x);
        const float nm = fmaxf(m, om);
        s = (m == RFC_NEG_INF ? 0.0f : s * expf(m - nm)) + (om == RFC_NEG_INF ? 0.0f : os * expf(om - nm));
        m = nm;
    }
    const int w = t / RFC_WARP, lane = t % RFC_WARP;
    if (lane == 0) {
        sm[w] = m;
        ss[w] = s;
    }
    sv[t] = bv;
    si[t] = bi;
    __syncthreads();
    if (t == 0) {
        float lm = RFC_NEG_INF, ls = 0.0f;
        for (int k = 0; k < TOPK_BLOCK / RFC_WARP; k++) {
            const float nm = fmaxf(lm, sm[k]);
            ls = (lm == RFC_NEG_INF ? 0.0f : ls * expf(lm - nm)) + (sm[k] == RFC_NEG_INF ? 0.0f : ss[k] * expf(sm[k] - nm));
            lm = nm;
        }
        o[2 * TOPK_K] = (int)f32_bits(lm == RFC_NEG_INF ? RFC_NEG_INF : lm + logf(ls));
    }
    topk_sort(sv, si);
    // The bound (none where fewer than K threads saw a value: then every
    // value passes, and a row of fewer than K values fits).
    float wv = sv[TOPK_K - 1];
    int wi = si[TOPK_K - 1];
    for (;;) {
        __syncthreads();  // everyone has read sv/si and `kept`
        sv[t] = RFC_NEG_INF;
        si[t] = -1;
        if (t == 0) kept = 0;
        __syncthreads();
        for (int i = t; i < TOPK_N; i += TOPK_BLOCK) {
            const float v = row[i];
            if (v != v || (wi >= 0 && !(v > wv || (v == wv && i <= wi)))) continue;
            const int slot = atomicAdd(&kept, 1);
            if (slot < TOPK_BLOCK) {
                sv[slot] = v;
                si[slot] = i;
            }
        }
        __syncthreads();
        const int n = kept;
        topk_sort(sv, si);
        if (n <= TOPK_BLOCK) break;
        wv = sv[TOPK_K - 1];
        wi = si[TOPK_K - 1];
    }
    if (t < TOPK_K) {
        o[t] = si[t];
        o[TOPK_K + t] = (int)f32_bits(si[t] >= 0 ? sv[t] : RFC_NEG_INF);
    }
}
#endif
