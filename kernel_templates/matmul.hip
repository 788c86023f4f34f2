// Tiled quantized matrix product for prefill (many tokens) on the matrix
// units (prelude.h, "matrix units"): f16 operands, f32 accumulation, with
// the same prologue and epilogue as matvec.hip.
//
// A block computes TM tokens x TN weight rows, laid out as tiles.h says,
// and ends with its finish_tiles.
// The k loop walks 32-element units: x rows staged as f16 (RMSNorm applied:
// x*g*scale, the per-token scale from a first pass over x, times a power of
// two that keeps the row inside f16's range), weight rows dequantized to f16. With two shared-memory buffers (NBUF 2, where they
// fit) the warps stage unit u+1 while others still multiply unit u, one
// barrier per unit; with one, two barriers.
//
// Precision (MMA_SPLIT): 1 multiplies the f16 roundings of x and w
// (relative error ~3e-4 per output row); 3 also stages the rounding
// remainders (x = xh + xl, w = wh + wl, all f16) and accumulates
// xh*wh + xh*wl + xl*wh, accurate to ~2e-6 at three times the
// matrix-unit work; 2 splits x only (xh*wh + xl*wh).
//
// Defines: K, TM (32, 64 or 128), TN (64 or 128), MMA_SPLIT (1, 2 or 3),
// SEGi_*, EPS_BITS with PROLOGUE_RMS, the epilogue's. Grid:
// (ceil(N_ITEMS / (TN/2)), ceil(T / TM)); block: 256 threads (8 warps of 32).

#ifndef MMA_SPLIT
#define MMA_SPLIT 3
#endif
#define UNITS (K / 32)
#define KP 40  // row pitch of the staged tiles in halves: 32 + 8 (banks)
#define X_PARTS (TM * 4)
#define W_PARTS (TN * 4)
#define LAYERS (MMA_SPLIT > 1 ? 2 : 1)
#define STAGE_HALVES (LAYERS * (TM + TN) * KP)
// Two buffers where they fit 40 KiB, else one (and a second barrier per unit).
#define NBUF (2 * STAGE_HALVES * 2 <= 40 * 1024 ? 2 : 1)

static_assert(NBUF * STAGE_HALVES * 2 >= 8 * 16 * EPI_PITCH * 4, "the epilogue fits the staging buffers");
static_assert(NBUF * STAGE_HALVES * 2 <= 44 * 1024, "static shared memory stays under 48 KiB");

struct alignas(16) h8 {
    u32 x, y, z, w;
};

// f16 of v (hi), and of what that rounding left (lo).
RFC_DEV void split8(const float* v, h8* hi, h8* lo) {
    u16 h[8], l[8];
#pragma unroll
    for (int e = 0; e < 8; e++) {
        h[e] = f2h(v[e]);
        l[e] = f2h(v[e] - h2f(h[e]));
    }
    hi->x = (u32)h[0] | ((u32)h[1] << 16);
    hi->y = (u32)h[2] | ((u32)h[3] << 16);
    hi->z = (u32)h[4] | ((u32)h[5] << 16);
    hi->w = (u32)h[6] | ((u32)h[7] << 16);
    lo->x = (u32)l[0] | ((u32)l[1] << 16);
    lo->y = (u32)l[2] | ((u32)l[3] << 16);
    lo->z = (u32)l[4] | ((u32)l[5] << 16);
    lo->w = (u32)l[6] | ((u32)l[7] << 16);
}

// e with 2^(e-1) <= v < 2^e for a finite v > 0, kept within +-100 (0 for
// v = 0), so 2^-e and 2^e are normal f32 powers of two.
RFC_DEV int pow2_exponent(float v) {
    if (!(v > 0.0f)) return 0;
    const int e = (int)((f32_bits(v) >> 23) & 0xff) - 126;
    return max(-100, min(100, e));
}

template <int TY>
RFC_DEVT void dequant_part(const u8* row, int unit, int part, float* v) {
    dequant8<TY>(row, unit, part, v);
}

// Buffer b, layer (0: hi, 1: lo): TM x rows, then TN weight rows.
RFC_DEV u16* x_tile(u16* stage, int b, int layer) {
    return stage + b * STAGE_HALVES + layer * (TM + TN) * KP;
}

RFC_KERNEL __launch_bounds__(256) void matmul(MATMUL_PARAMS) {
    // Staging buffers, reused by the epilogue once the k loop is done.
    __shared__ h8 stage_v[NBUF * STAGE_HALVES / 8];  // h8: 16-byte aligned rows
    u16* const stage = (u16*)stage_v;
    __shared__ float scale_s[TM], unscale_s[TM];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wc = warp % 4;
    const int i0 = blockIdx.x * (TN / 2);
    const int t0 = blockIdx.y * TM;

    // Per token, a warp over the whole row: the RMSNorm scale, and a power
    // of two that brings the staged row's largest element into [0.5, 1) so
    // that no f16 overflows (undone exactly in the epilogue).
    for (int tl = warp; tl < TM; tl += 8) {
        float ss = 0.0f, mx = 0.0f;
        if (t0 + tl < T) {
            const float* xr = x + (u64)(t0 + tl) * ldx;
            for (int i = lane * 4; i < K; i += 128) {
                f4 a = ld_f4(xr + i);
                ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
#if PROLOGUE_RMS
                a.x *= norm[i]; a.y *= norm[i + 1]; a.z *= norm[i + 2]; a.w *= norm[i + 3];
#endif
                mx = fmaxf(mx, fmaxf(fmaxf(fabsf(a.x), fabsf(a.y)), fmaxf(fabsf(a.z), fabsf(a.w))));
            }
        }
        ss = warp_sum(ss);
        mx = warp_max(mx);
#if PROLOGUE_RMS
        const float rs = rsqrtf(ss / (float)K + bits_f32(EPS_BITS));
#else
        const float rs = 1.0f;
#endif
        if (lane == 0) {
            const int e = pow2_exponent(mx * rs);
            scale_s[tl] = rs * bits_f32((u32)(127 - e) << 23);
            unscale_s[tl] = bits_f32((u32)(127 + e) << 23);
        }
    }
    int wrow[(W_PARTS + 255) / 256];
#pragma unroll
    for (int r = 0; r < (W_PARTS + 255) / 256; r++) wrow[r] = tile_row(i0, (tid + 256 * r) / 4);
    __syncthreads();

    float acc[MT][NT][MMA_ACC];
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) acc[mi][ni][i] = 0.0f;

    // Stages unit u into buffer b: x rows, then weight rows (8 elements a part).
    auto stage_unit = [&](int u, int b) {
#pragma unroll
        for (int r = 0; r < (X_PARTS + 255) / 256; r++) {
            const int p = tid + 256 * r, tl = p / 4, part = p % 4;
            if (p >= X_PARTS) break;
            float v[8];
            if (t0 + tl < T) {
                const float* xr = x + (u64)(t0 + tl) * ldx + u * 32 + part * 8;
                f4 a = ld_f4(xr), c = ld_f4(xr + 4);
                const float sc = scale_s[tl];
                v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
                v[4] = c.x; v[5] = c.y; v[6] = c.z; v[7] = c.w;
#pragma unroll
                for (int e = 0; e < 8; e++) {
#if PROLOGUE_RMS
                    v[e] *= norm[u * 32 + part * 8 + e] * sc;
#else
                    v[e] *= sc;
#endif
                }
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = 0.0f;
            }
            h8 hi, lo;
            split8(v, &hi, &lo);
            *(h8*)(x_tile(stage, b, 0) + tl * KP + part * 8) = hi;
#if MMA_SPLIT > 1
            *(h8*)(x_tile(stage, b, 1) + tl * KP + part * 8) = lo;
#endif
        }
#pragma unroll
        for (int r = 0; r < (W_PARTS + 255) / 256; r++) {
            const int p = tid + 256 * r, n = p / 4, part = p % 4;
            if (p >= W_PARTS) break;
            float v[8];
            if (wrow[r] >= 0) {
                WITH_ROW_TYPE(wrow[r], dequant_part, u, part, v);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = 0.0f;
            }
            h8 hi, lo;
            split8(v, &hi, &lo);
            *(h8*)(x_tile(stage, b, 0) + (TM + n) * KP + part * 8) = hi;
#if MMA_SPLIT == 3
            *(h8*)(x_tile(stage, b, 1) + (TM + n) * KP + part * 8) = lo;
#endif
        }
    };

    stage_unit(0, 0);
    __syncthreads();
    for (int u = 0; u < UNITS; u++) {
        const int b = u % NBUF;
#pragma unroll
        for (int kk = 0; kk < 32; kk += 16) {
            // The weight fragments stay in registers; one x fragment at a time.
            const u16* xs = x_tile(stage, b, 0) + kk;
            const u16* ws = xs + TM * KP;
            MmaB bh[NT];
#pragma unroll
            for (int ni = 0; ni < NT; ni++) mma_load_b(bh[ni], ws + (wc * WTN + ni * 16) * KP, KP);
#if MMA_SPLIT > 1
            const u16* xl = x_tile(stage, b, 1) + kk;
#endif
#if MMA_SPLIT == 3
            const u16* wl = xl + TM * KP;
            MmaB bl[NT];
#pragma unroll
            for (int ni = 0; ni < NT; ni++) mma_load_b(bl[ni], wl + (wc * WTN + ni * 16) * KP, KP);
#endif
#pragma unroll
            for (int mi = 0; mi < MT; mi++) {
                MmaA a;
                mma_load_a(a, xs + (wm * WTM + mi * 16) * KP, KP);
#pragma unroll
                for (int ni = 0; ni < NT; ni++) mma_16x16x16(acc[mi][ni], a, bh[ni]);
#if MMA_SPLIT == 3
#pragma unroll
                for (int ni = 0; ni < NT; ni++) mma_16x16x16(acc[mi][ni], a, bl[ni]);
#endif
#if MMA_SPLIT > 1
                mma_load_a(a, xl + (wm * WTM + mi * 16) * KP, KP);
#pragma unroll
                for (int ni = 0; ni < NT; ni++) mma_16x16x16(acc[mi][ni], a, bh[ni]);
#endif
            }
        }
        if (NBUF == 1) __syncthreads();  // all reads done before the overwrite
        if (u + 1 < UNITS) stage_unit(u + 1, (u + 1) % NBUF);
        __syncthreads();
    }

    Epi e = MAKE_EPI;
    finish_tiles(acc, (float*)stage, t0, i0, T, unscale_s, e);
}
