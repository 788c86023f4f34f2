// Mixture of experts (Mixtral, Qwen3-MoE): the router's top-k, and the
// routed SwiGLU feed-forward, one selected slot of every token a launch.
//
// The expert a token's slot names is read on the device from the route
// (f32[T, 2k]: ids, then weights), so the same launches serve any routing
// and replay inside a captured graph; each token reads only its selected
// experts' rows. The slots are summed in slot order by successive launches
// (deterministic: no atomics).

#ifdef ROUTER_E
// Per token: the ROUTER_K largest of ROUTER_E logits (ties: the lower id;
// a NaN never wins, the first free id stands in), in descending order,
// and their softmax over just those (exp(l - top) / sum), as the CPU
// backend's route_top_k computes them, step for step. One thread a token.
// Grid (ceil(T / ROUTER_BLOCK)), block ROUTER_BLOCK. Defines ROUTER_E,
// ROUTER_K, ROUTER_BLOCK.
RFC_KERNEL __launch_bounds__(ROUTER_BLOCK) void router(const float* __restrict__ logits, int ldl,
                                                       float* __restrict__ out, int ldo, int T) {
    const int t = blockIdx.x * ROUTER_BLOCK + threadIdx.x;
    if (t >= T) return;
    const float* l = logits + (u64)t * ldl;
    int ids[ROUTER_K];
    for (int i = 0; i < ROUTER_K; i++) {
        int best = -1;
        for (int e = 0; e < ROUTER_E; e++) {
            bool taken = false;
            for (int j = 0; j < i; j++) taken = taken || ids[j] == e;
            if (!taken && (best < 0 || l[e] > l[best])) best = e;
        }
        ids[i] = best < 0 ? 0 : best;
    }
    const float top = l[ids[0]];
    float w[ROUTER_K];
    float sum = 0.0f;
    for (int i = 0; i < ROUTER_K; i++) {
        w[i] = expf(l[ids[i]] - top);
        sum += w[i];
    }
    float* o = out + (u64)t * ldo;
    for (int i = 0; i < ROUTER_K; i++) {
        o[i] = (float)ids[i];
        o[ROUTER_K + i] = w[i] / sum;
    }
}
#endif

#ifdef EXPERTS_D
// Defines: EXPERTS_D (model width, a multiple of 32 and of the gate/up
// block), EXPERTS_FF (expert width, a multiple of 32 and of the down
// block), EXPERTS_E (experts), EXPERTS_K (slots per token), GATE_TYPE,
// UP_TYPE, DOWN_TYPE. Weights are 3-D [E, rows, cols]: expert e's rows
// follow e - 1's. One warp a weight row (two for gate/up), WARPS warps a
// block; grid y is the token.
#define WARPS 8

// Slot `slot`'s expert of token t (clamped: the router writes only ids
// below E, and a bad id must not read outside the weights).
RFC_DEV int expert_of(const float* route, int ldr, int t, int slot) {
    const int e = (int)route[(u64)t * ldr + slot];
    return min(max(e, 0), EXPERTS_E - 1);
}

// act[t, f] = silu(gate_e[f] . x[t]) * (up_e[f] . x[t]) for the expert e
// of token t's slot `slot`. Grid (ceil(FF / WARPS), T), block WARPS * RFC_WARP.
RFC_KERNEL __launch_bounds__(WARPS * RFC_WARP) void experts_up(const float* __restrict__ x, int ldx,
                                                             const float* __restrict__ route, int ldr,
                                                             const u8* __restrict__ w_gate,
                                                             const u8* __restrict__ w_up,
                                                             float* __restrict__ act, int slot, int T) {
    const int warp = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    const int f = blockIdx.x * WARPS + warp, t = blockIdx.y;
    if (f >= EXPERTS_FF || t >= T) return;
    const u64 row = (u64)expert_of(route, ldr, t, slot) * EXPERTS_FF + f;
    const u8* g = w_gate + row * row_bytes<GATE_TYPE>(EXPERTS_D);
    const u8* u = w_up + row * row_bytes<UP_TYPE>(EXPERTS_D);
    const float* xr = x + (u64)t * ldx;
    float a = 0.0f, b = 0.0f;
    for (int p = lane; p < EXPERTS_D / 8; p += RFC_WARP) {
        float wg[8], wu[8];
        dequant8<GATE_TYPE>(g, p >> 2, p & 3, wg);
        dequant8<UP_TYPE>(u, p >> 2, p & 3, wu);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            a += wg[e] * xr[p * 8 + e];
            b += wu[e] * xr[p * 8 + e];
        }
    }
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0) act[(u64)t * EXPERTS_FF + f] = silu(a) * b;
}

// out[t, r] = base + weight · (down_e[r] . act[t]) for the expert e and
// weight of token t's slot `slot`, where base is the residual (or 0) for
// slot 0 and out's own value after it: slot after slot, in order. Grid
// (ceil(D / WARPS), T), block WARPS * RFC_WARP. `residual` may be NULL.
RFC_KERNEL __launch_bounds__(WARPS * RFC_WARP) void experts_down(const float* __restrict__ act,
                                                               const float* __restrict__ route, int ldr,
                                                               const u8* __restrict__ w_down,
                                                               const float* __restrict__ residual,
                                                               int ldres, float* __restrict__ out, int ldo,
                                                               int slot, int T) {
    const int warp = threadIdx.x / RFC_WARP, lane = threadIdx.x % RFC_WARP;
    const int r = blockIdx.x * WARPS + warp, t = blockIdx.y;
    if (r >= EXPERTS_D || t >= T) return;
    const u64 row = (u64)expert_of(route, ldr, t, slot) * EXPERTS_D + r;
    const u8* w = w_down + row * row_bytes<DOWN_TYPE>(EXPERTS_FF);
    const float* ar = act + (u64)t * EXPERTS_FF;
    float y = 0.0f;
    for (int p = lane; p < EXPERTS_FF / 8; p += RFC_WARP) {
        float wd[8];
        dequant8<DOWN_TYPE>(w, p >> 2, p & 3, wd);
#pragma unroll
        for (int e = 0; e < 8; e++) y += wd[e] * ar[p * 8 + e];
    }
    y = warp_sum(y);
    if (lane != 0) return;
    const float weight = route[(u64)t * ldr + EXPERTS_K + slot];
    float* o = out + (u64)t * ldo + r;
    float base;
    if (slot > 0) base = *o;
    else base = residual ? residual[(u64)t * ldres + r] : 0.0f;
    *o = base + weight * y;
}
#endif
