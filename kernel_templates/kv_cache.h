// The paged KV cache (codegen/kv_layout.rs). A page is PAGE_SIZE key rows,
// then PAGE_SIZE value rows; a row is one token's KV_DIM keys (values) of
// every kv head in the element type KV_K_TYPE (KV_V_TYPE), KV_K_ROW
// (KV_V_ROW) bytes. Types are ggml's ids; the 32-element block types are
// laid out as ggml's, and their rows are stored rotated by the
// Walsh–Hadamard transform of K_ROT (V_ROT) elements (0: none) with scale
// K_ROT_SCALE_BITS (V_ROT_SCALE_BITS), as the CPU cache stores them
// (exec/cpu/kv_cache.rs, exec/cpu/hadamard.rs).
//
// Here, per type (KvBlock<TY>): the quantizer kv_store writes with, the
// CPU's arithmetic operation for operation (never fused), so both caches
// hold the same bytes; the loads attention reads with (8 elements as f32,
// or as f16 for the matrix units); and Q8_0/Q4_0 keys as int8 words for
// integer dots against q in Q8_0, as the CPU scores them.

#define KVT_F32 0
#define KVT_F16 1
#define KVT_Q4_0 2
#define KVT_Q5_1 7
#define KVT_Q8_0 8
#define KVT_IQ4_NL 20
#define KVT_BF16 30

#define KV_PAGE_BYTES ((u64)PAGE_SIZE * (KV_K_ROW + KV_V_ROW))

// Keys scored in integers against q in Q8_0 (the CPU's key_dot.rs).
#define KEY_LEVELS (KV_K_TYPE == KVT_Q8_0 || KV_K_TYPE == KVT_Q4_0)

// Cache row (page * PAGE_SIZE + slot) of position kp of sequence s
// (unsigned: the divisions by PAGE_SIZE below are shifts).
RFC_DEV u32 kv_cache_row(const int* pages, int pages_per_seq, int s, int kp) {
    return (u32)pages[s * pages_per_seq + kp / PAGE_SIZE] * PAGE_SIZE + (u32)(kp % PAGE_SIZE);
}

// Byte offsets of a cache row's keys and values.
RFC_DEV u64 kv_key_offset(u32 row) {
    return (u64)(row / PAGE_SIZE) * KV_PAGE_BYTES + (u64)(row % PAGE_SIZE) * KV_K_ROW;
}
RFC_DEV u64 kv_value_offset(u32 row) {
    return (u64)(row / PAGE_SIZE) * KV_PAGE_BYTES + (u64)PAGE_SIZE * KV_K_ROW + (u64)(row % PAGE_SIZE) * KV_V_ROW;
}

// ---- arithmetic as the CPU rounds it ----------------------------------------
// Each product and sum rounded on its own: the compilers would otherwise
// fuse a multiply and an add (one rounding), and a level could differ from
// the CPU's where x * id + 0.5 lies next to an integer.
#if RFC_CUDA
RFC_DEV float kv_fmul(float a, float b) { return __fmul_rn(a, b); }
RFC_DEV float kv_fadd(float a, float b) { return __fadd_rn(a, b); }
RFC_DEV double kv_dmul(double a, double b) { return __dmul_rn(a, b); }
RFC_DEV double kv_dadd(double a, double b) { return __dadd_rn(a, b); }
#else
RFC_DEV float kv_fmul(float a, float b) {
#pragma clang fp contract(off)
    return a * b;
}
RFC_DEV float kv_fadd(float a, float b) {
#pragma clang fp contract(off)
    return a + b;
}
RFC_DEV double kv_dmul(double a, double b) {
#pragma clang fp contract(off)
    return a * b;
}
RFC_DEV double kv_dadd(double a, double b) {
#pragma clang fp contract(off)
    return a + b;
}
#endif

RFC_DEV void kv_put_half(u8* p, u16 h) { *(u16*)p = h; }

// The largest-magnitude element with its sign (the first on ties).
RFC_DEV float kv_signed_absmax(const float* x) {
    float best = 0.0f, best_abs = 0.0f;
    for (int i = 0; i < 32; i++) {
        if (fabsf(x[i]) > best_abs) {
            best_abs = fabsf(x[i]);
            best = x[i];
        }
    }
    return best;
}

// Four bytes from a 2-byte aligned address, as a word.
RFC_DEV u32 kv_word(const u8* p) { return ld_u32_a2(p); }

// Eight f32 as eight f16, packed.
RFC_DEV u32x4 kv_pack8h(const float* f) {
    u32 w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) w[i] = (u32)f2h(f[2 * i]) | ((u32)f2h(f[2 * i + 1]) << 16);
    u32x4 r;
    r.x = w[0], r.y = w[1], r.z = w[2], r.w = w[3];
    return r;
}

// Nibble `shift` (0 or 4) of eight bytes of a 16-byte run of a block:
// elements o..o+7 (o a multiple of 8) of Q4_0/IQ4_NL's order (byte j holds
// element j low, j + 16 high).
RFC_DEV void kv_nibbles8(const u8* qs, int o, int* n) {
    const u8* p = qs + (o & 15);
    const int shift = o >= 16 ? 4 : 0;
    const u32 a = kv_word(p), b = kv_word(p + 4);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        n[e] = (int)((a >> (8 * e + shift)) & 0xf);
        n[e + 4] = (int)((b >> (8 * e + shift)) & 0xf);
    }
}

// ---- element types -----------------------------------------------------------
// KvBlock<TY>: LEN elements in BYTES; put(x, dst) encodes LEN floats;
// load8(row, c, f) decodes elements c..c+7 of a row (c a multiple of 8).
template <int TY> struct KvBlock;

template <> struct KvBlock<KVT_F32> {
    enum { LEN = 1, BYTES = 4 };
    static RFC_DEVT void put(const float* x, u8* d) { *(float*)d = x[0]; }
    static RFC_DEVT void load8(const u8* row, int c, float* f) {
        const float* p = (const float*)row + c;
        const f4 a = ld_f4(p), b = ld_f4(p + 4);
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
        f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
    }
};

template <> struct KvBlock<KVT_F16> {
    enum { LEN = 1, BYTES = 2 };
    static RFC_DEVT void put(const float* x, u8* d) { kv_put_half(d, f2h(x[0])); }
    static RFC_DEVT void load8(const u8* row, int c, float* f) {
        const u32x4 v = *(const u32x4*)(row + 2 * c);
        const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = h2f((u16)(w[e / 2] >> (16 * (e % 2))));
    }
};

// BF16: the top half of an f32, rounded to nearest even; NaN stays NaN.
template <> struct KvBlock<KVT_BF16> {
    enum { LEN = 1, BYTES = 2 };
    static RFC_DEVT void put(const float* x, u8* d) {
        const u32 b = f32_bits(x[0]);
        u16 h;
        if ((b & 0x7fffffffu) > 0x7f800000u) h = (u16)((b >> 16) | 0x40u);
        else h = (u16)(((u64)b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
        kv_put_half(d, h);
    }
    static RFC_DEVT void load8(const u8* row, int c, float* f) {
        const u32x4 v = *(const u32x4*)(row + 2 * c);
        const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = bits_f32(e % 2 ? w[e / 2] & 0xffff0000u : w[e / 2] << 16);
    }
};

// Q8_0: d (f16), 32 int8 levels; d = absmax / 127, levels rounded half
// away from zero with the unrounded 1/d.
template <> struct KvBlock<KVT_Q8_0> {
    enum { LEN = 32, BYTES = 34 };
    static RFC_DEVT void put(const float* x, u8* d) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        const float s = amax / 127.0f;
        const float id = s != 0.0f ? 1.0f / s : 0.0f;
        kv_put_half(d, f2h(s));
        for (int i = 0; i < 32; i++) d[2 + i] = (u8)(i8)(int)roundf(kv_fmul(x[i], id));
    }
    static RFC_DEVT void load8(const u8* row, int c, float* f) {
        const u8* b = row + (c / 32) * 34;
        const float s = ld_half(b);
        const u8* q = b + 2 + c % 32;
        const u32 w0 = kv_word(q), w1 = kv_word(q + 4);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            f[e] = s * (float)(i8)(w0 >> (8 * e));
            f[e + 4] = s * (float)(i8)(w1 >> (8 * e));
        }
    }
};

// Q4_0: d (f16), 16 bytes of nibbles q - 8; d maps the largest-magnitude
// element to -8.
template <> struct KvBlock<KVT_Q4_0> {
    enum { LEN = 32, BYTES = 18 };
    static RFC_DEVT int level(float v, float id) {
        const int q = (int)truncf(kv_fadd(kv_fmul(v, id), 8.5f));
        return min(15, max(0, q));
    }
    static RFC_DEVT void put(const float* x, u8* d) {
        const float s = kv_signed_absmax(x) / -8.0f;
        const float id = s != 0.0f ? 1.0f / s : 0.0f;
        kv_put_half(d, f2h(s));
        for (int j = 0; j < 16; j++) d[2 + j] = (u8)(level(x[j], id) | (level(x[j + 16], id) << 4));
    }
    static RFC_DEVT void load8(const u8* row, int c, float* f) {
        const u8* b = row + (c / 32) * 18;
        const float s = ld_half(b);
        int n[8];
        kv_nibbles8(b + 2, c % 32, n);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = s * (float)(n[e] - 8);
    }
};

// Q5_1: d, m (f16), the fifth bits (u32), 16 bytes of nibbles; x = d q + m
// over min..max in 31 steps.
template <> struct KvBlock<KVT_Q5_1> {
    enum { LEN = 32, BYTES = 24 };
    static RFC_DEVT void put(const float* x, u8* d) {
        float lo = x[0], hi = x[0];
        for (int i = 0; i < 32; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
        const float s = (hi - lo) / 31.0f;
        const float id = s != 0.0f ? 1.0f / s : 0.0f;
        u32 qh = 0;
        u8 q[32];
        for (int i = 0; i < 32; i++) {
            q[i] = (u8)min(31, max(0, (int)truncf(kv_fadd(kv_fmul(x[i] - lo, id), 0.5f))));
            qh |= (u32)(q[i] >> 4) << i;
        }
        kv_put_half(d, f2h(s));
        kv_put_half(d + 2, f2h(lo));
        kv_put_half(d + 4, (u16)(qh & 0xffff));
        kv_put_half(d + 6, (u16)(qh >> 16));
        for (int j = 0; j < 16; j++) d[8 + j] = (u8)((q[j] & 0xf) | ((q[j + 16] & 0xf) << 4));
    }
    static RFC_DEVT void load8(const u8* row, int c, float* f) {
        const u8* b = row + (c / 32) * 24;
        const float s = ld_half(b), m = ld_half(b + 2);
        const u32 qh = kv_word(b + 4);
        const int o = c % 32;
        int n[8];
        kv_nibbles8(b + 8, o, n);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = s * (float)(n[e] | (int)(((qh >> (o + e)) & 1) << 4)) + m;
    }
};

// IQ4_NL: d (f16), 16 bytes of indices into ggml's non-linear levels.
#if KV_K_TYPE == KVT_IQ4_NL || KV_V_TYPE == KVT_IQ4_NL
__constant__ i8 kv_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// The index of the level nearest v (the lower on a tie).
RFC_DEV int kv_nearest_iq4(float v) {
    int best = 0;
    float err = bits_f32(0x7f800000u);
    for (int k = 0; k < 16; k++) {
        const float e = fabsf((float)kv_iq4nl[k] - v);
        if (e < err) best = k, err = e;
    }
    return best;
}

template <> struct KvBlock<KVT_IQ4_NL> {
    enum { LEN = 32, BYTES = 18 };
    // The least-squares scale over a fan of 15 inverse scales around
    // -127 / max (quant/blocks/iq4.rs's fit_group, in f64 as there).
    static RFC_DEVT float fit(const float* x) {
        const float mx = kv_signed_absmax(x);
        if (mx == 0.0f) return 0.0f;
        double best_gain = 0.0;
        float best = 0.0f;
        for (int k = -7; k <= 7; k++) {
            const float id = (float)(-127 + k) / mx;
            double sumqx = 0.0, sumq2 = 0.0;
            for (int i = 0; i < 32; i++) {
                const double q = (double)kv_iq4nl[kv_nearest_iq4(kv_fmul(id, x[i]))];
                sumqx = kv_dadd(sumqx, kv_dmul(q, (double)x[i]));
                sumq2 = kv_dadd(sumq2, kv_dmul(q, q));
            }
            const double gain = kv_dmul(sumqx, sumqx) / sumq2;
            if (sumq2 > 0.0 && gain > best_gain) best_gain = gain, best = (float)(sumqx / sumq2);
        }
        return best;
    }
    static RFC_DEVT void put(const float* x, u8* d) {
        const u16 s = f2h(fit(x));
        const float sf = h2f(s);
        const float id = sf == 0.0f ? 0.0f : 1.0f / sf;
        kv_put_half(d, s);
        for (int j = 0; j < 16; j++)
            d[2 + j] = (u8)(kv_nearest_iq4(kv_fmul(id, x[j])) | (kv_nearest_iq4(kv_fmul(id, x[j + 16])) << 4));
    }
    static RFC_DEVT void load8(const u8* row, int c, float* f) {
        const u8* b = row + (c / 32) * 18;
        const float s = ld_half(b);
        int n[8];
        kv_nibbles8(b + 2, c % 32, n);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = s * (float)kv_iq4nl[n[e]];
    }
};
#endif

// Elements c..c+7 of a row as f16 (the prefill tiles' operands): an f16
// row as it is, any other type decoded and rounded.
template <int TY> RFC_DEVT u32x4 kv_load8h(const u8* row, int c) {
    float f[8];
    KvBlock<TY>::load8(row, c, f);
    return kv_pack8h(f);
}
template <> RFC_DEVT u32x4 kv_load8h<KVT_F16>(const u8* row, int c) { return *(const u32x4*)(row + 2 * c); }

// Levels of the block of a Q8_0 or Q4_0 key row holding elements c..c+31
// as eight words of four int8 (element order), and its scale.
template <int TY> RFC_DEVT float kv_key_levels(const u8* row, int c, int* w);
template <> RFC_DEVT float kv_key_levels<KVT_Q8_0>(const u8* row, int c, int* w) {
    const u8* b = row + (c / 32) * 34;
#pragma unroll
    for (int i = 0; i < 8; i++) w[i] = (int)kv_word(b + 2 + 4 * i);
    return ld_half(b);
}
// Four nibbles (0..15) per word, each made n - 8 in its byte.
RFC_DEV int kv_minus8(u32 n) { return (int)(((n | 0x80808080u) - 0x08080808u) ^ 0x80808080u); }
template <> RFC_DEVT float kv_key_levels<KVT_Q4_0>(const u8* row, int c, int* w) {
    const u8* b = row + (c / 32) * 18;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const u32 x = kv_word(b + 2 + 4 * i);
        w[i] = kv_minus8(x & 0x0f0f0f0fu);
        w[i + 4] = kv_minus8((x >> 4) & 0x0f0f0f0fu);
    }
    return ld_half(b);
}

// ---- the rotation ------------------------------------------------------------
// v <- H v over runs of N elements of a row of 32 * E elements spread over
// a group of 32 lanes, E consecutive elements a lane (element lane*E + e in
// v[e]); N a power of two, E <= N <= 32 E. The CPU's butterflies in its
// order, each pair formed as it forms them (a + b, a - b), then the scale:
// bit for bit hadamard::rotate. Every lane of the group must call it.
template <int E, int N> RFC_DEVT void kv_hadamard_warp(float* v, float scale) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int h = 1; h < N; h <<= 1) {
        if (h < E) {
#pragma unroll
            for (int j = 0; j < E; j++) {
                if (j & h) continue;
                const float a = v[j], b = v[j + h];
                v[j] = a + b;
                v[j + h] = a - b;
            }
        } else {
            const bool upper = (lane & (h / E)) != 0;
#pragma unroll
            for (int j = 0; j < E; j++) {
                const float o = rfc_shfl_xor(v[j], h / E);
                v[j] = upper ? o - v[j] : v[j] + o;
            }
        }
    }
#pragma unroll
    for (int j = 0; j < E; j++) v[j] *= scale;
}
