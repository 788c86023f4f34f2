#!/usr/bin/env bash
# Every GPU check and benchmark, on a machine with an NVIDIA GPU (the
# device tool's H100/H200), with binaries built beforehand:
# devbin/gpu-selftest/rfc is a stripped x86-64 build of this tree
# (scripts/gpu-check.sh --build makes it here, on the machine without a
# GPU; carry devbin/gpu-selftest). Full logs go to $OUT when set;
# the short table comes last.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--build" ]; then
  cargo build --release --bin rfc && mkdir -p devbin/gpu-selftest && cp target/release/rfc devbin/gpu-selftest/rfc &&
    strip devbin/gpu-selftest/rfc
  ls -la devbin/gpu-selftest/rfc
  exit 0
fi
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
rfc=${RFC_BIN:-devbin/gpu-selftest/rfc}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null
ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -3

# 1. The selftest: every kernel vs the CPU backend, faults, timings.
"$rfc" gpu-selftest --device cuda "$@" > "$out/selftest.log" 2> "$out/selftest.err"
selftest_rc=$?

# 2. RFC_FAULT from the environment reaches the layer: the first
#    allocation fails with a typed out-of-memory error.
RFC_FAULT=alloc:1 "$rfc" gpu-selftest --device cuda --filter "rms_norm" --no-bench > "$out/fault_env.log" 2>&1
if grep -q "out of device memory" "$out/fault_env.log"; then env_fault=PASS; else env_fault=FAIL; fi

# 3. --device parsing and auto selection, as a user sees them.
RUST_LOG=info "$rfc" gpu-selftest --device hip --no-bench > "$out/hip.log" 2>&1
hip_msg=$(grep -o 'error: .*' "$out/hip.log" | head -1)

# 4. Whole models, GPU vs CPU (logits, greedy tokens, graph replay, device
#    memory after 1000 decode steps, faults), then speed on both benchmark
#    shapes of shared/BENCHMARKS.md.
M=/tmp/gpu-check-models
mkdir -p $M
"$rfc" synth tiny --arch llama --d 256 --heads 4 --kv-heads 2 --ffn 512 --type Q4_K $M/tiny.gguf >/dev/null
"$rfc" gpu-check $M/tiny.gguf --prompts 1,3,7,40,130,300 --greedy 16 --steps 400 --max-tokens 64 > "$out/gpu_check_tiny.log" 2>&1
tiny_rc=$?
"$rfc" synth qwen05b $M/q05.gguf >/dev/null
"$rfc" gpu-check $M/q05.gguf --prompts 1,3,7,40,700 --greedy 12 --steps 1000 > "$out/gpu_check_qwen.log" 2>&1
qwen_rc=$?
# The real file's exact tensor layout (random weights), when its layout
# (`rfc inspect MODEL --json --full`) was carried along.
layout=${RFC_LAYOUT:-devbin/layout/real.json}
real_rc=skip
if [ -f "$layout" ]; then
  "$rfc" synth --layout "$layout" $M/real.gguf >/dev/null
  "$rfc" gpu-check $M/real.gguf --prompts 1,4,12,40,700 --greedy 12 --steps 300 > "$out/gpu_check_real.log" 2>&1
  real_rc=$?
fi
# Llama-3.1-style RoPE frequency factors, head_dim 128 (the flash prefill
# kernel at the head size of Llama-3-8B).
"$rfc" synth tiny --arch llama --d 512 --heads 4 --kv-heads 2 --ffn 512 --type Q4_K --rope-freqs $M/freqs.gguf >/dev/null
"$rfc" gpu-check $M/freqs.gguf --prompts 1,7,130 --greedy 16 --steps 100 --max-tokens 64 > "$out/gpu_check_freqs.log" 2>&1
freqs_rc=$?

# Batching is invisible on the GPU: 16 requests batched (prefix cache on,
# device-side top candidates) and again in a KV budget that forces
# preemption, against each alone (whole logit rows), through the scheduler.
"$rfc" batch-check $M/tiny.gguf --device cuda --parallel 16 > "$out/batch_tiny.log" 2>&1
batch_tiny_rc=$?
"$rfc" batch-check $M/q05.gguf --device cuda --parallel 16 > "$out/batch_qwen.log" 2>&1
batch_qwen_rc=$?

# 5. An sm_90 artifact runs with NVRTC unloadable and picks the JIT's tokens.
P="def fibonacci(n):"
"$rfc" compile $M/q05.gguf -o $M/q05.rfc --target sm_90 > "$out/compile_sm90.log" 2>&1
"$rfc" run $M/q05.gguf --device cuda --temp 0 -n 48 -p "$P" > $M/jit.txt 2>/dev/null
RFC_NVRTC_LIB=/nonexistent/libnvrtc.so "$rfc" run $M/q05.rfc --device cuda --temp 0 -n 48 -p "$P" > $M/art.txt 2> "$out/artifact_run.err"
art_rc=$?
art_kernels=$(grep -o 'kernels: .*' "$out/artifact_run.err" | head -1)
if [ $art_rc -eq 0 ] && [ -s $M/jit.txt ] && cmp -s $M/jit.txt $M/art.txt; then art=PASS; else art="FAIL (rc $art_rc)"; fi

"$rfc" bench $M/q05.gguf --device cuda -p 512 -n 128 -r 3 > "$out/bench_qwen05b.log" 2>&1
"$rfc" bench $M/q05.gguf --device cuda -p 512 -n 128 -d 4096 -r 3 > "$out/bench_qwen05b_d4096.log" 2>&1
"$rfc" bench $M/q05.gguf --device cuda --parallel 1,2,4,8,16,32,64 -p 128 -n 128 -r 1 > "$out/bench_qwen05b_parallel.log" 2>&1
if [ "${RFC_BENCH_8B:-0}" = 1 ]; then
  "$rfc" synth llama8b $M/l8.gguf >/dev/null
  "$rfc" bench $M/l8.gguf --device cuda -p 512 -n 128 -r 3 > "$out/bench_llama8b.log" 2>&1
  "$rfc" bench $M/l8.gguf --device cuda -p 512 -n 128 -d 4096 -r 3 > "$out/bench_llama8b_d4096.log" 2>&1
  "$rfc" bench $M/l8.gguf --device cuda --parallel 1,2,4,8,16,32,64 -p 128 -n 128 -r 1 > "$out/bench_llama8b_parallel.log" 2>&1
fi

tail -n 5 "$out/selftest.err"
cat "$out/selftest.log"
echo
echo "== gpu-check summary"
printf '%-44s %s\n' "selftest (kernels, faults, graphs)" "$([ $selftest_rc -eq 0 ] && echo PASS || echo "FAIL (rc $selftest_rc)")"
printf '%-44s %s\n' "RFC_FAULT=alloc:1 from the environment" "$env_fault"
printf '%-44s %s\n' "--device hip on an NVIDIA machine" "${hip_msg:-no error?}"
printf '%-44s %s\n' "gpu-check tiny Q4_K model" "$([ $tiny_rc -eq 0 ] && echo PASS || echo "FAIL (rc $tiny_rc)")"
printf '%-44s %s\n' "gpu-check qwen05b layout" "$([ $qwen_rc -eq 0 ] && echo PASS || echo "FAIL (rc $qwen_rc)")"
printf '%-44s %s\n' "gpu-check real file's layout" "$(case $real_rc in 0) echo PASS;; skip) echo "skipped (no $layout)";; *) echo "FAIL (rc $real_rc)";; esac)"
printf '%-44s %s\n' "gpu-check tiny llama, rope_freqs, head_dim 128" "$([ $freqs_rc -eq 0 ] && echo PASS || echo "FAIL (rc $freqs_rc)")"
printf '%-44s %s\n' "batched == alone, tiny (16 requests)" "$([ $batch_tiny_rc -eq 0 ] && echo PASS || echo "FAIL (rc $batch_tiny_rc)")"
printf '%-44s %s\n' "batched == alone, qwen05b (16 requests)" "$([ $batch_qwen_rc -eq 0 ] && echo PASS || echo "FAIL (rc $batch_qwen_rc)")"
printf '%-44s %s\n' "sm_90 artifact, NVRTC unloadable, = JIT" "$art; $art_kernels"
grep -h '| tg\|| pp' "$out"/bench_*.log 2>/dev/null
grep -h '^| cuda' "$out"/bench_*_parallel.log 2>/dev/null
[ $selftest_rc -eq 0 ] && [ $tiny_rc -eq 0 ] && [ $qwen_rc -eq 0 ] && [ $freqs_rc -eq 0 ] &&
  [ $batch_tiny_rc -eq 0 ] && [ $batch_qwen_rc -eq 0 ] &&
  { [ "$real_rc" = 0 ] || [ "$real_rc" = skip ]; } && [ "$art" = PASS ]
