// The block tile of the matrix-unit matmuls (matmul.hip, matmul_q8.hip).
//
// A block computes TM tokens x TN weight rows: the rows of items
// i0..i0+TN/2. 8 warps in 2 (tokens) x 4 (rows); warp (wm, wc) owns tokens
// wm*WTM.. and the WTN rows of items i0 + wc*WTN/2 + j: A rows first, then
// their B partners (epilogue.h), so every pair a warp finishes is its own.
// Each warp accumulates MT x NT tiles of 16 x 16 (prelude.h's matrix units).

#define WTM (TM / 2)
#define WTN (TN / 4)
#define MT (WTM / 16)
#define NT (WTN / 16)
#define EPI_PITCH (WTN + 1)

// Weight row staged at tile row n (-1: past the last item).
RFC_DEV int tile_row(int i0, int n) {
    const int wc = n / WTN, j = n % WTN;
    const int item = i0 + wc * (WTN / 2) + j % (WTN / 2);
    if (item >= N_ITEMS) return -1;
    int ra, rb;
    pair_rows(item, &ra, &rb);
    return j < WTN / 2 ? ra : rb;
}

// The epilogue of a block, 16 tokens at a time: each warp parks its 16 x
// WTN accumulators in shared memory (`stage`, at least 8 x 16 x EPI_PITCH
// floats, free by now), then finishes its pairs from there, each token's
// values times unscale[token - t0] when `unscale` is given. Every thread of
// the block calls it (it synchronizes).
RFC_DEV void finish_tiles(const float (*acc)[NT][MMA_ACC], float* stage, int t0, int i0, int T,
                          const float* unscale, const Epi& e) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = warp / 4, wc = warp % 4;
    float* es = stage + warp * 16 * EPI_PITCH;
#pragma unroll
    for (int mi = 0; mi < MT; mi++) {
#pragma unroll
        for (int ni = 0; ni < NT; ni++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) {
                int m, n;
                mma_acc_pos(lane, i, &m, &n);
                es[m * EPI_PITCH + ni * 16 + n] = acc[mi][ni][i];
            }
        __syncthreads();
        for (int idx = lane; idx < 16 * (WTN / 2); idx += 32) {
            const int m = idx / (WTN / 2), j = idx % (WTN / 2);
            const int t = t0 + wm * WTM + mi * 16 + m;
            const int item = i0 + wc * (WTN / 2) + j;
            if (t < T && item < N_ITEMS) {
                const float u = unscale ? unscale[t - t0] : 1.0f;
                epilogue_pair(e, t, item, es[m * EPI_PITCH + j] * u, es[m * EPI_PITCH + WTN / 2 + j] * u);
            }
        }
        __syncthreads();
    }
}
