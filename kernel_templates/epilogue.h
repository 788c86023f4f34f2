// The fused matmul epilogue, shared by matvec.hip and matmul.hip.
//
// A matmul's output columns ("physical rows" of the concatenated weights
// W = [W0, W1, ...], N_PHYS of them) are computed in pairs: item c of
// N_PHYS/2 yields rows (A, B) whose values the epilogue needs together:
//   SwiGLU:  A = gate row c, B = up row FF + c      -> out[c] = silu(a) * b
//            (GeGLU: gelu_tanh(a) * b)
//   RoPE:    the two elements one rotation mixes (within the first
//            ROPE_HEADS heads), then adjacent pairs for the columns after
//   plain:   A = 2c, B = 2c + 1
// Order: bias, RoPE, KV-cache store, SwiGLU, residual, store.
//
// Defines read here (0 when absent): EPI_BIAS (+ SEGi_BIAS), EPI_ROPE (+
// ROPE_HD, ROPE_NEOX, ROPE_HEADS and the angle's defines of rope.h),
// EPI_KV (+ KV_K_COL, KV_V_COL, KV_DIM, PAGE_SIZE), EPI_SWIGLU (+ FF;
// EPI_GEGLU: the gate through the tanh GELU instead of SiLU), EPI_RESIDUAL.

#ifndef EPI_BIAS
#define EPI_BIAS 0
#endif
#ifndef EPI_ROPE
#define EPI_ROPE 0
#endif
#ifndef EPI_KV
#define EPI_KV 0
#endif
#ifndef EPI_SWIGLU
#define EPI_SWIGLU 0
#endif
#ifndef EPI_GEGLU
#define EPI_GEGLU 0
#endif
#ifndef EPI_RESIDUAL
#define EPI_RESIDUAL 0
#endif
#ifndef PROLOGUE_RMS
#define PROLOGUE_RMS 0
#endif
#ifndef SEG1_ROWS
#define SEG1_ROWS 0
#define SEG1_TYPE T_F32
#endif
#ifndef SEG2_ROWS
#define SEG2_ROWS 0
#define SEG2_TYPE T_F32
#endif
#ifndef SEG3_ROWS
#define SEG3_ROWS 0
#define SEG3_TYPE T_F32
#endif
#ifndef SEG0_BIAS
#define SEG0_BIAS 0
#endif
#ifndef SEG1_BIAS
#define SEG1_BIAS 0
#endif
#ifndef SEG2_BIAS
#define SEG2_BIAS 0
#endif
#ifndef SEG3_BIAS
#define SEG3_BIAS 0
#endif

#define SEG0_END (SEG0_ROWS)
#define SEG1_END (SEG0_END + SEG1_ROWS)
#define SEG2_END (SEG1_END + SEG2_ROWS)
#define SEG3_END (SEG2_END + SEG3_ROWS)
#define N_PHYS SEG3_END
#define N_ITEMS (N_PHYS / 2)
#if EPI_SWIGLU
#define OUT_COLS (N_PHYS / 2)
#else
#define OUT_COLS N_PHYS
#endif

// Every matmul kernel takes the same parameters; unused ones are null.
#define MATMUL_PARAMS                                                              \
    const float *__restrict__ x, int ldx, const u8 *__restrict__ w0,                \
        const u8 *__restrict__ w1, const u8 *__restrict__ w2,                       \
        const u8 *__restrict__ w3, const float *__restrict__ b0,                    \
        const float *__restrict__ b1, const float *__restrict__ b2,                 \
        const float *__restrict__ b3, const float *__restrict__ norm,               \
        const float *residual, int ldr, float *out, int ldo,                        \
        const int *__restrict__ pos, const int *__restrict__ seq,                   \
        const int *__restrict__ pages, int pages_per_seq, u16 *kv, int T,          \
        const float *__restrict__ rope_freqs

struct Epi {
    const float *b0, *b1, *b2, *b3;
    const float* residual;
    int ldr;
    float* out;
    int ldo;
    const int *pos, *seq, *pages;
    int pages_per_seq;
    u16* kv;
    const float* freqs;
};

RFC_DEV void pair_rows(int c, int* a, int* b) {
#if EPI_SWIGLU
    *a = c;
    *b = FF + c;
#elif EPI_ROPE
    const int pairs = ROPE_HEADS * (ROPE_HD / 2);
    if (c < pairs) {
        int h = c / (ROPE_HD / 2), i = c % (ROPE_HD / 2);
#if ROPE_NEOX
        *a = h * ROPE_HD + i;
        *b = *a + ROPE_HD / 2;
#else
        *a = h * ROPE_HD + 2 * i;
        *b = *a + 1;
#endif
    } else {
        *a = ROPE_HEADS * ROPE_HD + 2 * (c - pairs);
        *b = *a + 1;
    }
#else
    *a = 2 * c;
    *b = 2 * c + 1;
#endif
}

RFC_DEV float bias_of(const Epi& e, int r) {
#if EPI_BIAS
    if (r < SEG0_END) return SEG0_BIAS ? e.b0[r] : 0.0f;
    if (r < SEG1_END) return SEG1_BIAS ? e.b1[r - SEG0_END] : 0.0f;
    if (r < SEG2_END) return SEG2_BIAS ? e.b2[r - SEG1_END] : 0.0f;
    return SEG3_BIAS ? e.b3[r - SEG2_END] : 0.0f;
#else
    return 0.0f;
#endif
}

#if EPI_KV
RFC_DEV void kv_put(const Epi& e, int t, int r, float v) {
    bool is_k = r >= KV_K_COL && r < KV_K_COL + KV_DIM;
    bool is_v = r >= KV_V_COL && r < KV_V_COL + KV_DIM;
    if (!is_k && !is_v) return;
    int p = e.pos[t];
    int page = e.pages[e.seq[t] * e.pages_per_seq + p / PAGE_SIZE];
    // The f16 cache's page: PAGE_SIZE key rows, then the value rows
    // (kv_cache.h, codegen/kv_layout.rs).
    u64 row = (u64)page * (2 * PAGE_SIZE) + (is_k ? 0 : PAGE_SIZE) + (u64)(p % PAGE_SIZE);
    u64 col = is_k ? (u64)(r - KV_K_COL) : (u64)(r - KV_V_COL);
    e.kv[row * KV_DIM + col] = f2h(v);
}
#endif

// Finishes item c of token t from the two raw dot products.
RFC_DEV void epilogue_pair(const Epi& e, int t, int c, float a, float b) {
    int ra, rb;
    pair_rows(c, &ra, &rb);
    a += bias_of(e, ra);
    b += bias_of(e, rb);
#if EPI_ROPE
    if (c < ROPE_HEADS * (ROPE_HD / 2)) {
        float sn, cs;
        rope_cos_sin(e.pos[t], c % (ROPE_HD / 2), e.freqs, &cs, &sn);
        float a2 = a * cs - b * sn;
        b = a * sn + b * cs;
        a = a2;
    }
#endif
#if EPI_KV
    kv_put(e, t, ra, a);
    kv_put(e, t, rb, b);
#endif
#if EPI_SWIGLU
#if EPI_GEGLU
    float v = gelu_tanh(a) * b;
#else
    float v = silu(a) * b;
#endif
#if EPI_RESIDUAL
    v += e.residual[(u64)t * e.ldr + c];
#endif
    e.out[(u64)t * e.ldo + c] = v;
#else
#if EPI_RESIDUAL
    a += e.residual[(u64)t * e.ldr + ra];
    b += e.residual[(u64)t * e.ldr + rb];
#endif
    e.out[(u64)t * e.ldo + ra] = a;
    e.out[(u64)t * e.ldo + rb] = b;
#endif
}

#define MAKE_EPI {b0, b1, b2, b3, residual, ldr, out, ldo, pos, seq, pages, pages_per_seq, kv, rope_freqs}

// Row r of the concatenated weights, by segment.
RFC_DEV const u8* weight_row(int r, const u8* w0, const u8* w1, const u8* w2, const u8* w3) {
    if (r < SEG0_END) return w0 + (u64)r * row_bytes<SEG0_TYPE>(K);
    if (r < SEG1_END) return w1 + (u64)(r - SEG0_END) * row_bytes<SEG1_TYPE>(K);
    if (r < SEG2_END) return w2 + (u64)(r - SEG1_END) * row_bytes<SEG2_TYPE>(K);
    return w3 + (u64)(r - SEG2_END) * row_bytes<SEG3_TYPE>(K);
}

// Calls F<TYPE>(row pointer) for row r's segment type.
#define WITH_ROW_TYPE(r, F, ...)                                                        \
    do {                                                                                \
        const u8* row_ = weight_row(r, w0, w1, w2, w3);                                  \
        if ((r) < SEG0_END) F<SEG0_TYPE>(row_, __VA_ARGS__);                             \
        else if ((r) < SEG1_END) F<SEG1_TYPE>(row_, __VA_ARGS__);                        \
        else if ((r) < SEG2_END) F<SEG2_TYPE>(row_, __VA_ARGS__);                        \
        else F<SEG3_TYPE>(row_, __VA_ARGS__);                                            \
    } while (0)
