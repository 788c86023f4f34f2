// Tiled product of K-quant weights (Q3_K, Q4_K, Q5_K, Q6_K) on the f16
// matrix units, for prefill on NVIDIA (sm_80+).
//
// These types read w = d·sc·q − dmin·m: a super-block scale d (and dmin)
// per 256 elements, small integer sub-scales sc (and mins m) per 16 or 32,
// small integer q. The products sc·q are integers: |sc·q| ≤ 128 (Q3_K),
// 945 (Q4_K), 1,953 (Q5_K), which f16 holds exactly, and ≤ 4,096 (Q6_K),
// which f16 rounds by at most 2^-12 of the value above 2,048. So the
// weights go to the matrix units as f16 sc·q, the activations as f16 of
// the row times a power of two (2^-12 relative, against the CPU
// backend's 8-bit activations: docs/PERFORMANCE.md), and every product sums
// in f32 inside the `mma`, with no per-group scaling (matmul_q8.hip scales
// every group). What is left per weight row:
//   the super-block scale d: the accumulators count in units u_s of the
//     current super-block's d (or, where d = 0 and the block contributes
//     only its mins, of the last non-zero d before it); each super-block
//     first rescales them by u_{s-1} / u_s, and the last u multiplies them
//     once before the epilogue;
//   the mins (Q4_K, Q5_K): minus (dmin·m / u_s) times the activations'
//     32-element sums, one f32 multiply-add per accumulator and group.
// Three launches:
//   repack_weights: into the `wq` buffer (kept from load where memory
//     allows, else once per step), in the concatenated row order:
//       q [N_PHYS][K] f16 (sc·q, 0 where u_s ≠ d_s), ratio [N_PHYS][K/256]
//       f32 (u_{s-1} / u_s, 1 for s = 0; padded to 16 bytes), mins
//       [N_PHYS][K/32] f32 (dmin·m / u_s), last [N_PHYS] f32 (the last u)
//   scale_rows: each token row of x (RMSNorm applied with the prologue)
//     times 2^e (its largest lands in [2^14, 2^15)) into the `xq` buffer:
//       h [T][K] f16, sums [T][K/32] f32 (of h), unscale [T] f32 (2^-e)
//   matmul: out = epilogue(x · Wᵀ), TM x TN tiles (tiles.h) through two or
//     three cp.async stages of KC elements in dynamic shared memory,
//     fragments by ldmatrix.
//
// Defines: K (a multiple of 256), TM, TN, SEGi_* (the four types), PIPE_BYTES,
// EPS_BITS with PROLOGUE_RMS, the epilogue's. Grids: repack_weights
// (ceil(N_PHYS * K / 8 / 256)), scale_rows (T), matmul (ceil(N_ITEMS /
// (TN/2)), ceil(T / TM)), all 256 threads.

#define UNITS (K / 32)
#define SUPERS (K / 256)
#define RATIO_BYTES (((u64)N_PHYS * SUPERS * 4 + 15) / 16 * 16)  // the mins' runs stay 16-byte aligned
// The k step: 128 where two stages of it fit a block's shared memory
// (sm_80 / sm_87 / sm_90 blocks take 163 KB or more), else 64 (99 KB).
// MatMulSpec::pipe_bytes mirrors this rule.
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 800 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 900)
#define KC 128
#else
#define KC 64
#endif
// Stages in flight: three where they fit (sm_90: 3 x 74 KB), else two
// (MatMulSpec::pipe_bytes mirrors this rule too).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900
#define STAGES 3
#else
#define STAGES 2
#endif
#define CHUNKS (K / KC)
#define KPH (KC + 8)  // row pitch of the staged tiles in halves: an odd multiple of 16 bytes
#define CU (KC / 32)  // units per chunk
#define PSTAGE (((TM + TN) * KPH * 2 + 4 * (TM * CU + TN * CU + TN) + 15) / 16 * 16)
#define EPI_BYTES (8 * 16 * EPI_PITCH * 4)
static_assert(STAGES * PSTAGE <= PIPE_BYTES, "the stages fit the launch's shared memory");
static_assert(EPI_BYTES <= PSTAGE, "the epilogue fits a stage");
static_assert(K % 256 == 0 && 256 % KC == 0, "whole super-blocks, whole chunks of them");

// ---- weights ----------------------------------------------------------------

struct WhView {
    const u16* q;
    const float *ratio, *mins, *last;
};
RFC_DEV WhView wh_view(const u8* base) {
    WhView v;
    v.q = (const u16*)base;
    v.ratio = (const float*)(base + (u64)N_PHYS * K * 2);
    v.mins = (const float*)(base + (u64)N_PHYS * K * 2 + RATIO_BYTES);
    v.last = v.mins + (u64)N_PHYS * UNITS;
    return v;
}

// Super-block s of a row, and its scale d.
template <int TY> RFC_DEVT const u8* super_block(const u8* row, int s) { return row + (u64)s * QuantInfo<TY>::BYTES; }
template <int TY> RFC_DEVT float super_d(const u8* row, int s);
template <> RFC_DEVT float super_d<T_Q3_K>(const u8* row, int s) { return ld_half(super_block<T_Q3_K>(row, s) + 108); }
template <> RFC_DEVT float super_d<T_Q4_K>(const u8* row, int s) { return ld_half(super_block<T_Q4_K>(row, s)); }
template <> RFC_DEVT float super_d<T_Q5_K>(const u8* row, int s) { return ld_half(super_block<T_Q5_K>(row, s)); }
template <> RFC_DEVT float super_d<T_Q6_K>(const u8* row, int s) { return ld_half(super_block<T_Q6_K>(row, s) + 208); }
// Types not read here (never called: the dispatch below instantiates every segment).
template <int TY> RFC_DEVT float super_d(const u8*, int) { return 0.0f; }

// The integer sub-scale of part `part` (8 elements) of unit `unit`, and
// the unit's min as dmin·m.
template <int TY> RFC_DEVT void sub_scale(const u8* row, int unit, int part, float* sc, float* min) {
    *sc = *min = 0.0f;
}
RFC_DEV void k4_sub_scale(const u8* b, int unit, float* sc, float* min) {
    float m;
    scale_min_k4(unit & 7, b + 4, sc, &m);
    *min = ld_half(b + 2) * m;
}
template <> RFC_DEVT void sub_scale<T_Q4_K>(const u8* row, int unit, int, float* sc, float* min) {
    k4_sub_scale(super_block<T_Q4_K>(row, unit / 8), unit, sc, min);
}
template <> RFC_DEVT void sub_scale<T_Q5_K>(const u8* row, int unit, int, float* sc, float* min) {
    k4_sub_scale(super_block<T_Q5_K>(row, unit / 8), unit, sc, min);
}
template <> RFC_DEVT void sub_scale<T_Q6_K>(const u8* row, int unit, int part, float* sc, float* min) {
    const int s = unit & 7;
    *sc = (float)((const i8*)super_block<T_Q6_K>(row, unit / 8))[192 + (s >> 2) * 8 + 2 * (s & 3) + part / 2];
    *min = 0.0f;
}
template <> RFC_DEVT void sub_scale<T_Q3_K>(const u8* row, int unit, int part, float* sc, float* min) {
    const int s = unit & 7;
    *sc = scale_q3k((s >> 2) * 8 + (s & 3) * 2 + part / 2, super_block<T_Q3_K>(row, unit / 8) + 96);
    *min = 0.0f;
}

// The accumulators' unit for super-block s: d_s, or where d_s = 0 the
// last non-zero d before it (the first non-zero one after it when there
// is none before; 1 for a row of zero scales).
template <int TY> RFC_DEVT float super_unit(const u8* row, int s) {
    for (int j = s; j >= 0; j--) {
        const float d = super_d<TY>(row, j);
        if (d != 0.0f) return d;
    }
    for (int j = s + 1; j < SUPERS; j++) {
        const float d = super_d<TY>(row, j);
        if (d != 0.0f) return d;
    }
    return 1.0f;
}

// Part `part` (8 elements) of unit `unit` of row r as f16 sc·q, with the
// unit's min coefficient and, for a super-block's first part, its ratio
// (and the row's last unit at the last super-block).
template <int TY>
RFC_DEVT void repack_part(const u8* row, int r, int unit, int part, u8* wq) {
    const int s = unit / 8, j = unit % 8;
    const float d = super_d<TY>(row, s), u = super_unit<TY>(row, s);
    float sc, mn;
    sub_scale<TY>(row, unit, part, &sc, &mn);
    u32 q[2];
    i8_part<TY>(row, unit, part, q);  // bytes: signed for Q3_K / Q6_K, unsigned for Q4_K / Q5_K
    const bool is_signed = TY == T_Q3_K || TY == T_Q6_K;
    const float keep = d == u ? sc : 0.0f;
    u32 h[4];
#pragma unroll
    for (int e = 0; e < 8; e += 2) {
        float v[2];
#pragma unroll
        for (int o = 0; o < 2; o++) {
            const u32 byte = (q[(e + o) / 4] >> (8 * ((e + o) % 4))) & 0xFFu;
            v[o] = is_signed ? (float)(i8)byte : (float)byte;
        }
        h[e / 2] = pack_h2(f2h(keep * v[0]), f2h(keep * v[1]));
    }
    *(u32x4*)(wq + ((u64)r * K + unit * 32 + part * 8) * 2) = u32x4{h[0], h[1], h[2], h[3]};
    if (part != 0) return;
    float* ratio = (float*)(wq + (u64)N_PHYS * K * 2);
    float* mins = (float*)(wq + (u64)N_PHYS * K * 2 + RATIO_BYTES);
    float* last = mins + (u64)N_PHYS * UNITS;
    mins[(u64)r * UNITS + unit] = mn / u;
    if (j == 0) ratio[(u64)r * SUPERS + s] = s == 0 ? 1.0f : super_unit<TY>(row, s - 1) / u;
    if (j == 0 && s == SUPERS - 1) last[r] = u;
}

RFC_KERNEL __launch_bounds__(256) void repack_weights(const u8* __restrict__ w0, const u8* __restrict__ w1,
                                                      const u8* __restrict__ w2, const u8* __restrict__ w3,
                                                      u8* wq) {
    const u64 i = (u64)blockIdx.x * 256 + threadIdx.x;
    if (i >= (u64)N_PHYS * (K / 8)) return;
    const int r = (int)(i / (K / 8)), up = (int)(i % (K / 8));
    const int unit = up / 4, part = up % 4;
    const u8* row = weight_row(r, w0, w1, w2, w3);
    if (r < SEG0_END) repack_part<SEG0_TYPE>(row, r, unit, part, wq);
    else if (r < SEG1_END) repack_part<SEG1_TYPE>(row, r, unit, part, wq);
    else if (r < SEG2_END) repack_part<SEG2_TYPE>(row, r, unit, part, wq);
    else repack_part<SEG3_TYPE>(row, r, unit, part, wq);
}

// ---- activations ------------------------------------------------------------

RFC_KERNEL __launch_bounds__(256) void scale_rows(const float* __restrict__ x, int ldx,
                                                  const float* __restrict__ norm, u8* xq, int T) {
    const int t = blockIdx.x;
    float v[QPASSES][8];
    load_token_row<256>(x + (u64)t * ldx, norm, v);
    const float rmax = token_row_max<256>(v);
    // 2^e with the row's largest in [2^14, 2^15): f16's range above, its
    // subnormals far below (the exponent is clamped to f32's normal range).
    int ex = 0;
    if (rmax > 0.0f) (void)frexpf(rmax, &ex);
    const int e = min(max(15 - ex, -126), 126);
    const float up = ldexpf(1.0f, e);
    const u64 n = (u64)T * K;
    u16* h = (u16*)xq + (u64)t * K;
    float* sums = (float*)(xq + 2 * n) + (u64)t * UNITS;
#pragma unroll
    for (int p = 0; p < QPASSES; p++) {
        const int i = (p * 256 + threadIdx.x) * 8;
        u32 hv[4];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k += 2) {
            const u16 a = f2h(v[p][k] * up), b = f2h(v[p][k + 1] * up);
            s += h2f(a) + h2f(b);
            hv[k / 2] = pack_h2(a, b);
        }
        // Four lanes hold a unit of 32 (whole units are in or out of range).
        s += rfc_shfl_xor(s, 1);
        s += rfc_shfl_xor(s, 2);
        if (i < K) {
            *(u32x4*)(h + i) = u32x4{hv[0], hv[1], hv[2], hv[3]};
            if ((threadIdx.x & 3) == 0) sums[i / 32] = s;
        }
    }
    if (threadIdx.x == 0) ((float*)(xq + 2 * n) + (u64)T * UNITS)[t] = 1.0f / up;
}

// ---- matmul -----------------------------------------------------------------

// The shared-memory tiles of one chunk.
struct Tiles {
    u16 *xh, *w;
    float *xs, *wm, *wr;
};
RFC_DEV Tiles stage_tiles(u8* smem, int s) {
    u8* b = smem + s * PSTAGE;
    Tiles t;
    t.xh = (u16*)b;
    t.w = t.xh + TM * KPH;
    t.xs = (float*)(t.w + TN * KPH);
    t.wm = t.xs + TM * CU;
    t.wr = t.wm + TN * CU;
    return t;
}

// The weight row behind each tile row this thread copies (-1: none), the
// same for every chunk.
#define W_PIECES (TN * (KC / 8) / 256)
#define X_PIECES (TM * (KC / 8) / 256)
static_assert(W_PIECES * 256 == TN * (KC / 8) && X_PIECES * 256 == TM * (KC / 8), "whole rounds");
struct WRows {
    int q[W_PIECES];
    int s;  // tile row threadIdx.x's (< TN) weight row
};
RFC_DEV WRows w_rows(int i0) {
    WRows w;
#pragma unroll
    for (int r = 0; r < W_PIECES; r++) w.q[r] = tile_row(i0, (threadIdx.x + 256 * r) / (KC / 8));
    w.s = threadIdx.x < TN ? tile_row(i0, threadIdx.x) : -1;
    return w;
}

// Queues the copies of chunk c into the tiles `tl_`.
RFC_DEV void issue_chunk(const Tiles& tl_, const u8* xq, const u8* wq, const WRows& rows, int T, int t0, int c) {
    const u64 n = (u64)T * K;
    const u16* xh = (const u16*)xq;
    const float* xs_g = (const float*)(xq + 2 * n);
    const WhView v = wh_view(wq);
    const int tid = threadIdx.x;
#pragma unroll
    for (int r = 0; r < X_PIECES; r++) {
        const int p = tid + 256 * r, tl = p / (KC / 8), seg = p % (KC / 8);
        const bool live = t0 + tl < T;
        const u64 off = live ? (u64)(t0 + tl) * K + c * KC + seg * 8 : 0;
        cp_async<16>(tl_.xh + tl * KPH + seg * 8, xh + off, live);
    }
#pragma unroll
    for (int r = 0; r < W_PIECES; r++) {
        const int p = tid + 256 * r, seg = p % (KC / 8), row = rows.q[r];
        cp_async<16>(tl_.w + (p / (KC / 8)) * KPH + seg * 8,
                     v.q + (row >= 0 ? (u64)row * K + c * KC + seg * 8 : 0), row >= 0);
    }
    for (int p = tid; p < TM; p += 256) {
        const bool live = t0 + p < T;
        cp_async_run<CU * 4>((u8*)(tl_.xs + p * CU), (const u8*)(xs_g + (live ? (u64)(t0 + p) * UNITS + c * CU : 0)),
                             live);
    }
    if (tid < TN) {
        const int row = rows.s;
        const bool live = row >= 0;
        cp_async_run<CU * 4>((u8*)(tl_.wm + tid * CU), (const u8*)(v.mins + (live ? (u64)row * UNITS + c * CU : 0)),
                             live);
        cp_async<4>(tl_.wr + tid, v.ratio + (live ? (u64)row * SUPERS + c * KC / 256 : 0), live);
    }
}

// ldmatrix: four 8 x 8 f16 matrices, row addresses from lanes 8i..8i+7.
RFC_DEV void ldsm_x4(u32* r, const u16* p) {
    const u32 a = (u32)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
// A (16 rows from s, k 0..15) in mma_load_a's register order.
RFC_DEV void ldsm_a(MmaA& f, const u16* s) {
    const int lane = threadIdx.x % 32;
    ldsm_x4(f.r, s + (lane % 16) * KPH + (lane / 16) * 8);
}
// B (16 rows from s, k 0..15) in mma_load_b's register order.
RFC_DEV void ldsm_b(MmaB& f, const u16* s) {
    const int lane = threadIdx.x % 32;
    ldsm_x4(f.r, s + (lane % 8 + (lane / 16) * 8) * KPH + ((lane / 8) % 2) * 8);
}

// One chunk's products into acc (first, where a super-block starts, the
// accumulators move to its unit), then the chunk's mins.
RFC_DEV void multiply_chunk(const Tiles& tl_, float acc[MT][NT][MMA_ACC], bool super_start) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = warp / 4, wc = warp % 4;
    if (super_start) {
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) {
                int m, n;
                mma_acc_pos(lane, i, &m, &n);
                const float r = tl_.wr[wc * WTN + ni * 16 + n];
#pragma unroll
                for (int mi = 0; mi < MT; mi++) acc[mi][ni][i] *= r;
            }
    }
#pragma unroll
    for (int kk = 0; kk < KC / 16; kk++) {
        MmaB b[NT];
#pragma unroll
        for (int ni = 0; ni < NT; ni++) ldsm_b(b[ni], tl_.w + (wc * WTN + ni * 16) * KPH + kk * 16);
#pragma unroll
        for (int mi = 0; mi < MT; mi++) {
            const int tb = wm * WTM + mi * 16;
            MmaA a;
            ldsm_a(a, tl_.xh + tb * KPH + kk * 16);
#pragma unroll
            for (int ni = 0; ni < NT; ni++) mma_16x16x16(acc[mi][ni], a, b[ni]);
        }
    }
    // Mins: minus (the unit's activation sum) x (dmin·m / u).
#pragma unroll
    for (int u = 0; u < CU; u++) {
        float xs[MT][MMA_ROWS], wmv[NT][MMA_ACC];
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int r = 0; r < MMA_ROWS; r++) xs[mi][r] = tl_.xs[(wm * WTM + mi * 16 + mma_slot_row(lane, r)) * CU + u];
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) {
                int m, n;
                mma_acc_pos(lane, i, &m, &n);
                wmv[ni][i] = tl_.wm[(wc * WTN + ni * 16 + n) * CU + u];
            }
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int ni = 0; ni < NT; ni++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) acc[mi][ni][i] -= xs[mi][mma_row_slot(i)] * wmv[ni][i];
    }
}

// The accumulators from (last unit, 2^e) to real units.
RFC_DEV void unscale_acc(float acc[MT][NT][MMA_ACC], const u8* xq, const u8* wq, int t0, int i0, int T) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wm = warp / 4, wc = warp % 4;
    const float* unscale = (const float*)(xq + 2 * (u64)T * K) + (u64)T * UNITS;
    const WhView v = wh_view(wq);
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) {
                int m, n;
                mma_acc_pos(lane, i, &m, &n);
                const int t = t0 + wm * WTM + mi * 16 + m;
                const int row = tile_row(i0, wc * WTN + ni * 16 + n);
                const float d = t < T && row >= 0 ? unscale[t] * v.last[row] : 0.0f;
                acc[mi][ni][i] *= d;
            }
}

RFC_KERNEL __launch_bounds__(256) void matmul(MATMUL_PARAMS) {
    extern __shared__ __attribute__((aligned(16))) u8 pipe_smem[];
    if (dynamic_smem_bytes() < STAGES * PSTAGE) __trap();
    const int i0 = blockIdx.x * (TN / 2);
    const int t0 = blockIdx.y * TM;
    const u8* xq = (const u8*)x;
    (void)ldx, (void)norm, (void)w1, (void)w2, (void)w3;

    float acc[MT][NT][MMA_ACC];
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) acc[mi][ni][i] = 0.0f;

    const WRows wrows = w_rows(i0);
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < CHUNKS) issue_chunk(stage_tiles(pipe_smem, s), xq, w0, wrows, T, t0, s);
        cp_async_commit();
    }
    for (int c = 0; c < CHUNKS; c++) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of chunk c
        __syncthreads();              // everyone's; and chunk c - 1's stage is free
        const int next = c + STAGES - 1;
        if (next < CHUNKS) issue_chunk(stage_tiles(pipe_smem, next % STAGES), xq, w0, wrows, T, t0, next);
        cp_async_commit();
        multiply_chunk(stage_tiles(pipe_smem, c % STAGES), acc, c > 0 && (c * KC) % 256 == 0);
    }
    __syncthreads();  // the stages become the epilogue's
    unscale_acc(acc, xq, w0, t0, i0, T);
    Epi ep = MAKE_EPI;
    finish_tiles(acc, (float*)pipe_smem, t0, i0, T, (const float*)0, ep);
}
