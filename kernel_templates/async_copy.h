// Global-to-shared copies that fly while the block computes (NVIDIA
// cp.async, sm_80+): the staged matmul tiles (matmul_q8.hip,
// matmul_f16k.hip) queue chunk c + 1 into one stage of dynamic shared
// memory while chunk c multiplies out of the other, with no register
// holding the copies.
#if RFC_CUDA
// Copies BYTES (4, 8 or 16) from global to shared memory asynchronously;
// zeros where !valid.
template <int BYTES> RFC_DEVT void cp_async(void* dst, const void* src, bool valid) {
    const u32 d = (u32)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" ::"r"(d), "l"(src), "n"(BYTES),
                 "r"(valid ? BYTES : 0));
}
template <> RFC_DEVT void cp_async<16>(void* dst, const void* src, bool valid) {
    const u32 d = (u32)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}
// A run of BYTES (a multiple of 4) in pieces of at most 16.
template <int BYTES> RFC_DEVT void cp_async_run(u8* dst, const u8* src, bool valid) {
#pragma unroll
    for (int o = 0; o < BYTES; o += 16) {
        if (BYTES - o >= 16) cp_async<16>(dst + o, src + o, valid);
        else cp_async<(BYTES % 16 >= 8 ? 8 : 4)>(dst + o, src + o, valid);
    }
}
RFC_DEV void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
RFC_DEV void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }
// Until at most N of this thread's newest groups are in flight.
template <int N> RFC_DEVT void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

// The launch's dynamic shared memory in bytes: a kernel whose stages need
// more traps instead of writing past it (the host sizes the launch from
// MatMulSpec::pipe_bytes, which mirrors each template's rule).
RFC_DEV u32 dynamic_smem_bytes() {
    u32 b;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(b));
    return b;
}
#endif
