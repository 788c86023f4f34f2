// Tiled quantized matrix product for prefill on the int8 matrix units
// (prelude.h), as two or three launches:
//
//   repack_weights (REPACKED only, below): the weights as int8 with their
//     scales into a step buffer, once per step.
//   quantize_rows: each token row of x (RMSNorm applied with the
//     prologue) in two int8 terms per element with an f32 scale d_c per
//     chunk c of KC elements (quant_i8.h, quantize8_two_term_at), into a
//     step buffer:
//       q [T][K] i8, r [T][K] i8, d [T][K/32] f32, s [T][K/32] f32
//     per unit u of 32 in chunk c: d holds d_{c-1} / d_c at the chunk's
//     first unit (1 for c = 0) and d_c at the others; s is the unit's sum
//     in units of d_c (what a weight min multiplies).
//   matmul: out = epilogue(x · Wᵀ) from that buffer (the `x` parameter)
//     and the weights as int8 with block scales: repacked (the `w0`
//     parameter), or decoded from their own bytes in the tiles
//     (quant_i8.h). Per scale group of SUB elements, two integer products
//     (q·w and r·w, exact), then one f32 multiply-add by the weight scale.
//     The accumulators count in units of the current chunk's activation
//     scale: each chunk first rescales them by d_{c-1} / d_c, and the
//     last d_c multiplies them once before the epilogue, so no group pays
//     for a product of two scales. The weights are exact; the activations
//     carry ~15 bits of their chunk's largest, as in the decode matvec
//     (matvec_q8.hip, per 32 there).
//
// A block computes TM tokens x TN weight rows, laid out as tiles.h says
// (8 warps in 2 (tokens) x 4 (rows), each warp's rows A first, then their
// B partners), and ends with its finish_tiles. The k loop stages KC
// elements at a time into shared memory: both activation terms, the
// weights as int8, and the scales (on NVIDIA with repacked weights through
// two cp.async stages of dynamic shared memory, PIPE below).
//
// Defines: K (a multiple of 64), TM (32, 64 or 128), TN (64, 128 or 192), SUB
// (16 when a segment has scales per 16 elements, else 32), HAS_MIN,
// REPACKED, PIPE_BYTES (the launch's dynamic shared memory on NVIDIA),
// SEGi_*, EPS_BITS with PROLOGUE_RMS, the epilogue's; NARROW with NTOK (16
// or 32) and NIB (16 or 32) for the narrow product below. Grids:
// quantize_rows (T), matmul (ceil(N_ITEMS / (TN/2)), ceil(T / TM); the
// narrow one ceil(N_ITEMS / NIB), ceil(T / NTOK)), all 256 threads.

#define UNITS (K / 32)
// The k step: 128 on NVIDIA where the tiles still fit static shared memory
// (64-row weight tiles: 27.6 KB at 64 tokens), which halves the barriers
// per element (+4 % qwen05b pp512 on the H100), and for the repacked tiles'
// dynamic stages on sm_80 / sm_87 / sm_90, whose blocks may take 163 KB or
// more (MatMulSpec::pipe_kc mirrors this rule); else 64 (on gfx11 the
// longer chunk spilled five more kernels).
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 800 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 900)
#define RFC_BIG_SMEM 1
#else
#define RFC_BIG_SMEM 0
#endif
#if RFC_CUDA && K % 128 == 0 && (TN == 64 || (REPACKED && RFC_BIG_SMEM))
#define KC 128
#else
#define KC 64
#endif
#define CHUNKS (K / KC)
#define KP8 (KC + 16)  // row pitch of the staged int8 tiles in bytes (banks)
#define CU (KC / 32)   // units per chunk
#define CS (KC / SUB)  // scale groups per chunk
#define TILE_BYTES ((2 * TM + TN) * KP8)
#define EPI_BYTES (8 * 16 * EPI_PITCH * 4)
#define STAGE_BYTES ((TILE_BYTES > EPI_BYTES ? TILE_BYTES : EPI_BYTES + 15) / 16 * 16)

// ---- quantize_rows -------------------------------------------------------------

// Where token t's parts of the step buffer start.
struct XqView {
    const i8 *q, *r;
    const float *d, *s;
};
RFC_DEV XqView xq_view(const u8* base, int t, int T) {
    const u64 n = (u64)T * K;
    XqView v;
    v.q = (const i8*)base + (u64)t * K;
    v.r = (const i8*)base + n + (u64)t * K;
    v.d = (const float*)(base + 2 * n) + (u64)t * UNITS;
    v.s = (const float*)(base + 2 * n) + (u64)T * UNITS + (u64)t * UNITS;
    return v;
}

// A chunk's scale never falls below 2^-60 of the row's largest (nor below
// 2^-100): the rescaled accumulators stay far from the f32 range, and what
// such a floor rounds away is below 2^-67 of the row.
#define SCALE_FLOOR_REL 8.67361738e-19f
#define SCALE_FLOOR_ABS 7.88860905e-31f
RFC_KERNEL __launch_bounds__(256) void quantize_rows(const float* __restrict__ x, int ldx,
                                                     const float* __restrict__ norm, u8* xq, int T) {
    __shared__ float red_max[8], dch[CHUNKS];
    const int t = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float v[QPASSES][8];
    load_token_row<256>(x + (u64)t * ldx, norm, v);
    // Each chunk's largest (KC / 8 aligned lanes hold a chunk; padding
    // lanes hold zeros), then the row's.
    float cmax[QPASSES], rmax = 0.0f;
#pragma unroll
    for (int p = 0; p < QPASSES; p++) {
        float a = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) a = fmaxf(a, fabsf(v[p][e]));
        cmax[p] = group_max(a, KC / 8);
        rmax = fmaxf(rmax, cmax[p]);
    }
    rmax = group_max(rmax, 32);
    if (lane == 0) red_max[warp] = rmax;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < 8; w++) rmax = fmaxf(rmax, red_max[w]);
    const float floor_ = fmaxf(rmax / 127.0f * SCALE_FLOOR_REL, SCALE_FLOOR_ABS);
#pragma unroll
    for (int p = 0; p < QPASSES; p++) {
        const int i = (p * 256 + threadIdx.x) * 8;
        cmax[p] = fmaxf(cmax[p] / 127.0f, floor_);
        if (i < K && i % KC == 0) dch[i / KC] = cmax[p];
    }
    __syncthreads();
    const u64 n = (u64)T * K;
#pragma unroll
    for (int p = 0; p < QPASSES; p++) {
        // Whole chunks are in or out of range (K is a multiple of KC), so
        // the lane groups never mix live and padding lanes.
        const int i = (p * 256 + threadIdx.x) * 8;
        u32 q[2], r[2];
        float s;
        quantize8_two_term_at(v[p], cmax[p], q, r, &s);
        s += rfc_shfl_xor(s, 1);
        s += rfc_shfl_xor(s, 2);
        if (i < K) {
            *(u32x2*)(xq + (u64)t * K + i) = u32x2{q[0], q[1]};
            *(u32x2*)(xq + n + (u64)t * K + i) = u32x2{r[0], r[1]};
            if ((threadIdx.x & 3) == 0) {
                const int c = i / KC, u = i / 32;
                float* dd = (float*)(xq + 2 * n);
                const bool first = u % CU == 0;
                dd[(u64)t * UNITS + u] = !first ? cmax[p] : c > 0 ? dch[c - 1] / cmax[p] : 1.0f;
                dd[(u64)T * UNITS + (u64)t * UNITS + u] = s;
            }
        }
    }
}

// The scale of token t's last chunk: the accumulators' unit after the k
// loop.
RFC_DEV float last_scale(const u8* xq, int t, int T) {
    const float* dd = (const float*)(xq + 2 * (u64)T * K);
    return dd[(u64)t * UNITS + (CHUNKS - 1) * CU + 1];
}

// ---- weights repacked -----------------------------------------------------------
// With REPACKED, repack_weights first writes every weight row as int8 with
// its scales into a step buffer (the `wq` of the matmul's launch), in the
// concatenated row order:
//   q [N_PHYS][K] i8, d [N_PHYS][K/SUB] f32, m [N_PHYS][K/32] f32 (HAS_MIN)
// so that matmul stages plain copies, loaded into registers one chunk
// ahead (their latency hidden behind the previous chunk's products),
// instead of decoding quant blocks between two barriers. It costs one pass
// over the weights per step, which pays for large token tiles only.
// Grid: ceil(N_PHYS * K / 8 / 256); 256 threads, 8 elements each.

#ifndef REPACKED
#define REPACKED 0
#endif

struct WqView {
    const i8* q;
    const float *d, *m;
};
RFC_DEV WqView wq_view(const u8* base) {
    const u64 n = (u64)N_PHYS * K;
    WqView v;
    v.q = (const i8*)base;
    v.d = (const float*)(base + n);
    v.m = v.d + (u64)N_PHYS * (K / SUB);
    return v;
}

// Part `part` (8 elements) of unit `unit` of a weight row as int8 at dst,
// with the unit's scales (per SUB elements, and the min) when part == 0.
template <int TY>
RFC_DEVT void unpack_part(const u8* row, int unit, int part, i8* dst, float* wd, float* wm) {
    u32 q[2];
    i8_part<TY>(row, unit, part, q);
    *(u32x2*)dst = u32x2{q[0], q[1]};
    if (part == 0) {
        float d[2], m;
        i8_scales<TY>(row, unit, d, &m);
        wd[0] = d[0];
        if (SUB == 16) wd[1] = d[1];
#if HAS_MIN
        *wm = m;
#else
        (void)m, (void)wm;
#endif
    }
}

// Row r's part, from whichever segment holds it.
RFC_DEV void unpack_row_part(const u8* w0, const u8* w1, const u8* w2, const u8* w3, int r, int unit,
                             int part, i8* dst, float* wd, float* wm) {
    const u8* row_ = weight_row(r, w0, w1, w2, w3);
    if (r < SEG0_END) unpack_part<SEG0_TYPE>(row_, unit, part, dst, wd, wm);
    else if (r < SEG1_END) unpack_part<SEG1_TYPE>(row_, unit, part, dst, wd, wm);
    else if (r < SEG2_END) unpack_part<SEG2_TYPE>(row_, unit, part, dst, wd, wm);
    else unpack_part<SEG3_TYPE>(row_, unit, part, dst, wd, wm);
}

#if REPACKED
RFC_KERNEL __launch_bounds__(256) void repack_weights(const u8* __restrict__ w0, const u8* __restrict__ w1,
                                                      const u8* __restrict__ w2, const u8* __restrict__ w3,
                                                      u8* wq) {
    const u64 i = (u64)blockIdx.x * 256 + threadIdx.x;
    if (i >= (u64)N_PHYS * (K / 8)) return;
    const int r = (int)(i / (K / 8)), up = (int)(i % (K / 8));
    const int unit = up / 4, part = up % 4;
    const u64 n = (u64)N_PHYS * K;
    float* d = (float*)(wq + n);
    float* m = d + (u64)N_PHYS * (K / SUB);
    unpack_row_part(w0, w1, w2, w3, r, unit, part, (i8*)wq + (u64)r * K + unit * 32 + part * 8,
                    d + (u64)r * (K / SUB) + unit * (32 / SUB), m + (u64)r * UNITS + unit);
}
#endif

// ---- the narrow product (NARROW) -------------------------------------------------
// Steps of a few tokens from many sequences (2-32 decodes) are bound by
// reading the weights once, not by the products. Here a block computes
// NTOK tokens x NIB items (their A rows, then their B partners: NROWS
// weight rows) from the int8 copy of the weights (REPACKED's layout, kept
// at load): its 8 warps take the k chunks in turn (warp w: chunks w, w +
// 8, ...), each loading its matrix-unit fragments straight from global
// memory (no staging of the weights, no block barrier in the k loop), and
// sum their partial tiles at the end, before the epilogue. Per chunk a warp
// stages only the chunk's scales (weights' and activations') in its own
// shared memory. The activations are quantize_rows' two int8 terms; their
// chunk scale d_c is read from the chunk's second unit (the first holds
// d_{c-1} / d_c, for the tiles' running rescale), and each chunk's
// partial sums, in units of d_c, are scaled to real units when the chunk
// ends, so any warp may take any chunk.
#ifndef NARROW
#define NARROW 0
#endif
#if NARROW
#define NMT (NTOK / 16)     // token tiles of 16
#define NROWS (2 * NIB)     // weight rows of a block
#define NNT (NROWS / 16)    // weight-row tiles of 16
#define NCS (KC / SUB)      // weight scale groups per chunk
#ifndef NW
#define NW 8                // warps per block: 8 or 16
#endif
#define NWARP_FLOATS (NROWS * NCS + (HAS_MIN ? NROWS * CU + NTOK * CU : 0) + NTOK)
#define NRED_PITCH (NROWS + 1)
#define NRED_FLOATS (8 * 16 * NRED_PITCH)  // partial tiles of 8 warps at a time
#define NSMEM_FLOATS (NW * NWARP_FLOATS > NRED_FLOATS ? NW * NWARP_FLOATS : NRED_FLOATS)
static_assert(NSMEM_FLOATS * 4 + NROWS * 4 <= 48 * 1024, "the narrow block fits static shared memory");
static_assert(CU >= 2, "a chunk's second unit holds its scale");
static_assert(NW == 8 || NW == 16, "8 or 16 warps");

#if RFC_HIP
// A wave's lanes run together; this keeps the compiler from moving shared
// memory accesses across the point.
#define NARROW_SYNCWARP() __builtin_amdgcn_wave_barrier()
// Operand rows a lane reads of a 16-row fragment (prelude.h's layout):
// all KI bytes of row lane % 16.
#define FRAG_ROWS 1
RFC_DEV int frag_row(int lane, int j) { return (void)j, lane % 16; }
template <int KI> RFC_DEVT void frag_load(MmaI8<KI>& f, const i8* const* rows, int k) {
#pragma unroll
    for (int h = 0; h < KI / 16; h++) f.v[h] = *(const rfc_i32x4*)(rows[0] + k + 16 * h);
}
#define frag_load_a frag_load
#define frag_load_b frag_load
#else
#define NARROW_SYNCWARP() __syncwarp()
// Rows g and g + 8 (lane 4g + q), 4 bytes at 4q (+16) of each 16 k.
#define FRAG_ROWS 2
RFC_DEV int frag_row(int lane, int j) { return lane / 4 + 8 * j; }
template <int KI> RFC_DEVT void frag_load_a(MmaI8A<KI>& f, const i8* const* rows, int k) {
    const int q = threadIdx.x % 4;
#pragma unroll
    for (int h = 0; h < KI / 16; h++) {
        f.r[2 * h] = *(const u32*)(rows[0] + k + 16 * h + 4 * q);
        f.r[2 * h + 1] = *(const u32*)(rows[1] + k + 16 * h + 4 * q);
    }
}
template <int KI> RFC_DEVT void frag_load_b(MmaI8B<KI>& f, const i8* const* rows, int k) {
    const int q = threadIdx.x % 4;
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int h = 0; h < KI / 16; h++) f.r[n * (KI / 16) + h] = *(const u32*)(rows[n] + k + 16 * h + 4 * q);
}
#endif

// The weight row at block row j: item i0 + j % NIB's A row, or its B
// partner; past the last item, the last item's (computed, never stored).
RFC_DEV int narrow_row(int i0, int j) {
    const int item = min(i0 + j % NIB, N_ITEMS - 1);
    int ra, rb;
    pair_rows(item, &ra, &rb);
    return j < NIB ? ra : rb;
}

RFC_KERNEL __launch_bounds__(NW * 32) void matmul(MATMUL_PARAMS) {
    __shared__ int rowtab[NROWS];
    __shared__ __attribute__((aligned(16))) float smem[NSMEM_FLOATS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int i0 = blockIdx.x * NIB, t0 = blockIdx.y * NTOK;
    (void)ldx, (void)norm, (void)w1, (void)w2, (void)w3;
    for (int j = threadIdx.x; j < NROWS; j += NW * 32) rowtab[j] = narrow_row(i0, j);
    __syncthreads();

    const WqView wv = wq_view(w0);
    const u8* xq = (const u8*)x;
    const u64 nq = (u64)T * K;
    const float* xd_g = (const float*)(xq + 2 * nq);
    const float* xs_g = xd_g + (u64)T * UNITS;
    // This lane's fragment rows: tokens (past the last, the last token's:
    // computed, never stored) and weight rows.
    const i8* aq[NMT][FRAG_ROWS];
    const i8* ar[NMT][FRAG_ROWS];
    const i8* bw[NNT][FRAG_ROWS];
#pragma unroll
    for (int mi = 0; mi < NMT; mi++)
#pragma unroll
        for (int j = 0; j < FRAG_ROWS; j++) {
            const int t = min(t0 + mi * 16 + frag_row(lane, j), T - 1);
            aq[mi][j] = (const i8*)xq + (u64)t * K;
            ar[mi][j] = (const i8*)xq + nq + (u64)t * K;
        }
#pragma unroll
    for (int ni = 0; ni < NNT; ni++)
#pragma unroll
        for (int j = 0; j < FRAG_ROWS; j++) bw[ni][j] = wv.q + (u64)rowtab[ni * 16 + frag_row(lane, j)] * K;

    // This warp's chunk scales: weight scales [NROWS][NCS], mins
    // [NROWS][CU], activation sums [NTOK][CU], chunk scales [NTOK].
    float* wd_s = smem + warp * NWARP_FLOATS;
    float* wm_s = wd_s + NROWS * NCS;
    float* xs_s = wm_s + (HAS_MIN ? NROWS * CU : 0);
    float* xd_s = xs_s + (HAS_MIN ? NTOK * CU : 0);

    float acc[NMT][NNT][MMA_ACC];
#pragma unroll
    for (int mi = 0; mi < NMT; mi++)
#pragma unroll
        for (int ni = 0; ni < NNT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) acc[mi][ni][i] = 0.0f;

#define NSW ((NROWS * NCS + 31) / 32)
#define NSM (HAS_MIN ? (NROWS * CU + 31) / 32 : 0)
#define NSX (HAS_MIN ? (NTOK * CU + 31) / 32 : 0)
    for (int c = warp; c < CHUNKS; c += NW) {
        // Every global load of the chunk first (fragments and scales): their
        // latencies overlap.
        MmaI8B<SUB> b[NCS][NNT];
        MmaI8A<SUB> fq[NCS][NMT], fr[NCS][NMT];
#pragma unroll
        for (int g = 0; g < NCS; g++) {
            const int k = c * KC + g * SUB;
#pragma unroll
            for (int ni = 0; ni < NNT; ni++) frag_load_b(b[g][ni], bw[ni], k);
#pragma unroll
            for (int mi = 0; mi < NMT; mi++) {
                frag_load_a(fq[g][mi], aq[mi], k);
                frag_load_a(fr[g][mi], ar[mi], k);
            }
        }
        float sw[NSW], sm[NSM + 1], sx[NSX + 1], sd = 0.0f;
#pragma unroll
        for (int r = 0; r < NSW; r++) {
            const int p = lane + 32 * r;
            sw[r] = p < NROWS * NCS ? wv.d[(u64)rowtab[p / NCS] * (K / SUB) + c * NCS + p % NCS] * (1.0f / 254.0f) : 0.0f;
        }
#if HAS_MIN
#pragma unroll
        for (int r = 0; r < NSM; r++) {
            const int p = lane + 32 * r;
            sm[r] = p < NROWS * CU ? wv.m[(u64)rowtab[p / CU] * UNITS + c * CU + p % CU] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < NSX; r++) {
            const int p = lane + 32 * r;
            sx[r] = p < NTOK * CU ? xs_g[(u64)min(t0 + p / CU, T - 1) * UNITS + c * CU + p % CU] : 0.0f;
        }
#endif
        if (lane < NTOK) sd = xd_g[(u64)min(t0 + lane, T - 1) * UNITS + c * CU + 1];
        NARROW_SYNCWARP();  // the previous chunk's scales are read
#pragma unroll
        for (int r = 0; r < NSW; r++)
            if (lane + 32 * r < NROWS * NCS) wd_s[lane + 32 * r] = sw[r];
#if HAS_MIN
#pragma unroll
        for (int r = 0; r < NSM; r++)
            if (lane + 32 * r < NROWS * CU) wm_s[lane + 32 * r] = sm[r];
#pragma unroll
        for (int r = 0; r < NSX; r++)
            if (lane + 32 * r < NTOK * CU) xs_s[lane + 32 * r] = sx[r];
#endif
        if (lane < NTOK) xd_s[lane] = sd;
        NARROW_SYNCWARP();

        float part[NMT][NNT][MMA_ACC];
#pragma unroll
        for (int mi = 0; mi < NMT; mi++)
#pragma unroll
            for (int ni = 0; ni < NNT; ni++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) part[mi][ni][i] = 0.0f;
#pragma unroll
        for (int g = 0; g < NCS; g++) {
#pragma unroll
            for (int mi = 0; mi < NMT; mi++) {
#pragma unroll
                for (int ni = 0; ni < NNT; ni++) {
                    int iq[MMA_ACC], ir[MMA_ACC];
#pragma unroll
                    for (int i = 0; i < MMA_ACC; i++) iq[i] = ir[i] = 0;
                    mma_i8(iq, fq[g][mi], b[g][ni]);
                    mma_i8(ir, fr[g][mi], b[g][ni]);
#pragma unroll
                    for (int i = 0; i < MMA_ACC; i++) {
                        int m, n;
                        mma_acc_pos(lane, i, &m, &n);
                        part[mi][ni][i] = fmaf((float)(iq[i] * 254 + ir[i]), wd_s[(ni * 16 + n) * NCS + g], part[mi][ni][i]);
                    }
                }
            }
        }
#pragma unroll
        for (int mi = 0; mi < NMT; mi++)
#pragma unroll
            for (int ni = 0; ni < NNT; ni++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    int m, n;
                    mma_acc_pos(lane, i, &m, &n);
                    float v = part[mi][ni][i];
#if HAS_MIN
#pragma unroll
                    for (int u = 0; u < CU; u++) v -= xs_s[(mi * 16 + m) * CU + u] * wm_s[(ni * 16 + n) * CU + u];
#endif
                    acc[mi][ni][i] = fmaf(v, xd_s[mi * 16 + m], acc[mi][ni][i]);
                }
    }

    // The warps' partial tiles, summed in warp order (the same sum for any
    // step), one token tile at a time: warps 8-15 park theirs, warps 0-7
    // add theirs to them; then each (token, item) pair's epilogue.
    Epi e = MAKE_EPI;
#pragma unroll
    for (int mi = 0; mi < NMT; mi++) {
#pragma unroll
        for (int half = NW / 8 - 1; half >= 0; half--) {
            __syncthreads();  // the scales (or the last sums) are read
            if (warp / 8 == half) {
                float* red = smem + (warp % 8) * 16 * NRED_PITCH;
#pragma unroll
                for (int ni = 0; ni < NNT; ni++)
#pragma unroll
                    for (int i = 0; i < MMA_ACC; i++) {
                        int m, n;
                        mma_acc_pos(lane, i, &m, &n);
                        float* slot = &red[m * NRED_PITCH + ni * 16 + n];
                        *slot = half == NW / 8 - 1 ? acc[mi][ni][i] : acc[mi][ni][i] + *slot;
                    }
            }
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < 16 * NIB; idx += NW * 32) {
            const int m = idx / NIB, j = idx % NIB;
            const int t = t0 + mi * 16 + m, item = i0 + j;
            if (t < T && item < N_ITEMS) {
                float a = 0.0f, b = 0.0f;
#pragma unroll
                for (int w = 0; w < 8; w++) {
                    a += smem[(w * 16 + m) * NRED_PITCH + j];
                    b += smem[(w * 16 + m) * NRED_PITCH + NIB + j];
                }
                epilogue_pair(e, t, item, a, b);
            }
        }
    }
}
#else

// ---- matmul --------------------------------------------------------------------

// What one thread copies per chunk, in 16-byte pieces and floats.
#define X_PIECES ((TM * (KC / 16) + 255) / 256)  // per term
#define W_PIECES ((TN * (KC / 16) + 255) / 256)
#define XS_ITEMS ((TM * CU + 255) / 256)
#define WD_ITEMS ((TN * CS + 255) / 256)
#define WM_ITEMS ((TN * CU + 255) / 256)

// The shared-memory tiles of one chunk.
struct Tiles {
    i8 *xq, *xr, *w;
    float *xd, *xsum, *wd, *wm;
};

// One chunk of activations (both terms, scales and sums) into the tiles.
struct XChunk {
    u32x4 q[X_PIECES], r[X_PIECES];
    float d[XS_ITEMS], s[XS_ITEMS];
};
RFC_DEV void x_load(XChunk& xc, const u8* xq, int T, int t0, int c) {
    const u64 nq = (u64)T * K;
    const float* xd_g = (const float*)(xq + 2 * nq);
    const float* xs_g = xd_g + (u64)T * UNITS;
    const int tid = threadIdx.x;
#pragma unroll
    for (int r = 0; r < X_PIECES; r++) {
        const int p = tid + 256 * r, tl = p / (KC / 16), seg = p % (KC / 16);
        xc.q[r] = xc.r[r] = u32x4{0u, 0u, 0u, 0u};
        if (p < TM * (KC / 16) && t0 + tl < T) {
            const u64 off = (u64)(t0 + tl) * K + c * KC + seg * 16;
            xc.q[r] = *(const u32x4*)(xq + off);
            xc.r[r] = *(const u32x4*)(xq + nq + off);
        }
    }
#pragma unroll
    for (int r = 0; r < XS_ITEMS; r++) {
        const int p = tid + 256 * r, tl = p / CU, u = p % CU;
        const bool live = p < TM * CU && t0 + tl < T;
        xc.d[r] = live ? xd_g[(u64)(t0 + tl) * UNITS + c * CU + u] : 0.0f;
        xc.s[r] = HAS_MIN && live ? xs_g[(u64)(t0 + tl) * UNITS + c * CU + u] : 0.0f;
    }
}
RFC_DEV void x_store(const XChunk& xc, const Tiles& tl_) {
    const int tid = threadIdx.x;
#pragma unroll
    for (int r = 0; r < X_PIECES; r++) {
        const int p = tid + 256 * r, tl = p / (KC / 16), seg = p % (KC / 16);
        if (p < TM * (KC / 16)) {
            *(u32x4*)(tl_.xq + tl * KP8 + seg * 16) = xc.q[r];
            *(u32x4*)(tl_.xr + tl * KP8 + seg * 16) = xc.r[r];
        }
    }
#pragma unroll
    for (int r = 0; r < XS_ITEMS; r++) {
        const int p = tid + 256 * r;
        if (p < TM * CU) {
            tl_.xd[p] = xc.d[r];
            if (HAS_MIN) tl_.xsum[p] = xc.s[r];
        }
    }
}

#if REPACKED
// One chunk of repacked weights.
struct WChunk {
    u32x4 q[W_PIECES];
    float d[WD_ITEMS], m[WM_ITEMS];
};
// The weight rows behind this thread's copies (-1: none), the same for
// every chunk: found once per block, not once per chunk.
struct WRows {
    int q[W_PIECES], d[WD_ITEMS], m[WM_ITEMS];
    int s;  // tile row threadIdx.x's (< TN) weight row
};
RFC_DEV WRows w_rows(int i0) {
    const int tid = threadIdx.x;
    WRows w;
#pragma unroll
    for (int r = 0; r < W_PIECES; r++) {
        const int p = tid + 256 * r;
        w.q[r] = p < TN * (KC / 16) ? tile_row(i0, p / (KC / 16)) : -1;
    }
#pragma unroll
    for (int r = 0; r < WD_ITEMS; r++) {
        const int p = tid + 256 * r;
        w.d[r] = p < TN * CS ? tile_row(i0, p / CS) : -1;
    }
#pragma unroll
    for (int r = 0; r < WM_ITEMS; r++) {
        const int p = tid + 256 * r;
        w.m[r] = HAS_MIN && p < TN * CU ? tile_row(i0, p / CU) : -1;
    }
    w.s = tid < TN ? tile_row(i0, tid) : -1;
    return w;
}
RFC_DEV void w_load(WChunk& wc_, const u8* wq, const WRows& rows, int c) {
    const WqView v = wq_view(wq);
    const int tid = threadIdx.x;
#pragma unroll
    for (int r = 0; r < W_PIECES; r++) {
        const int seg = (tid + 256 * r) % (KC / 16), row = rows.q[r];
        wc_.q[r] = row >= 0 ? *(const u32x4*)(v.q + (u64)row * K + c * KC + seg * 16) : u32x4{0u, 0u, 0u, 0u};
    }
#pragma unroll
    for (int r = 0; r < WD_ITEMS; r++) {
        const int row = rows.d[r];
        wc_.d[r] = row >= 0 ? v.d[(u64)row * (K / SUB) + c * CS + (tid + 256 * r) % CS] : 0.0f;
    }
#pragma unroll
    for (int r = 0; r < WM_ITEMS; r++) {
        const int row = rows.m[r];
        wc_.m[r] = row >= 0 ? v.m[(u64)row * UNITS + c * CU + (tid + 256 * r) % CU] : 0.0f;
    }
}
RFC_DEV void w_store(const WChunk& wc_, const Tiles& tl_) {
    const int tid = threadIdx.x;
#pragma unroll
    for (int r = 0; r < W_PIECES; r++) {
        const int p = tid + 256 * r;
        if (p < TN * (KC / 16)) *(u32x4*)(tl_.w + (p / (KC / 16)) * KP8 + (p % (KC / 16)) * 16) = wc_.q[r];
    }
#pragma unroll
    for (int r = 0; r < WD_ITEMS; r++) {
        const int p = tid + 256 * r;
        if (p < TN * CS) tl_.wd[p] = wc_.d[r];
    }
#pragma unroll
    for (int r = 0; r < WM_ITEMS; r++) {
        const int p = tid + 256 * r;
        if (HAS_MIN && p < TN * CU) tl_.wm[p] = wc_.m[r];
    }
}
#endif

#ifndef PIPE_BYTES
#define PIPE_BYTES 0
#endif
#if RFC_CUDA && REPACKED
// On NVIDIA the repacked tiles stream through two stages of dynamic shared
// memory with cp.async: the copies of chunk c + 1 fly while chunk c
// multiplies, no register holds them, and one barrier a chunk suffices.
// PIPE_BYTES (from MatMulSpec: the most any target's stages take) bounds
// them at compile time; the launch gives the device's size, which the
// kernel checks before it copies anything (a mismatch traps instead of
// writing past the launch's shared memory).
#define PIPE 1
#define SCALE_BYTES (4 * (TM * CU + TN * CS + (HAS_MIN ? TM * CU + TN * CU : 0)))
#define PSTAGE (((2 * TM + TN) * KP8 + SCALE_BYTES + 15) / 16 * 16)
static_assert(2 * PSTAGE <= PIPE_BYTES, "both stages fit the launch's shared memory");
static_assert(EPI_BYTES <= PSTAGE, "the epilogue fits a stage");

// The tiles of stage s in the dynamic shared memory.
RFC_DEV Tiles stage_tiles(u8* smem, int s) {
    u8* b = smem + s * PSTAGE;
    Tiles t;
    t.xq = (i8*)b;
    t.xr = (i8*)b + TM * KP8;
    t.w = (i8*)b + 2 * TM * KP8;
    float* f = (float*)(b + (2 * TM + TN) * KP8);
    t.xd = f;
    t.wd = f + TM * CU;
    t.xsum = HAS_MIN ? f + TM * CU + TN * CS : (float*)0;
    t.wm = HAS_MIN ? f + 2 * TM * CU + TN * CS : (float*)0;
    return t;
}

// Queues the copies of chunk c into the tiles `tl_` (the same pieces as
// x_load/w_load, scales as runs per token and per row).
RFC_DEV void issue_chunk(const Tiles& tl_, const u8* xq, const u8* wq, const WRows& rows, int T, int t0, int c) {
    const u64 nq = (u64)T * K;
    const WqView v = wq_view(wq);
    const float* xd_g = (const float*)(xq + 2 * nq);
    const float* xs_g = xd_g + (u64)T * UNITS;
    const int tid = threadIdx.x;
#pragma unroll
    for (int r = 0; r < X_PIECES; r++) {
        const int p = tid + 256 * r, tl = p / (KC / 16), seg = p % (KC / 16);
        if (p < TM * (KC / 16)) {
            const bool live = t0 + tl < T;
            const u64 off = live ? (u64)(t0 + tl) * K + c * KC + seg * 16 : 0;
            cp_async<16>(tl_.xq + tl * KP8 + seg * 16, xq + off, live);
            cp_async<16>(tl_.xr + tl * KP8 + seg * 16, xq + nq + off, live);
        }
    }
#pragma unroll
    for (int r = 0; r < W_PIECES; r++) {
        const int p = tid + 256 * r, seg = p % (KC / 16), row = rows.q[r];
        if (p < TN * (KC / 16))
            cp_async<16>(tl_.w + (p / (KC / 16)) * KP8 + seg * 16,
                         v.q + (row >= 0 ? (u64)row * K + c * KC + seg * 16 : 0), row >= 0);
    }
    // Scales: a run of CU (tokens) or CS (rows) floats each.
    for (int p = tid; p < TM; p += 256) {
        const bool live = t0 + p < T;
        const u64 o = live ? (u64)(t0 + p) * UNITS + c * CU : 0;
        cp_async_run<CU * 4>((u8*)(tl_.xd + p * CU), (const u8*)(xd_g + o), live);
        if (HAS_MIN) cp_async_run<CU * 4>((u8*)(tl_.xsum + p * CU), (const u8*)(xs_g + o), live);
    }
    if (tid < TN) {
        const int p = tid, row = rows.s;
        const bool live = row >= 0;
        cp_async_run<CS * 4>((u8*)(tl_.wd + p * CS), (const u8*)(v.d + (live ? (u64)row * (K / SUB) + c * CS : 0)), live);
        if (HAS_MIN)
            cp_async_run<CU * 4>((u8*)(tl_.wm + p * CU), (const u8*)(v.m + (live ? (u64)row * UNITS + c * CU : 0)), live);
    }
}
#else
#define PIPE 0
#endif

// Both terms' integer products of one chunk, scaled into acc (after the
// accumulators move to this chunk's activation scale).
RFC_DEV void multiply_chunk(const Tiles& tl_, float acc[MT][NT][MMA_ACC]) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = warp / 4, wc = warp % 4;
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) {
                int m, n;
                mma_acc_pos(lane, i, &m, &n);
                acc[mi][ni][i] *= tl_.xd[(wm * WTM + mi * 16 + m) * CU];
            }
#pragma unroll
    for (int g = 0; g < CS; g++) {
        MmaI8B<SUB> b[NT];
#pragma unroll
        for (int ni = 0; ni < NT; ni++) mma_i8_load_b(b[ni], tl_.w + (wc * WTN + ni * 16) * KP8 + g * SUB, KP8);
        // This lane's weight scales, by accumulator element (the r term's
        // 1/254 folded in).
        float wdv[NT][MMA_ACC];
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) {
                int m, n;
                mma_acc_pos(lane, i, &m, &n);
                wdv[ni][i] = tl_.wd[(wc * WTN + ni * 16 + n) * CS + g] * (1.0f / 254.0f);
            }
#pragma unroll
        for (int mi = 0; mi < MT; mi++) {
            const int tb = wm * WTM + mi * 16;
            MmaI8A<SUB> aq, ar;
            mma_i8_load_a(aq, tl_.xq + tb * KP8 + g * SUB, KP8);
            mma_i8_load_a(ar, tl_.xr + tb * KP8 + g * SUB, KP8);
            // Every product of the row first, then their scaling: the
            // scaling of one does not wait on the next's latency.
            int iq[NT][MMA_ACC], ir[NT][MMA_ACC];
#pragma unroll
            for (int ni = 0; ni < NT; ni++) {
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) iq[ni][i] = ir[ni][i] = 0;
                mma_i8(iq[ni], aq, b[ni]);
                mma_i8(ir[ni], ar, b[ni]);
            }
#pragma unroll
            for (int ni = 0; ni < NT; ni++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++)
                    acc[mi][ni][i] = fmaf((float)(iq[ni][i] * 254 + ir[ni][i]), wdv[ni][i], acc[mi][ni][i]);
        }
    }
#if HAS_MIN
    // Mins: minus (the unit's activation sum) x m.
#pragma unroll
    for (int u = 0; u < CU; u++)
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int ni = 0; ni < NT; ni++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    int m, n;
                    mma_acc_pos(lane, i, &m, &n);
                    acc[mi][ni][i] -= tl_.xsum[(wm * WTM + mi * 16 + m) * CU + u] * tl_.wm[(wc * WTN + ni * 16 + n) * CU + u];
                }
#endif
}

// The accumulators from the last chunk's activation scale to real units.
RFC_DEV void unscale_acc(float acc[MT][NT][MMA_ACC], const u8* xq, int t0, int T) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wm = warp / 4;
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int i = 0; i < MMA_ACC; i++) {
            int m, n;
            mma_acc_pos(lane, i, &m, &n);
            const int t = t0 + wm * WTM + mi * 16 + m;
            const float d = t < T ? last_scale(xq, t, T) : 0.0f;
#pragma unroll
            for (int ni = 0; ni < NT; ni++) acc[mi][ni][i] *= d;
        }
}

// Large tiles (64 accumulators a thread) run one block per SM with the
// whole register file: two blocks of 128 registers spill and measured 22 %
// slower on llama8b, and 128 x 64 tiles at two blocks 14 % slower. Small
// tiles (<= 32 accumulators) fit two blocks per SM: +2-3 % on qwen05b
// (H100). gfx1100 through clang 15 caps both at 128 VGPRs and spills the
// large ones (amdgpu_waves_per_eu did not lift it; untuned without AMD
// hardware).
#if RFC_CUDA && MT * NT <= 4
#define MATMUL_BOUNDS __launch_bounds__(256, 2)
#else
#define MATMUL_BOUNDS __launch_bounds__(256)
#endif
RFC_KERNEL MATMUL_BOUNDS void matmul(MATMUL_PARAMS) {
#if PIPE
    u32x4* const stage_v = (u32x4*)0;
    float *const xd_s = (float*)0, *const wd_s = (float*)0, *const xsum_s = (float*)0, *const wm_s = (float*)0;
#else
    // Both activation terms, then the weights; later the epilogue's.
    __shared__ u32x4 stage_v[STAGE_BYTES / 16];
    __shared__ float xd_s[TM * CU], wd_s[TN * CS];
#if HAS_MIN
    __shared__ float xsum_s[TM * CU], wm_s[TN * CU];
#else
    float* const xsum_s = (float*)0;
    float* const wm_s = (float*)0;
#endif
#endif
    const Tiles tiles = {(i8*)stage_v, (i8*)stage_v + TM * KP8, (i8*)stage_v + 2 * TM * KP8,
                         xd_s, xsum_s, wd_s, wm_s};
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wc = warp % 4;
    const int i0 = blockIdx.x * (TN / 2);
    const int t0 = blockIdx.y * TM;
    const u8* xq = (const u8*)x;
    (void)ldx, (void)norm;

    float acc[MT][NT][MMA_ACC];
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) acc[mi][ni][i] = 0.0f;

#if PIPE
    extern __shared__ __attribute__((aligned(16))) u8 pipe_smem[];
    (void)stage_v, (void)tiles;
    if (dynamic_smem_bytes() < 2 * PSTAGE) __trap();
    const WRows wrows = w_rows(i0);
    issue_chunk(stage_tiles(pipe_smem, 0), xq, w0, wrows, T, t0, 0);
    cp_async_commit();
    for (int c = 0; c < CHUNKS; c++) {
        cp_async_wait_all();  // this thread's copies of chunk c
        __syncthreads();      // everyone's; and chunk c - 1 (the other stage) is done
        if (c + 1 < CHUNKS) issue_chunk(stage_tiles(pipe_smem, (c + 1) & 1), xq, w0, wrows, T, t0, c + 1);
        cp_async_commit();
        multiply_chunk(stage_tiles(pipe_smem, c & 1), acc);
    }
    __syncthreads();  // the stages become the epilogue's
    unscale_acc(acc, xq, t0, T);
    Epi ep = MAKE_EPI;
    finish_tiles(acc, (float*)pipe_smem, t0, i0, T, (const float*)0, ep);
    return;
#elif REPACKED
    XChunk xc;
    WChunk wk;
    x_load(xc, xq, T, t0, 0);
    const WRows wrows = w_rows(i0);
    w_load(wk, w0, wrows, 0);
    for (int c = 0; c < CHUNKS; c++) {
        if (c > 0) __syncthreads();  // the previous chunk's reads are done
        x_store(xc, tiles);
        w_store(wk, tiles);
        __syncthreads();
        if (c + 1 < CHUNKS) {  // in flight while this chunk multiplies
            x_load(xc, xq, T, t0, c + 1);
            w_load(wk, w0, wrows, c + 1);
        }
        multiply_chunk(tiles, acc);
    }
#else
    // Weight rows this thread decodes: tile row tid / (CU * 4) (+ 256 /
    // (CU * 4) per round), 8 elements of one unit of the chunk.
#define W_ROUNDS (TN * CU * 4 / 256)
    static_assert(W_ROUNDS * 256 == TN * CU * 4, "whole rounds of weight parts");
    int wrow[W_ROUNDS];
#pragma unroll
    for (int r = 0; r < W_ROUNDS; r++) wrow[r] = tile_row(i0, (tid + 256 * r) / (CU * 4));
    for (int c = 0; c < CHUNKS; c++) {
        if (c > 0) __syncthreads();  // the previous chunk's reads are done
        XChunk xc;
        x_load(xc, xq, T, t0, c);
        x_store(xc, tiles);
#pragma unroll
        for (int r = 0; r < W_ROUNDS; r++) {
            const int p = tid + 256 * r, n = p / (CU * 4), up = p % (CU * 4);
            const int u = up / 4, part = up % 4;
            i8* dst = tiles.w + n * KP8 + u * 32 + part * 8;
            float* wd = &wd_s[n * CS + u * (32 / SUB)];
            float* wmp = HAS_MIN ? &wm_s[n * CU + u] : (float*)0;
            if (wrow[r] >= 0) {
                unpack_row_part(w0, w1, w2, w3, wrow[r], c * CU + u, part, dst, wd, wmp);
            } else {
                *(u32x2*)dst = u32x2{0u, 0u};
                if (part == 0) {
                    wd[0] = 0.0f;
                    if (SUB == 16) wd[1] = 0.0f;
                    if (HAS_MIN) *wmp = 0.0f;
                }
            }
        }
        __syncthreads();
        multiply_chunk(tiles, acc);
    }
#endif
    __syncthreads();  // the staging buffers become the epilogue's
    unscale_acc(acc, xq, t0, T);
    Epi e = MAKE_EPI;
    finish_tiles(acc, (float*)stage_v, t0, i0, T, (const float*)0, e);
}
#endif  // NARROW
