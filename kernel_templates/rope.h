// The RoPE angle of one pair, shared by the matmul epilogue (epilogue.h,
// EPI_ROPE) and the standalone kernel (elementwise.hip): the CPU backend's
// src/exec/cpu/rope.rs, llama.cpp's rope with its scalings.
//
// Defines (with ROPE_HD): ROPE_THETA_SCALE_BITS (s = base^(-2/head_dim)),
// ROPE_FREQ_SCALE_BITS, ROPE_FREQS (divide by freqs[i]), ROPE_MSCALE_BITS
// (scales cos and sin; absent: 1), ROPE_YARN + ROPE_YARN_LOW_BITS /
// ROPE_YARN_HIGH_BITS (YaRN's correction range of pair indices).

#ifdef ROPE_HD
#ifndef ROPE_FREQS
#define ROPE_FREQS 0
#endif
#ifndef ROPE_YARN
#define ROPE_YARN 0
#endif

// cos and sin of pair i's angle at position p: p * s^i by repeated f32
// multiplication (as ggml forms it), divided by the pair's frequency
// factor (the extrapolated angle), times freq_scale (the interpolated one);
// YaRN blends the two by a ramp over the pair index. Both scaled by mscale.
RFC_DEV void rope_cos_sin(int p, int i, const float* freqs, float* cs, float* sn) {
    const float s = bits_f32(ROPE_THETA_SCALE_BITS);
    float extrap = (float)p;
    for (int j = 0; j < i; j++) extrap *= s;
#if ROPE_FREQS
    extrap = extrap / freqs[i];
#endif
    float th = bits_f32(ROPE_FREQ_SCALE_BITS) * extrap;
#if ROPE_YARN
    const float lo = bits_f32(ROPE_YARN_LOW_BITS), hi = bits_f32(ROPE_YARN_HIGH_BITS);
    const float y = ((float)i - lo) / fmaxf(hi - lo, 0.001f);
    const float mix = 1.0f - fminf(fmaxf(y, 0.0f), 1.0f);
    th = th * (1.0f - mix) + extrap * mix;
#endif
    sincosf(th, sn, cs);
#ifdef ROPE_MSCALE_BITS
    *cs *= bits_f32(ROPE_MSCALE_BITS);
    *sn *= bits_f32(ROPE_MSCALE_BITS);
#endif
}
#endif
