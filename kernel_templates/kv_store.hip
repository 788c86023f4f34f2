// Stores a step's keys and values into the paged KV cache (kv_cache.h):
// each token's row rotated where its type is stored rotated, then encoded
// block by block as the CPU cache encodes it. Serves every cache type
// that the QKV matmul's epilogue does not write itself (it writes f16
// element by element), and graphs whose KV store is not fused.
//
// Grid (T), block KVS_THREADS. k[t], v[t]: KV_DIM floats at rows ldk, ldv
// apart. Defines: kv_cache.h's.

#define KVS_THREADS 256
// Elements staged in shared memory at a time: whole rotation runs and
// whole blocks (KV_DIM is a multiple of both where they apply).
#define KVS_CHUNK (KV_DIM < 2048 ? KV_DIM : 2048)

// Rotates the runs of ROT elements of xs[0..n), one group of 32 lanes per
// run (no rotation for ROT = 0).
template <int ROT> struct KvsRotate {
    static RFC_DEVT void runs(float* xs, int n, float scale) {
        const int lane = threadIdx.x % 32;
        for (int r = threadIdx.x / 32; r < n / ROT; r += KVS_THREADS / 32) {
            float v[ROT / 32];
#pragma unroll
            for (int e = 0; e < ROT / 32; e++) v[e] = xs[r * ROT + lane * (ROT / 32) + e];
            kv_hadamard_warp<ROT / 32, ROT>(v, scale);
#pragma unroll
            for (int e = 0; e < ROT / 32; e++) xs[r * ROT + lane * (ROT / 32) + e] = v[e];
        }
    }
};
template <> struct KvsRotate<0> {
    static RFC_DEVT void runs(float*, int, float) {}
};

// One row of KV_DIM floats from `src` into the cache row at `dst`.
template <int TY, int ROT> RFC_DEVT void kv_store_row(const float* src, u8* dst, float* xs, float scale) {
    typedef KvBlock<TY> B;
    for (int base = 0; base < KV_DIM; base += KVS_CHUNK) {
        const int n = min(KVS_CHUNK, KV_DIM - base);
        for (int i = threadIdx.x; i < n; i += KVS_THREADS) xs[i] = src[base + i];
        __syncthreads();
        KvsRotate<ROT>::runs(xs, n, scale);
        __syncthreads();
        for (int b = threadIdx.x; b < n / B::LEN; b += KVS_THREADS)
            B::put(xs + b * B::LEN, dst + (u64)(base / B::LEN + b) * B::BYTES);
        __syncthreads();  // xs is staged again
    }
}

RFC_KERNEL __launch_bounds__(KVS_THREADS) void kv_store(const float* __restrict__ k, int ldk,
                                                        const float* __restrict__ v, int ldv,
                                                        const int* __restrict__ pos,
                                                        const int* __restrict__ seq,
                                                        const int* __restrict__ pages, int pages_per_seq,
                                                        u8* kv, int T) {
    __shared__ float xs[KVS_CHUNK];
    const int t = blockIdx.x;
    if (t >= T) return;
    const u32 row = kv_cache_row(pages, pages_per_seq, seq[t], pos[t]);
    kv_store_row<KV_K_TYPE, K_ROT>(k + (u64)t * ldk, kv + kv_key_offset(row), xs, bits_f32(K_ROT_SCALE_BITS));
    kv_store_row<KV_V_TYPE, V_ROT>(v + (u64)t * ldv, kv + kv_value_offset(row), xs, bits_f32(V_ROT_SCALE_BITS));
}
