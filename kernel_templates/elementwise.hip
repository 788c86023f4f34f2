// Element-wise ops of the unfused graph (the fused plan folds them into
// matmul epilogues; these serve graphs the fuser leaves alone and tests).
// Grid-stride loops; grid (ceil(n / 256) capped), block 256.

#define BLOCK 256

// out[i] = a[i] OP b[i % b_len] (b_len < n broadcasts a row).
#define BINARY(NAME, EXPR)                                                                         \
    RFC_KERNEL __launch_bounds__(BLOCK) void NAME(const float* a, const float* b, float* out, u64 n, \
                                                  u64 b_len) {                                    \
        for (u64 i = (u64)blockIdx.x * BLOCK + threadIdx.x; i < n; i += (u64)gridDim.x * BLOCK) {  \
            float x = a[i], y = b[i % b_len];                                                     \
            out[i] = EXPR;                                                                        \
        }                                                                                         \
    }

BINARY(add, x + y)
BINARY(mul, x * y)

RFC_KERNEL __launch_bounds__(BLOCK) void silu_kernel(const float* x, float* out, u64 n) {
    for (u64 i = (u64)blockIdx.x * BLOCK + threadIdx.x; i < n; i += (u64)gridDim.x * BLOCK) out[i] = silu(x[i]);
}

#ifdef ROPE_HD
// Rotates the ROPE_HEADS heads of each row of x in place ([T, ld]).
// Grid (T), block 256. Defines ROPE_HD, ROPE_HEADS, ROPE_NEOX,
// ROPE_THETA_SCALE_BITS, ROPE_FREQ_SCALE_BITS.
RFC_KERNEL __launch_bounds__(BLOCK) void rope(float* x, int ld, const int* __restrict__ pos, int T) {
    const int t = blockIdx.x;
    if (t >= T) return;
    const float s = bits_f32(ROPE_THETA_SCALE_BITS);
    for (int c = threadIdx.x; c < ROPE_HEADS * (ROPE_HD / 2); c += BLOCK) {
        int h = c / (ROPE_HD / 2), i = c % (ROPE_HD / 2);
#if ROPE_NEOX
        int a = h * ROPE_HD + i, b = a + ROPE_HD / 2;
#else
        int a = h * ROPE_HD + 2 * i, b = a + 1;
#endif
        float th = (float)pos[t];
        for (int j = 0; j < i; j++) th *= s;
        float sn, cs;
        sincosf(bits_f32(ROPE_FREQ_SCALE_BITS) * th, &sn, &cs);
        float* r = x + (u64)t * ld;
        float x0 = r[a], x1 = r[b];
        r[a] = x0 * cs - x1 * sn;
        r[b] = x0 * sn + x1 * cs;
    }
}
#endif
