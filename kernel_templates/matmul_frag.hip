// The fragment product: steps of 2-64 tokens (decodes from many sequences)
// on the int8 matrix units (NVIDIA mma.sync), each weight read once per
// pass of NTOK tokens from a copy kept in the order the matrix units take
// it. The narrow product (matmul_q8.hip, NARROW) reads the row-major int8
// copy with 4-byte fragment loads: every warp load touches eight rows, so
// the L1 moves 16 bytes per wavefront and the weights stream at 0.7-1.5
// TB/s. Here every load of a warp is 512 contiguous bytes (one 16-byte
// load per lane), and 4-bit weights (Q4_K, Q4_1) stay 4-bit.
//
// Three launches, named as matmul_q8.hip's so that one launch path serves
// both:
//   repack_weights: the weights in fragment order (at load, or per step
//     where no copy is kept). Rows go in tiles of 16: tile p holds items
//     8p..8p+7, their A rows (tile rows 0-7), then their B partners (8-15),
//     so that a lane's accumulators hold both rows of one item. Per tile
//     and group of 32 k (FB = 8), 512 bytes: lane l = 4g + q holds
//       (row g, k 4q..4q+3), (row g+8, k 4q..), (row g, k 16+4q..), (row g+8, k 16+4q..)
//     its A fragment of mma.m16n8k32 (or of two m16n8k16 with SUB = 16).
//     FB = 4: per tile and pair of groups, 512 bytes, word j of a lane
//     holding register j of the first group in its low nibbles and of the
//     second in its high ones. Then, per tile and chunk of 128 k, the
//     scales [16 rows][128 / SUB] f32 and (HAS_MIN) the mins [16 rows][4].
//     Items past the last are zeros.
//   quantize_rows: each token row (RMSNorm with the prologue) as two int8
//     terms per element against an f32 scale per 32 (quant_i8.h,
//     quantize8_two_term), in the order of the B fragments: per octet of
//     tokens and group, 512 bytes, lane l = 4g + q (token g) holding the
//     first term's k 4q..4q+3 and 16+4q.., then the second term's. Then
//     per octet and chunk [8 tokens][4 groups] f32 scales (divided by 254:
//     x ~ d/254 * (254 q + r)), and the same of the groups' sums (real
//     units: what a min multiplies). Tokens past T in the last octet are
//     never written: their columns are computed and dropped.
//   matmul: a block takes TPB tiles x NTOK tokens; its 8 warps take the k
//     chunks in turn, each loading every fragment and scale of its chunk
//     first, then multiplying; the warps' partial sums meet in shared
//     memory (in warp order: any step sums alike) before the epilogue.
//
// Defines: K (a multiple of 128), NTOK (8, 16 or 32), TPB (tiles per
// block: 1, 2 or 4), PIPE (1: the next chunk's loads in flight during this
// one's products), SUB (16 or 32), HAS_MIN, FB (4 or 8; 4 needs SUB = 32
// and unsigned 4-bit values), SEGi_*, EPS_BITS with PROLOGUE_RMS, the
// epilogue's. Grids: repack_weights ceil(TILES * 16 * K / 8 / 256),
// quantize_rows (T), matmul (ceil(TILES / TPB), ceil(T / NTOK)); all 256
// threads.

#if !RFC_CUDA
#error "matmul_frag.hip is NVIDIA-only (mma.sync fragment order); AMD keeps the narrow product"
#endif

#define GROUPS (K / 32)
#define CHUNKS (K / 128)
#define TILES ((N_ITEMS + 7) / 8)
#define NO (NTOK / 8)                 // token octets per block
#define NS (128 / SUB)                // weight scales per row and chunk
#define WPC (FB == 8 ? 4 : 2)         // 16-byte weight loads per lane, tile and chunk
static_assert(K % 128 == 0, "k in chunks of 128");
static_assert(FB == 8 || SUB == 32, "4-bit weights have a scale per 32");

// Byte offsets of the weight copy's parts.
#define WQ_VALUES ((u64)TILES * GROUPS * 512 / (8 / FB))
#define WQ_SCALES ((u64)TILES * CHUNKS * 16 * NS * 4)
// Of the activations': values, then scales, then sums.
RFC_DEV u64 xq_values(int T) { return (u64)((T + 7) / 8) * GROUPS * 512; }
RFC_DEV u64 xq_scales(int T) { return (u64)((T + 7) / 8) * CHUNKS * 32 * 4; }

// ---- repack_weights --------------------------------------------------------------

// Elements part*8..part*8+7 of unit `unit` of a row of type TY as int8, and
// (part 0) the unit's scales.
template <int TY> RFC_DEVT void frag_part(const u8* row, int unit, int part, u32* q, float* d, float* m) {
    i8_part<TY>(row, unit, part, q);
    if (part == 0) i8_scales<TY>(row, unit, d, m);
}

RFC_KERNEL __launch_bounds__(256) void repack_weights(const u8* __restrict__ w0, const u8* __restrict__ w1,
                                                      const u8* __restrict__ w2, const u8* __restrict__ w3,
                                                      u8* wq) {
    const u64 i = (u64)blockIdx.x * 256 + threadIdx.x;
    if (i >= (u64)TILES * 16 * (K / 8)) return;
    const int fr = (int)(i / (K / 8)), up = (int)(i % (K / 8));
    const int p = fr / 16, j = fr % 16, unit = up / 4, part = up % 4;
    // 4-bit: the thread of an even unit writes both units of the pair.
    if (FB == 4 && unit % 2 == 1) return;
    const int item = p * 8 + j % 8;
    u32 q[2][2] = {{0u, 0u}, {0u, 0u}};
    float d[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}}, m[2] = {0.0f, 0.0f};
    if (item < N_ITEMS) {
        int ra, rb;
        pair_rows(item, &ra, &rb);
        const int r = j < 8 ? ra : rb;
#pragma unroll
        for (int h = 0; h < (FB == 4 ? 2 : 1); h++) WITH_ROW_TYPE(r, frag_part, unit + h, part, q[h], d[h], &m[h]);
    }
    // Elements part*8.. of the group: lanes 4g + qq and 4g + qq + 1, register
    // (part / 2) * 2 + (j >= 8).
    const int qq = (part % 2) * 2, reg = (part / 2) * 2 + j / 8, lane = 4 * (j % 8) + qq;
    if (FB == 8) {
        u32* dst = (u32*)(wq + (((u64)p * GROUPS + unit) * 32 + lane) * 16) + reg;
        dst[0] = q[0][0];
        dst[4] = q[0][1];  // the next lane, same register
    } else {
        u32* dst = (u32*)(wq + (((u64)p * (GROUPS / 2) + unit / 2) * 32 + lane) * 16) + reg;
        dst[0] = q[0][0] | (q[1][0] << 4);
        dst[4] = q[0][1] | (q[1][1] << 4);
    }
    if (part == 0) {
        float* sd = (float*)(wq + WQ_VALUES) + (((u64)p * CHUNKS + unit / 4) * 16 + j) * NS;
        float* sm = (float*)(wq + WQ_VALUES + WQ_SCALES) + (((u64)p * CHUNKS + unit / 4) * 16 + j) * 4;
#pragma unroll
        for (int h = 0; h < (FB == 4 ? 2 : 1); h++) {
            const int u = unit + h, s = (u % 4) * (32 / SUB);
            sd[s] = d[h][0];
            if (SUB == 16) sd[s + 1] = d[h][1];
#if HAS_MIN
            sm[u % 4] = m[h];
#else
            (void)sm;
#endif
        }
    }
}

// ---- quantize_rows ---------------------------------------------------------------

RFC_KERNEL __launch_bounds__(256) void quantize_rows(const float* __restrict__ x, int ldx,
                                                     const float* __restrict__ norm, u8* xq, int T) {
    const int t = blockIdx.x, o = t / 8, g = t % 8;
    float v[QPASSES][8];
    load_token_row<256>(x + (u64)t * ldx, norm, v);
    float* sd = (float*)(xq + xq_values(T));
    float* ss = (float*)(xq + xq_values(T) + xq_scales(T));
#pragma unroll
    for (int p = 0; p < QPASSES; p++) {
        // Whole units are in or out of range (K is a multiple of 32), so
        // the 4-lane groups never mix live and padding lanes.
        const int i = (p * 256 + threadIdx.x) * 8;
        u32 q[2], r[2];
        float d, s;
        quantize8_two_term(v[p], q, r, &d, &s);
        s += rfc_shfl_xor(s, 1);
        s += rfc_shfl_xor(s, 2);
        if (i < K) {
            const int gr = i / 32, e0 = i % 32, half = e0 / 16, lane = 4 * g + (e0 % 16) / 4;
            u32* dst = (u32*)(xq + (((u64)o * GROUPS + gr) * 32 + lane) * 16) + half;
            dst[0] = q[0];
            dst[2] = r[0];
            dst[4] = q[1];  // the next lane
            dst[6] = r[1];
            if ((threadIdx.x & 3) == 0) {
                const u64 at = (((u64)o * CHUNKS + gr / 4) * 8 + g) * 4 + gr % 4;
                sd[at] = d * (1.0f / 254.0f);
                ss[at] = d * s;
            }
        }
    }
}

// ---- matmul ----------------------------------------------------------------------

// Element i of v (i a constant after unrolling).
RFC_DEV float f4_at(f4 v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

RFC_DEV void mma_k32(int* c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
RFC_DEV void mma_k16(int* c, u32 a0, u32 a1, u32 b0) {
    asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(b0));
}

// One scale group's integer products of a tile's fragment `a` with an
// octet's terms `x` (first term x.x, x.y; second x.z, x.w), as 254 q + r
// per accumulator (SUB = 16: per half, h = 0, 1).
RFC_DEV void group_products(const u32* a, u32x4 x, int (*v)[4]) {
    if (SUB == 32) {
        int iq[4] = {0, 0, 0, 0}, ir[4] = {0, 0, 0, 0};
        mma_k32(iq, a[0], a[1], a[2], a[3], x.x, x.y);
        mma_k32(ir, a[0], a[1], a[2], a[3], x.z, x.w);
#pragma unroll
        for (int e = 0; e < 4; e++) v[0][e] = iq[e] * 254 + ir[e];
    } else {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int iq[4] = {0, 0, 0, 0}, ir[4] = {0, 0, 0, 0};
            mma_k16(iq, a[2 * h], a[2 * h + 1], h ? x.y : x.x);
            mma_k16(ir, a[2 * h], a[2 * h + 1], h ? x.w : x.z);
#pragma unroll
            for (int e = 0; e < 4; e++) v[h][e] = iq[e] * 254 + ir[e];
        }
    }
}

RFC_KERNEL __launch_bounds__(256) void matmul(MATMUL_PARAMS) {
    __shared__ float red[8][NO * 4][32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
    const int p0 = blockIdx.x * TPB, o0 = blockIdx.y * NO;
    (void)ldx, (void)norm, (void)w1, (void)w2, (void)w3;
    const u8* xq = (const u8*)x;
    const u8* wv = w0 + (u64)lane * 16;
    const u8* xv = xq + (u64)lane * 16;
    const float* wd_g = (const float*)(w0 + WQ_VALUES);
    const float* wm_g = (const float*)(w0 + WQ_VALUES + WQ_SCALES);
    const float* xd_g = (const float*)(xq + xq_values(T));
    const float* xs_g = (const float*)(xq + xq_values(T) + xq_scales(T));
    // Tiles past the last (a partial block) repeat it: computed, never stored.
    int tile[TPB];
#pragma unroll
    for (int i = 0; i < TPB; i++) tile[i] = min(p0 + i, TILES - 1);

    float acc[TPB][NO][4];
#pragma unroll
    for (int i = 0; i < TPB; i++)
#pragma unroll
        for (int o = 0; o < NO; o++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][o][e] = 0.0f;

    // One chunk's fragments and scales, all loaded before any is used:
    // their latencies overlap.
    struct Chunk {
        u32x4 wf[TPB][WPC], xf[NO][4];
        f4 wd[TPB][2][NS / 4], wm[TPB][2], xd[NO][2], xs[NO][2];
    };
    auto load = [&](Chunk& k, int c) {
#pragma unroll
        for (int i = 0; i < TPB; i++) {
#pragma unroll
            for (int h = 0; h < WPC; h++)
                k.wf[i][h] = *(const u32x4*)(wv + ((u64)tile[i] * (GROUPS * FB / 8) + c * WPC + h) * 512);
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const u64 row = ((u64)tile[i] * CHUNKS + c) * 16 + g + 8 * r;
#pragma unroll
                for (int s = 0; s < NS / 4; s++) k.wd[i][r][s] = *(const f4*)(wd_g + row * NS + 4 * s);
#if HAS_MIN
                k.wm[i][r] = *(const f4*)(wm_g + row * 4);
#else
                (void)wm_g;
#endif
            }
        }
#pragma unroll
        for (int o = 0; o < NO; o++) {
            const int oc = min(o0 + o, (T - 1) / 8);
#pragma unroll
            for (int h = 0; h < 4; h++) k.xf[o][h] = *(const u32x4*)(xv + ((u64)oc * GROUPS + c * 4 + h) * 512);
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const u64 at = (((u64)oc * CHUNKS + c) * 8 + 2 * q + j) * 4;
                k.xd[o][j] = *(const f4*)(xd_g + at);
#if HAS_MIN
                k.xs[o][j] = *(const f4*)(xs_g + at);
#else
                (void)xs_g;
#endif
            }
        }
    };
    auto multiply = [&](const Chunk& k) {
#pragma unroll
        for (int gi = 0; gi < 4; gi++) {
#pragma unroll
            for (int i = 0; i < TPB; i++) {
                u32 a[4];
                if (FB == 8) {
                    a[0] = k.wf[i][gi].x, a[1] = k.wf[i][gi].y, a[2] = k.wf[i][gi].z, a[3] = k.wf[i][gi].w;
                } else {
                    const u32x4 w = k.wf[i][gi / 2];
                    const int sh = 4 * (gi % 2);
                    a[0] = (w.x >> sh) & 0x0F0F0F0Fu, a[1] = (w.y >> sh) & 0x0F0F0F0Fu;
                    a[2] = (w.z >> sh) & 0x0F0F0F0Fu, a[3] = (w.w >> sh) & 0x0F0F0F0Fu;
                }
#pragma unroll
                for (int o = 0; o < NO; o++) {
                    int v[2][4];
                    group_products(a, k.xf[o][gi], v);
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        // Accumulator e: weight row g + 8 (e / 2), token 2q + e % 2.
                        const int r = e / 2, j = e % 2;
                        const float dx = f4_at(k.xd[o][j], gi);
                        float sum;
                        if (SUB == 32) {
                            sum = f4_at(k.wd[i][r][0], gi) * (float)v[0][e];
                        } else {
                            const f4 s = k.wd[i][r][gi / 2];
                            sum = f4_at(s, 2 * (gi % 2)) * (float)v[0][e] + f4_at(s, 2 * (gi % 2) + 1) * (float)v[1][e];
                        }
                        float a_ = fmaf(sum, dx, acc[i][o][e]);
#if HAS_MIN
                        a_ = fmaf(-f4_at(k.wm[i][r], gi), f4_at(k.xs[o][j], gi), a_);
#endif
                        acc[i][o][e] = a_;
                    }
                }
            }
        }
    };
#if PIPE
    // Two chunks in flight per warp: the next one's loads are issued before
    // this one's products (the last warp-chunk reloads itself, unused). One
    // call site each, so that both inline and the chunks stay in registers.
    Chunk cur, next;
    for (int c = warp - 8; c < CHUNKS; c += 8) {
        load(next, min(c + 8, CHUNKS - 1));
        if (c >= 0) multiply(cur);
        cur = next;
    }
#else
    for (int c = warp; c < CHUNKS; c += 8) {
        Chunk k;
        load(k, c);
        multiply(k);
    }
#endif

    // The warps' partial sums, one tile at a time, in warp order; then each
    // (token, item) pair's epilogue.
    Epi e = MAKE_EPI;
#pragma unroll
    for (int i = 0; i < TPB; i++) {
        __syncthreads();  // the last tile's sums are read
#pragma unroll
        for (int o = 0; o < NO; o++)
#pragma unroll
            for (int k = 0; k < 4; k++) red[warp][o * 4 + k][lane] = acc[i][o][k];
        __syncthreads();
        if (threadIdx.x < NO * 64) {
            const int ln = threadIdx.x % 32, o = threadIdx.x / 64, j = (threadIdx.x / 32) % 2;
            float a = 0.0f, b = 0.0f;
#pragma unroll
            for (int w = 0; w < 8; w++) {
                a += red[w][o * 4 + j][ln];
                b += red[w][o * 4 + 2 + j][ln];
            }
            const int t = (o0 + o) * 8 + 2 * (ln % 4) + j, item = (p0 + i) * 8 + ln / 4;
            if (t < T && item < N_ITEMS) epilogue_pair(e, t, item, a, b);
        }
    }
}
