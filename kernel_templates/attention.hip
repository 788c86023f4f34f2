// Causal attention over the paged KV cache (f32 accumulation), for a step
// of tokens from any number of sequences.
//
// KV cache of one layer: kv_cache.h (keys and values in their own element
// types, read where they lie: KvBlock<TY>::load8, kv_key_levels); token at
// position p of sequence s is cache row page*PAGE_SIZE + p%PAGE_SIZE with
// page = pages[s*pages_per_seq + p/PAGE_SIZE]. Keys stored rotated (K_ROT)
// meet q rotated alike; values stored rotated (V_ROT) sum to the rotated
// output, which is turned back before it is written. Query token t at
// position pos[t] sees keys lo..pos[t] of its sequence (lo = 0, or
// pos[t]+1-WINDOW with a window). The keys of this step must already be
// stored (the QKV matmul's KV epilogue runs first).
//
// Defines: kv_cache.h's, HD, NH, NKV, SCALE_BITS, WINDOW (0: none),
// SOFTCAP_BITS (Gemma 2: each scaled score s becomes cap*tanh(s/cap); absent: none),
// CH (decode block threads = keys per decode tile, a multiple of HD),
// SPLIT_MIN (fewest keys per decode split), MAX_SPLITS (most splits),
// COMBINE_THREADS (combine block, a multiple of HD), QT/KT (prefill tiles).
//
// attn_decode  (split-K "flash decoding"): grid (S = max_chunks, NKV, T),
//   block CH: split c of token t's keys (split_len) for the NH/NKV query
//   heads of kv head g, so K and V are read once per kv head
//   -> part[((t*NH + h)*S + c)*(HD+2) + {0: max, 1: sum, 2..: o}]
// attn_combine: grid (NH, T), block COMBINE_THREADS: merges the splits -> out
//   (decode's, or with `fixed` the prefill's `splits` partials).
// attn_prefill (tiled): grid (ceil(T/QT), NH, splits), block 256 (staged)
//   or FLASH_QT / 16 warps (flash): with splits > 1 (flash only), split z
//   of every query run's keys -> part, in attn_combine's layout.

#define GROUP (NH / NKV)
// Elements of a head row per lane where one group of 32 lanes holds it
// (the rotations).
#define HE (HD / 32)

typedef u32x4 u4;

// A scaled score after Gemma 2's soft-cap (the CPU backend's softcap).
RFC_DEV float soft_cap(float s) {
#ifdef SOFTCAP_BITS
    const float cap = bits_f32(SOFTCAP_BITS);
    return tanhf(s * (1.0f / cap)) * cap;
#else
    return s;
#endif
}

RFC_DEV int key_lo(int p) {
#if WINDOW
    return max(0, p + 1 - WINDOW);
#else
    return 0;
#endif
}

#if K_ROT
// A query row of HD floats (zeros for a null row), rotated as the stored
// keys are, times `mul`: this lane's HE elements (lane*HE + e) in v.
// Called by all 32 lanes of a group.
RFC_DEV void rotated_q(const float* row, float mul, float* v) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int e = 0; e < HE; e++) v[e] = row ? row[lane * HE + e] : 0.0f;
    kv_hadamard_warp<HE, K_ROT>(v, bits_f32(K_ROT_SCALE_BITS));
#pragma unroll
    for (int e = 0; e < HE; e++) v[e] *= mul;
}
#endif

#if KEY_LEVELS
// Prefill's q as the CPU (and attn_decode) scores Q8_0/Q4_0 keys against
// it: each 32 elements in Q8_0 (absmax / 127, half away from zero, the
// scale rounded to f16), held here by 32 / PER lanes of PER elements;
// all 32 lanes of the warp call it.
template <int PER> RFC_DEVT void q8_levels(float* v) {
    float amax = 0.0f;
#pragma unroll
    for (int e = 0; e < PER; e++) amax = fmaxf(amax, fabsf(v[e]));
    amax = group_max(amax, 32 / PER);
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f, dq = h2f(f2h(d));
#pragma unroll
    for (int e = 0; e < PER; e++) v[e] = (float)(int)roundf(kv_fmul(v[e], id)) * dq;
}
#endif

#if V_ROT
// An output row of HD floats, this lane's HE of them in v, turned back
// from the values' rotation into dst; called by all 32 lanes of a group.
RFC_DEV void unrotated_out(float* v, float* dst) {
    const int lane = threadIdx.x % 32;
    kv_hadamard_warp<HE, V_ROT>(v, bits_f32(V_ROT_SCALE_BITS));
#pragma unroll
    for (int e = 0; e < HE; e++) dst[lane * HE + e] = v[e];
}
#endif

// Block-wide max or sum of GROUP values per thread (blockDim.x == CH),
// all heads in one round: two barriers instead of two per head.
RFC_DEV void block_reduce_heads(float* v, bool is_max, float (*scratch)[GROUP]) {
    const int w = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
#pragma unroll
    for (int h = 0; h < GROUP; h++) v[h] = is_max ? warp_max(v[h]) : warp_sum(v[h]);
    __syncthreads();
    if (lane == 0) {
#pragma unroll
        for (int h = 0; h < GROUP; h++) scratch[w][h] = v[h];
    }
    __syncthreads();
#pragma unroll
    for (int h = 0; h < GROUP; h++) {
        float r = scratch[0][h];
        for (int i = 1; i < CH / RFC_WARP; i++) r = is_max ? fmaxf(r, scratch[i][h]) : r + scratch[i][h];
        v[h] = r;
    }
}

// Key range of split c (of S) of a token with n keys from lo: splits of
// L keys (a multiple of SPLIT_MIN, at least n/S), so short contexts use
// few splits and long ones spread over all S. Decode and combine agree
// on it; returns the number of splits that hold keys.
RFC_DEV int split_len(int n, int S) {
    int l = (n + S - 1) / S;
    return (l + SPLIT_MIN - 1) / SPLIT_MIN * SPLIT_MIN;
}

// V pass layout: VL threads read one value row 16 bytes each; a block
// covers VK keys at once.
#define VL (HD / 8)
#define VK (CH / VL)

RFC_KERNEL __launch_bounds__(CH) void attn_decode(const float* __restrict__ q, int ldq,
                                                  const u8* __restrict__ kv,
                                                  const int* __restrict__ pos,
                                                  const int* __restrict__ seq,
                                                  const int* __restrict__ pages, int pages_per_seq,
                                                  float* __restrict__ part, int max_chunks, int T) {
    __shared__ float qs[GROUP][HD];
    __shared__ float ps[GROUP][CH];
    __shared__ u32 rows[CH];
    __shared__ float os[VK][HD];
    __shared__ float red[CH / RFC_WARP][GROUP];
#if KEY_LEVELS
    // q in Q8_0 per 32 elements: levels as words of four, f16-rounded scales.
    __shared__ int qw[GROUP][HD / 4];
    __shared__ float qd[GROUP][HD / 32];
#endif
    const int c = blockIdx.x, g = blockIdx.y, t = blockIdx.z, tid = threadIdx.x;
    if (t >= T) return;
    const int p = pos[t], s = seq[t];
    const int lo = key_lo(p);
    const int len = split_len(p - lo + 1, max_chunks);
    const int kb = lo + c * len;
    if (kb > p) return;  // beyond this token's keys: attn_combine skips it
    const int ke = min(kb + len, p + 1);
    const float scale = bits_f32(SCALE_BITS);
    // Integer scores take q unscaled (the CPU scales each score after).
    const float q_mul = KEY_LEVELS ? 1.0f : scale;
#if K_ROT
    for (int h = tid / 32; h < GROUP; h += CH / 32) {
        float v[HE];
        rotated_q(q + (u64)t * ldq + (g * GROUP + h) * HD, q_mul, v);
#pragma unroll
        for (int e = 0; e < HE; e++) qs[h][(tid % 32) * HE + e] = v[e];
    }
#else
    for (int i = tid; i < GROUP * HD; i += CH)
        qs[i / HD][i % HD] = q[(u64)t * ldq + (g * GROUP + i / HD) * HD + i % HD] * q_mul;
#endif
#if KEY_LEVELS
    __syncthreads();  // qs
    // Each 32 elements of each head to Q8_0 as the CPU quantizes q
    // (absmax / 127, half away from zero, the scale rounded to f16).
    for (int i = tid; i < GROUP * (HD / 32); i += CH) {
        const int h = i / (HD / 32), b = i % (HD / 32);
        const float* x = qs[h] + 32 * b;
        float amax = 0.0f;
        for (int e = 0; e < 32; e++) amax = fmaxf(amax, fabsf(x[e]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int w = 0; w < 8; w++) {
            u32 word = 0;
            for (int e = 0; e < 4; e++) word |= (u32)(u8)(i8)(int)roundf(kv_fmul(x[4 * w + e], id)) << (8 * e);
            qw[h][8 * b + w] = (int)word;
        }
        qd[h][b] = h2f(f2h(d));
    }
#endif
    const int vd = (tid % VL) * 8, vk = tid / VL;
    float m_run[GROUP], l_run[GROUP], o[GROUP][8];
#pragma unroll
    for (int h = 0; h < GROUP; h++) {
        m_run[h] = RFC_NEG_INF;
        l_run[h] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) o[h][e] = 0.0f;
    }
    // Tiles of CH keys; one tile unless a split holds more than CH keys.
    for (int k0 = kb; k0 < ke; k0 += CH) {
        const int nk = min(CH, ke - k0);
        const bool valid = tid < nk;
        const u32 row = valid ? kv_cache_row(pages, pages_per_seq, s, k0 + tid) : 0;
        rows[tid] = row;
        __syncthreads();  // qs, qw, qd (first tile), rows

        float sc[GROUP];
#pragma unroll
        for (int h = 0; h < GROUP; h++) sc[h] = 0.0f;
        if (valid) {
            const u8* kr = kv + kv_key_offset(row);
#if KEY_LEVELS
            // Per block: one integer dot per head, times d_k d_q.
#pragma unroll 2
            for (int b = 0; b < HD / 32; b++) {
                int w[8];
                const float dk = kv_key_levels<KV_K_TYPE>(kr, g * HD + 32 * b, w);
#pragma unroll
                for (int h = 0; h < GROUP; h++) {
                    int dot = 0;
#pragma unroll
                    for (int i = 0; i < 8; i++) dot = dot4_i8(w[i], qw[h][8 * b + i], dot);
                    sc[h] += dk * qd[h][b] * (float)dot;
                }
            }
#pragma unroll
            for (int h = 0; h < GROUP; h++) sc[h] *= scale;
#else
#pragma unroll 4
            for (int d8 = 0; d8 < HD / 8; d8++) {
                float kf[8];
                KvBlock<KV_K_TYPE>::load8(kr, g * HD + d8 * 8, kf);
#pragma unroll
                for (int h = 0; h < GROUP; h++)
#pragma unroll
                    for (int e = 0; e < 8; e++) sc[h] += qs[h][d8 * 8 + e] * kf[e];
            }
#endif
#pragma unroll
            for (int h = 0; h < GROUP; h++) sc[h] = soft_cap(sc[h]);
        }
        float mx[GROUP], sm[GROUP], alpha[GROUP];
#pragma unroll
        for (int h = 0; h < GROUP; h++) mx[h] = valid ? sc[h] : RFC_NEG_INF;
        block_reduce_heads(mx, true, red);
#pragma unroll
        for (int h = 0; h < GROUP; h++) {
            const float m_new = fmaxf(m_run[h], mx[h]);  // finite: nk >= 1
            alpha[h] = expf(m_run[h] - m_new);
            m_run[h] = m_new;
            float e = valid ? expf(sc[h] - m_new) : 0.0f;
            ps[h][tid] = e;
            sm[h] = e;
        }
        block_reduce_heads(sm, false, red);
        __syncthreads();  // ps

        // Values: thread (vk, vd) sums keys vk, vk+VK, ... of its 8 columns.
#pragma unroll
        for (int h = 0; h < GROUP; h++) {
            l_run[h] = l_run[h] * alpha[h] + sm[h];
#pragma unroll
            for (int e = 0; e < 8; e++) o[h][e] *= alpha[h];
        }
#pragma unroll 4
        for (int k = vk; k < nk && vk < VK; k += VK) {
            float vf[8];
            KvBlock<KV_V_TYPE>::load8(kv + kv_value_offset(rows[k]), g * HD + vd, vf);
#pragma unroll
            for (int h = 0; h < GROUP; h++) {
                const float pk = ps[h][k];
#pragma unroll
                for (int e = 0; e < 8; e++) o[h][e] += pk * vf[e];
            }
        }
        __syncthreads();  // rows, ps reused by the next tile
    }

    // Sum the VK key slices of each head through shared memory.
#pragma unroll
    for (int h = 0; h < GROUP; h++) {
        if (vk < VK) {
#pragma unroll
            for (int e = 0; e < 8; e++) os[vk][vd + e] = o[h][e];
        }
        __syncthreads();
        if (tid < HD) {
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < VK; i++) acc += os[i][tid];
            float* dst = part + ((u64)(t * NH + g * GROUP + h) * max_chunks + c) * (HD + 2);
            if (tid == 0) {
                dst[0] = m_run[h];
                dst[1] = l_run[h];
            }
            dst[2 + tid] = acc;
        }
        __syncthreads();
    }
}

// Combine: COMBINE_THREADS threads, CQ groups of HD summing every CQ-th
// split (a short serial loop even at MAX_SPLITS splits); the first warp
// turns the splits' maxima and sums into weights first.
#define CQ (COMBINE_THREADS / HD)

RFC_KERNEL __launch_bounds__(COMBINE_THREADS) void attn_combine(const float* __restrict__ part,
                                                                int max_chunks,
                                                                const int* __restrict__ pos,
                                                                float* __restrict__ out, int ldo,
                                                                int T, int fixed) {
    __shared__ float ws[MAX_SPLITS];
    __shared__ float acc[CQ][HD];
    __shared__ float inv_l;
    const int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x;
    if (t >= T) return;
    const int p = pos[t];
    const int n = p - key_lo(p) + 1;
    const int len = split_len(n, max_chunks);
    // Decode's splits hold keys up to the last; the prefill's all count
    // (`fixed`: those without keys carry weight 0).
    const int chunks = fixed ? max_chunks : min((n + len - 1) / len, MAX_SPLITS);
    const float* base = part + (u64)(t * NH + h) * max_chunks * (HD + 2);
    if (tid < RFC_WARP) {
        float m = RFC_NEG_INF;
        for (int c = tid; c < chunks; c += RFC_WARP) m = fmaxf(m, base[c * (HD + 2)]);
        m = warp_max(m);
        float l = 0.0f;
        for (int c = tid; c < chunks; c += RFC_WARP) {
            const float w = expf(base[c * (HD + 2)] - m);
            ws[c] = w;
            l += w * base[c * (HD + 2) + 1];
        }
        l = warp_sum(l);
        if (tid == 0) inv_l = 1.0f / l;
    }
    __syncthreads();
    const int d = tid % HD, g = tid / HD;
    float o = 0.0f;
#pragma unroll 4
    for (int c = g; c < chunks; c += CQ) o += ws[c] * base[c * (HD + 2) + 2 + d];
    acc[g][d] = o;
    __syncthreads();
#if V_ROT
    if (tid < 32) {
        float r[HE];
#pragma unroll
        for (int e = 0; e < HE; e++) {
            float x = 0.0f;
#pragma unroll
            for (int i = 0; i < CQ; i++) x += acc[i][tid * HE + e];
            r[e] = x * inv_l;
        }
        unrotated_out(r, out + (u64)t * ldo + h * HD);
    }
#else
    if (tid < HD) {
        float r = 0.0f;
#pragma unroll
        for (int i = 0; i < CQ; i++) r += acc[i][tid];
        out[(u64)t * ldo + h * HD + tid] = r * inv_l;
    }
#endif
}

// ---- prefill on NVIDIA, head_dim <= 128: flash tiles in registers ----
// One block per QT = 16 x (warps) queries and one query head; each warp
// owns 16 query rows for the whole key range. Per tile of KT keys, staged
// once for the block (K rows, V transposed, so that both products read
// K-contiguous rows, prelude.h):
//   S = Q K^T in registers: f16 operands, Q split into hi + lo (K is f16
//     already, so the two products give the f32 scores);
//   online softmax on the accumulators (row max and sum across the lanes
//     that hold a row, prelude.h's mma_rows_*);
//   O = O * alpha + P V with P = p_hi + p_lo as the A operand straight from
//     the score accumulators (mma_acc_to_a), V exact; O stays in registers.
// Runs of consecutive queries of one sequence share their key tiles; a
// warp skips the tiles that none of its rows sees (causal, window). Tiles
// FLASH_QT x FLASH_KT. NVIDIA only: the m16n8k16 accumulators are A
// operands as they lie; AMD's WMMA layouts would move P through shared
// memory, and the per-lane state of eight rows spilled on gfx11 (clang 15,
// 128 VGPRs: 152 spilled registers against 12 for the kernel below), so AMD
// keeps the staged kernel.
#if HD <= 128 && RFC_CUDA
#undef QT
#undef KT
#define QT FLASH_QT
#define KT FLASH_KT
#define PW (QT / 16)  // warps
#define KP_PITCH (HD + 8)
#define VT_PITCH (KT + 8)
static_assert(QT % 16 == 0 && KT % 32 == 0, "whole 16-row warps, key pairs per lane");

#if V_ROT
// Turns the output rows back from the values' rotation where they lie in
// the accumulators: lane 4g + q holds columns dt*16 + 8b + 2q + j of its
// rows as element 4b + 2r + j of tile dt (mma_acc_pos), so column bits 0
// and 3 and the tile's are the lane's own, bits 1 and 2 its quad's.
RFC_DEV void unrotate_acc(float (*o)[MMA_ACC]) {
    const int q = threadIdx.x % 4;
#pragma unroll
    for (int h = 1; h < V_ROT; h <<= 1) {
        if (h == 2 || h == 4) {
            const bool upper = (q & (h / 2)) != 0;
#pragma unroll
            for (int dt = 0; dt < HD / 16; dt++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    const float x = rfc_shfl_xor(o[dt][i], h / 2);
                    o[dt][i] = upper ? x - o[dt][i] : o[dt][i] + x;
                }
        } else {
            // The partner of (dt, i) in this lane: column bit 0 is i's bit
            // 0, bit 3 i's bit 2, bits 4.. dt's.
            const int di = h == 1 ? 1 : h == 8 ? 4 : 0, dd = h >= 16 ? h / 16 : 0;
#pragma unroll
            for (int dt = 0; dt < HD / 16; dt++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    if ((i & di) || (dt & dd)) continue;
                    const float a = o[dt][i], b = o[dt + dd][i + di];
                    o[dt][i] = a + b;
                    o[dt + dd][i + di] = a - b;
                }
        }
    }
#pragma unroll
    for (int dt = 0; dt < HD / 16; dt++)
#pragma unroll
        for (int i = 0; i < MMA_ACC; i++) o[dt][i] *= bits_f32(V_ROT_SCALE_BITS);
}
#endif

RFC_KERNEL __launch_bounds__(PW * 32) void attn_prefill(const float* __restrict__ q, int ldq,
                                                         const u8* __restrict__ kv,
                                                         const int* __restrict__ pos,
                                                         const int* __restrict__ seq,
                                                         const int* __restrict__ pages, int pages_per_seq,
                                                         float* __restrict__ out, int ldo, int T,
                                                         float* __restrict__ part, int splits) {
    // K tile and V^T; at the start, Q's hi and lo halves (2 x QT rows).
#define KV_HALVES (KT * KP_PITCH + HD * VT_PITCH)
#define Q_HALVES (2 * QT * KP_PITCH)
    __shared__ __attribute__((aligned(16))) u16 kvs[KV_HALVES > Q_HALVES ? KV_HALVES : Q_HALVES];
    u16* const qs = kvs;
    u16* const ks = kvs;
    u16* const vt = kvs + KT * KP_PITCH;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int h = blockIdx.y, g = h / GROUP, z = blockIdx.z;
    const int t0 = blockIdx.x * QT;
    const int nq = min(QT, T - t0);
    const float scale = bits_f32(SCALE_BITS);

    // Q (scaled) as f16 hi + lo, then this warp's fragments.
#if K_ROT
    for (int r = warp; r < QT; r += PW) {
        float v[HE];
        rotated_q(r < nq ? q + (u64)(t0 + r) * ldq + h * HD : nullptr, KEY_LEVELS ? 1.0f : scale, v);
#if KEY_LEVELS
        q8_levels<HE>(v);
#pragma unroll
        for (int e = 0; e < HE; e++) v[e] *= scale;
#endif
#pragma unroll
        for (int e = 0; e < HE; e++) {
            const int dd = lane * HE + e;
            const u16 hi = f2h(v[e]);
            qs[r * KP_PITCH + dd] = hi;
            qs[(QT + r) * KP_PITCH + dd] = f2h(v[e] - h2f(hi));
        }
    }
#else
    for (int i = tid; i < QT * HD; i += PW * 32) {
        const int r = i / HD, dd = i % HD;
        float v = r < nq ? q[(u64)(t0 + r) * ldq + h * HD + dd] : 0.0f;
#if KEY_LEVELS
        q8_levels<1>(&v);  // a warp's 32 consecutive elements: one block
#endif
        v *= scale;
        const u16 hi = f2h(v);
        qs[r * KP_PITCH + dd] = hi;
        qs[(QT + r) * KP_PITCH + dd] = f2h(v - h2f(hi));
    }
#endif
    __syncthreads();
    MmaA qh[HD / 16], ql[HD / 16];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        mma_load_a(qh[kk], qs + (warp * 16) * KP_PITCH + kk * 16, KP_PITCH);
        mma_load_a(ql[kk], qs + (QT + warp * 16) * KP_PITCH + kk * 16, KP_PITCH);
    }

    // This lane's query rows (prelude.h's row slots): position, first key.
    int rrow[MMA_ROWS], rpos[MMA_ROWS], rlo[MMA_ROWS];
#pragma unroll
    for (int r = 0; r < MMA_ROWS; r++) {
        rrow[r] = warp * 16 + mma_slot_row(lane, r);
        rpos[r] = rrow[r] < nq ? pos[t0 + rrow[r]] : -1;
        rlo[r] = key_lo(rpos[r]);
    }

    for (int r0 = 0; r0 < nq;) {
        const int s = seq[t0 + r0];
        int r1 = r0, lo = 0x7fffffff, hi = -1;
        while (r1 < nq && seq[t0 + r1] == s) {
            const int p = pos[t0 + r1];
            lo = min(lo, key_lo(p));
            hi = max(hi, p);
            r1++;
        }
        // This warp's rows in the run, and the keys they see (for skipping).
        bool act[MMA_ROWS];
        int wlo = 0x7fffffff, whi = -1;
#pragma unroll
        for (int r = 0; r < MMA_ROWS; r++) {
            act[r] = rrow[r] >= r0 && rrow[r] < r1 && rrow[r] < nq;
            if (act[r]) wlo = min(wlo, rlo[r]), whi = max(whi, rpos[r]);
        }
        for (int o = 16; o > 0; o >>= 1) {
            wlo = min(wlo, rfc_shfl_xor_i(wlo, o));
            whi = max(whi, rfc_shfl_xor_i(whi, o));
        }
        float m_[MMA_ROWS], l_[MMA_ROWS], o_[HD / 16][MMA_ACC];
#pragma unroll
        for (int r = 0; r < MMA_ROWS; r++) m_[r] = RFC_NEG_INF, l_[r] = 0.0f;
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) o_[dt][i] = 0.0f;

        // Split z's keys of the run: whole tiles, the splits in key order
        // (none where the run has fewer tiles than splits).
        const int len = ((hi - lo + 1 + splits - 1) / splits + KT - 1) / KT * KT;
        const int klo = lo + z * len, khi = min(hi, klo + len - 1);
        for (int kt0 = klo; kt0 <= khi; kt0 += KT) {
            __syncthreads();  // the previous tile's products are done
            // K rows as f16 (16-byte pieces along the row).
            for (int i = tid; i < KT * (HD / 8); i += PW * 32) {
                const int kk = i / (HD / 8), d8 = i % (HD / 8), kp = kt0 + kk;
                u4 kw = {0u, 0u, 0u, 0u};
                if (kp <= khi)
                    kw = kv_load8h<KV_K_TYPE>(kv + kv_key_offset(kv_cache_row(pages, pages_per_seq, s, kp)),
                                              g * HD + d8 * 8);
                *(u4*)(ks + kk * KP_PITCH + d8 * 8) = kw;
            }
            // V transposed: a lane takes two keys, so that each store is a
            // word and a warp's 32 stores hit 32 banks.
            for (int i = tid; i < (KT / 2) * (HD / 8); i += PW * 32) {
                const int kp2 = i % (KT / 2), d8 = i / (KT / 2), kp = kt0 + 2 * kp2;
                u4 v0 = {0u, 0u, 0u, 0u}, v1 = v0;
                if (kp <= khi)
                    v0 = kv_load8h<KV_V_TYPE>(kv + kv_value_offset(kv_cache_row(pages, pages_per_seq, s, kp)),
                                              g * HD + d8 * 8);
                if (kp + 1 <= khi)
                    v1 = kv_load8h<KV_V_TYPE>(kv + kv_value_offset(kv_cache_row(pages, pages_per_seq, s, kp + 1)),
                                              g * HD + d8 * 8);
                const u32 a[4] = {v0.x, v0.y, v0.z, v0.w}, b[4] = {v1.x, v1.y, v1.z, v1.w};
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const u32 lo16 = (a[e / 2] >> (16 * (e % 2))) & 0xffffu;
                    const u32 hi16 = (b[e / 2] >> (16 * (e % 2))) & 0xffffu;
                    *(u32*)(vt + (d8 * 8 + e) * VT_PITCH + 2 * kp2) = lo16 | (hi16 << 16);
                }
            }
            __syncthreads();
            if (whi < kt0 || wlo > kt0 + KT - 1) continue;  // no row of this warp sees the tile

            float sc[KT / 16][MMA_ACC];
#pragma unroll
            for (int nt = 0; nt < KT / 16; nt++) {
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) sc[nt][i] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk++) {
                    MmaB b;
                    mma_load_b(b, ks + nt * 16 * KP_PITCH + kk * 16, KP_PITCH);
                    mma_16x16x16(sc[nt], qh[kk], b);
                    mma_16x16x16(sc[nt], ql[kk], b);
                }
            }
            // Mask, then the online softmax of each row.
            float emax[MMA_ACC];
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) emax[i] = RFC_NEG_INF;
#pragma unroll
            for (int nt = 0; nt < KT / 16; nt++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    int m, n;
                    mma_acc_pos(lane, i, &m, &n);
                    const int r = mma_row_slot(i), kp = kt0 + nt * 16 + n;
                    sc[nt][i] = soft_cap(sc[nt][i]);
                    if (!act[r] || kp < rlo[r] || kp > rpos[r] || kp > khi) sc[nt][i] = RFC_NEG_INF;
                    emax[i] = fmaxf(emax[i], sc[nt][i]);
                }
            float tmax[MMA_ROWS], alpha[MMA_ROWS];
            mma_rows_max(emax, tmax);
#pragma unroll
            for (int r = 0; r < MMA_ROWS; r++) {
                const float m_new = fmaxf(m_[r], tmax[r]);
                alpha[r] = m_new == RFC_NEG_INF ? 1.0f : expf(m_[r] - m_new);
                m_[r] = m_new;
            }
#pragma unroll
            for (int dt = 0; dt < HD / 16; dt++)
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) o_[dt][i] *= alpha[mma_row_slot(i)];
            float esum[MMA_ACC];
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) esum[i] = 0.0f;
#pragma unroll
            for (int nt = 0; nt < KT / 16; nt++) {
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    const float mr = m_[mma_row_slot(i)];
                    const float e = mr == RFC_NEG_INF ? 0.0f : expf(sc[nt][i] - mr);
                    sc[nt][i] = e;
                    esum[i] += e;
                }
                MmaA ph, pl;
                mma_acc_to_a(sc[nt], ph, pl);
#pragma unroll
                for (int dt = 0; dt < HD / 16; dt++) {
                    MmaB b;
                    mma_load_b(b, vt + dt * 16 * VT_PITCH + nt * 16, VT_PITCH);
                    mma_16x16x16(o_[dt], ph, b);
                    mma_16x16x16(o_[dt], pl, b);
                }
            }
            float psum[MMA_ROWS];
            mma_rows_sum(esum, psum);
#pragma unroll
            for (int r = 0; r < MMA_ROWS; r++) l_[r] = l_[r] * alpha[r] + psum[r];
        }
#if V_ROT
        // Split partials stay rotated (attn_combine turns the sum back).
        if (splits == 1) unrotate_acc(o_);
#endif
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) {
                int m, n;
                mma_acc_pos(lane, i, &m, &n);
                const int r = mma_row_slot(i);
                if (!act[r]) continue;
                if (splits == 1) {
                    out[(u64)(t0 + rrow[r]) * ldo + h * HD + dt * 16 + n] = o_[dt][i] / l_[r];
                } else {
                    // attn_combine's layout; a row without keys in this
                    // split leaves max -inf, sum 0 (weight 0 there).
                    float* pp = part + ((u64)(t0 + rrow[r]) * NH + h) * splits * (HD + 2) + (u64)z * (HD + 2);
                    pp[2 + dt * 16 + n] = o_[dt][i];
                    if (dt == 0 && n < 2 && i % 2 == 0) pp[0] = m_[r], pp[1] = l_[r];
                }
            }
        r0 = r1;
    }
}
#else
// ---- prefill: tiles of QT queries x KT keys on the matrix units ----
// One block per QT queries and one query head; runs of consecutive queries
// of one sequence share their key tiles. Per tile of KT keys:
//   S = Q K^T: f16 operands, Q split into hi + lo (K is f16 already, so the
//     two products give the f32 scores); warps 0..NS/2-1 the hi product,
//     the others the lo one, into two score tiles;
//   online softmax on the SIMT lanes (8 threads per query row), P = p_hi +
//     p_lo as f16 into shared memory;
//   O = O * alpha + P V: f16 operands (V exact), f32 accumulators that stay
//     in registers across the tiles.
// Shared: K tile [KT][HD+8], V transposed [HD][KT+8] (so that both products
// read K-contiguous rows, prelude.h), scores, P.

#define QT_TILES (QT / 16)
#define KT_TILES (KT / 16)
#define NS (2 * QT_TILES * KT_TILES)  // score tile products (hi and lo)
#define O_TILES (QT_TILES * (HD / 16))
#define O_PER_WARP ((O_TILES + 7) / 8)
#define KP_PITCH (HD + 8)
#define VT_PITCH (KT + 8)
#define SP (KT + 1)
#define RT (256 / QT)  // softmax threads per query row
static_assert(NS <= 8, "one score tile product per warp");
static_assert(KT % RT == 0, "whole keys per softmax thread");

RFC_KERNEL __launch_bounds__(256) void attn_prefill(const float* __restrict__ q, int ldq,
                                                    const u8* __restrict__ kv,
                                                    const int* __restrict__ pos,
                                                    const int* __restrict__ seq,
                                                    const int* __restrict__ pages, int pages_per_seq,
                                                    float* __restrict__ out, int ldo, int T,
                                                    float* __restrict__ part, int splits) {
    // One split only (AttentionKernelSpec::prefill_splits); the host
    // never asks this kernel for more.
    (void)part, (void)splits;
    // K tile and V^T; at the start, Q's hi and lo halves.
    __shared__ __attribute__((aligned(16))) u16 kvs[(KT * KP_PITCH + HD * VT_PITCH) > (2 * QT * KP_PITCH)
                                                        ? (KT * KP_PITCH + HD * VT_PITCH)
                                                        : (2 * QT * KP_PITCH)];
    __shared__ float ss[2][QT][SP];
    __shared__ __attribute__((aligned(16))) u16 ps[2][QT][VT_PITCH];
    __shared__ float alpha_s[QT], l_s[QT];
    u16* const ks = kvs;
    u16* const vt = kvs + KT * KP_PITCH;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int h = blockIdx.y, g = h / GROUP;
    const int t0 = blockIdx.x * QT;
    const int nq = min(QT, T - t0);
    const float scale = bits_f32(SCALE_BITS);

    // Q (scaled) as f16 hi + lo, then each score warp's fragments.
#if K_ROT
    for (int r = warp; r < QT; r += 8) {
        float v[HE];
        rotated_q(r < nq ? q + (u64)(t0 + r) * ldq + h * HD : nullptr, KEY_LEVELS ? 1.0f : scale, v);
#if KEY_LEVELS
        q8_levels<HE>(v);
#pragma unroll
        for (int e = 0; e < HE; e++) v[e] *= scale;
#endif
#pragma unroll
        for (int e = 0; e < HE; e++) {
            const int dd = lane * HE + e;
            const u16 hi = f2h(v[e]);
            kvs[r * KP_PITCH + dd] = hi;
            kvs[(QT + r) * KP_PITCH + dd] = f2h(v[e] - h2f(hi));
        }
    }
#else
    for (int i = tid; i < QT * HD; i += 256) {
        const int r = i / HD, dd = i % HD;
        float v = r < nq ? q[(u64)(t0 + r) * ldq + h * HD + dd] : 0.0f;
#if KEY_LEVELS
        q8_levels<1>(&v);  // a warp's 32 consecutive elements: one block
#endif
        v *= scale;
        const u16 hi = f2h(v);
        kvs[r * KP_PITCH + dd] = hi;
        kvs[(QT + r) * KP_PITCH + dd] = f2h(v - h2f(hi));
    }
#endif
    __syncthreads();
    // Score warp w: term w / (NS/2) (0 hi, 1 lo), query tile and key tile.
    const bool s_warp = warp < NS;
    const int s_term = warp / (NS / 2), s_qt = (warp % (NS / 2)) / KT_TILES, s_kt = warp % KT_TILES;
    MmaA qf[HD / 16];
    if (s_warp) {
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
            mma_load_a(qf[kk], kvs + (s_term * QT + s_qt * 16) * KP_PITCH + kk * 16, KP_PITCH);
    }
    __syncthreads();

    // Softmax thread: row sr, keys sk, sk + RT, ...
    const int sr = tid / RT, sk = tid % RT;
    const bool row_live = sr < nq;
    const int my_p = row_live ? pos[t0 + sr] : -1;
    const int my_lo = row_live ? key_lo(my_p) : 0;

    for (int r0 = 0; r0 < nq;) {
        const int s = seq[t0 + r0];
        int r1 = r0, lo = 0x7fffffff, hi = -1;
        while (r1 < nq && seq[t0 + r1] == s) {
            int p = pos[t0 + r1];
            lo = min(lo, key_lo(p));
            hi = max(hi, p);
            r1++;
        }
        const bool act = row_live && sr >= r0 && sr < r1;
        float m = RFC_NEG_INF, l = 0.0f;
        float o[O_PER_WARP][MMA_ACC];
#pragma unroll
        for (int j = 0; j < O_PER_WARP; j++)
#pragma unroll
            for (int i = 0; i < MMA_ACC; i++) o[j][i] = 0.0f;

        for (int kt0 = lo; kt0 <= hi; kt0 += KT) {
            __syncthreads();  // the previous tile's products are done
            // K rows as f16; V rows as f16, transposed into vt[d][key].
            for (int i = tid; i < KT * (HD / 8); i += 256) {
                const int kk = i / (HD / 8), d8 = i % (HD / 8), kp = kt0 + kk;
                u4 kw = {0u, 0u, 0u, 0u}, vw = kw;
                if (kp <= hi) {
                    const u32 row = kv_cache_row(pages, pages_per_seq, s, kp);
                    kw = kv_load8h<KV_K_TYPE>(kv + kv_key_offset(row), g * HD + d8 * 8);
                    vw = kv_load8h<KV_V_TYPE>(kv + kv_value_offset(row), g * HD + d8 * 8);
                }
                *(u4*)(ks + kk * KP_PITCH + d8 * 8) = kw;
                const u32 vv[4] = {vw.x, vw.y, vw.z, vw.w};
#pragma unroll
                for (int e = 0; e < 8; e++) vt[(d8 * 8 + e) * VT_PITCH + kk] = (u16)(vv[e / 2] >> (16 * (e % 2)));
            }
            __syncthreads();
            if (s_warp) {
                float acc[MMA_ACC];
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) acc[i] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk++) {
                    MmaB b;
                    mma_load_b(b, ks + s_kt * 16 * KP_PITCH + kk * 16, KP_PITCH);
                    mma_16x16x16(acc, qf[kk], b);
                }
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    int mm, nn;
                    mma_acc_pos(lane, i, &mm, &nn);
                    ss[s_term][s_qt * 16 + mm][s_kt * 16 + nn] = acc[i];
                }
            }
            __syncthreads();
            // Online softmax of row sr over this tile.
            float sc[KT / RT];
            float tmax = RFC_NEG_INF;
#pragma unroll
            for (int j = 0; j < KT / RT; j++) {
                const int kk = sk + RT * j, kp = kt0 + kk;
                float v = RFC_NEG_INF;
                if (act && kp >= my_lo && kp <= my_p) v = soft_cap(ss[0][sr][kk] + ss[1][sr][kk]);
                sc[j] = v;
                tmax = fmaxf(tmax, v);
            }
            tmax = group_max(tmax, RT);
            const float m_new = fmaxf(m, tmax);
            float alpha = 1.0f, psum = 0.0f;
#pragma unroll
            for (int j = 0; j < KT / RT; j++) {
                const float e = m_new == RFC_NEG_INF ? 0.0f : expf(sc[j] - m_new);
                const u16 eh = f2h(e);
                ps[0][sr][sk + RT * j] = eh;
                ps[1][sr][sk + RT * j] = f2h(e - h2f(eh));
                psum += e;
            }
            if (m_new != RFC_NEG_INF) alpha = expf(m - m_new);
            psum = group_sum(psum, RT);
            l = l * alpha + psum;
            m = m_new;
            if (sk == 0) alpha_s[sr] = alpha;
            __syncthreads();
            // O = O * alpha + P V for this warp's output tiles.
#pragma unroll
            for (int j = 0; j < O_PER_WARP; j++) {
                const int ot = warp + 8 * j;
                if (ot < O_TILES) {
                    const int oq = ot / (HD / 16), od = ot % (HD / 16);
#pragma unroll
                    for (int i = 0; i < MMA_ACC; i++) {
                        int mm, nn;
                        mma_acc_pos(lane, i, &mm, &nn);
                        o[j][i] *= alpha_s[oq * 16 + mm];
                    }
#pragma unroll
                    for (int kk = 0; kk < KT / 16; kk++) {
                        MmaB b;
                        mma_load_b(b, vt + od * 16 * VT_PITCH + kk * 16, VT_PITCH);
                        MmaA a;
                        mma_load_a(a, &ps[0][oq * 16][kk * 16], VT_PITCH);
                        mma_16x16x16(o[j], a, b);
                        mma_load_a(a, &ps[1][oq * 16][kk * 16], VT_PITCH);
                        mma_16x16x16(o[j], a, b);
                    }
                }
            }
        }
        if (sk == 0) l_s[sr] = l;
        __syncthreads();
#if V_ROT
        // The rows through shared memory (the tiles are done with it), so
        // that each is whole in one group of lanes to be turned back.
        float* os_ = (float*)kvs;
#endif
#pragma unroll
        for (int j = 0; j < O_PER_WARP; j++) {
            const int ot = warp + 8 * j;
            if (ot < O_TILES) {
                const int oq = ot / (HD / 16), od = ot % (HD / 16);
#pragma unroll
                for (int i = 0; i < MMA_ACC; i++) {
                    int mm, nn;
                    mma_acc_pos(lane, i, &mm, &nn);
                    const int r = oq * 16 + mm;
                    if (r >= r0 && r < r1 && r < nq)
#if V_ROT
                        os_[r * HD + od * 16 + nn] = o[j][i] / l_s[r];
#else
                        out[(u64)(t0 + r) * ldo + h * HD + od * 16 + nn] = o[j][i] / l_s[r];
#endif
                }
            }
        }
#if V_ROT
        __syncthreads();
        for (int r = warp; r < QT; r += 8) {
            if (r < r0 || r >= r1 || r >= nq) continue;
            float v[HE];
#pragma unroll
            for (int e = 0; e < HE; e++) v[e] = os_[r * HD + lane * HE + e];
            unrotated_out(v, out + (u64)(t0 + r) * ldo + h * HD);
        }
        __syncthreads();  // the next run stages its tiles there
#endif
        r0 = r1;
    }
}
#endif
