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

// out[i] = F(x[i], c): the unary ops, c the op's constant (unused by some).
#define UNARY(NAME, EXPR)                                                                          \
    RFC_KERNEL __launch_bounds__(BLOCK) void NAME(const float* x, float* out, u64 n, float c) {    \
        for (u64 i = (u64)blockIdx.x * BLOCK + threadIdx.x; i < n; i += (u64)gridDim.x * BLOCK) {  \
            const float v = x[i];                                                                 \
            out[i] = EXPR;                                                                        \
        }                                                                                         \
    }

UNARY(silu_kernel, silu(v))
UNARY(gelu_kernel, gelu_tanh(v))
UNARY(scale_kernel, v * c)
// Gemma 2's soft-cap c * tanh(v / c), as ggml (and the CPU backend) form it.
UNARY(softcap_kernel, tanhf(v * (1.0f / c)) * c)

#ifdef ROPE_HD
// Rotates the ROPE_HEADS heads of each row of x ([T, ldx]) into out
// ([T, ldo]; may be x itself: each thread reads the pair it writes).
// Grid (T), block 256: the row's cos/sin table first, then every pair.
// Defines: ROPE_HD, ROPE_HEADS, ROPE_NEOX and the angle's (rope.h).
RFC_KERNEL __launch_bounds__(BLOCK) void rope(const float* x, int ldx, float* out, int ldo,
                                              const int* __restrict__ pos,
                                              const float* __restrict__ freqs, int T) {
    __shared__ float cs_[ROPE_HD / 2], sn_[ROPE_HD / 2];
    const int t = blockIdx.x;
    if (t >= T) return;
    for (int i = threadIdx.x; i < ROPE_HD / 2; i += BLOCK) rope_cos_sin(pos[t], i, freqs, &cs_[i], &sn_[i]);
    __syncthreads();
    const float* r = x + (u64)t * ldx;
    float* o = out + (u64)t * ldo;
    for (int c = threadIdx.x; c < ROPE_HEADS * (ROPE_HD / 2); c += BLOCK) {
        const int h = c / (ROPE_HD / 2), i = c % (ROPE_HD / 2);
#if ROPE_NEOX
        const int a = h * ROPE_HD + i, b = a + ROPE_HD / 2;
#else
        const int a = h * ROPE_HD + 2 * i, b = a + 1;
#endif
        const float x0 = r[a], x1 = r[b], cs = cs_[i], sn = sn_[i];
        o[a] = x0 * cs - x1 * sn;
        o[b] = x0 * sn + x1 * cs;
    }
}
#endif
