#!/usr/bin/env bash
# CI step: every kernel the real model's compiled plan needs, specialized
# for gfx1100 (`rfc compile --emit-kernels`), compiled offline in hiprtc's
# environment (HIPRTC_MODE=1, scripts/check-gfx1100.sh); prints each
# kernel's VGPRs/SGPRs/LDS/occupancy and fails on any compile error.
# Then the kernels only other families need (tiny synthetic Gemma 3,
# Gemma 2, Qwen3, Phi-3 LongRoPE, YaRN, Mixtral and Qwen3-MoE models): the
# standalone RoPE, per-head norm, soft-capped and head-256 attention, the
# GeGLU, YaRN and LongRoPE epilogues in one variant of each matmul
# template, and the MoE router and experts kernels.
# Installs clang-15 and the ROCm device libraries on first use (root).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${RFC_MODEL:-models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
[ -f "$model" ] || model=$(scripts/fetch-model.sh)
rfc=${RFC_BIN:-}
if [ -z "$rfc" ]; then
  cargo build --quiet --bin rfc
  rfc=target/debug/rfc
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$rfc" compile "$model" --target gfx1100 --emit-kernels "$dir"
small=(--d 256 --heads 4 --kv-heads 2 --ffn 512 --type Q4_K)
i=0
for args in "gemma3 --layers 6 --window 8" "gemma2 --window 8" "qwen3" \
  "phi3 --longrope 256" "qwen2 --yarn 4,64" "llama --yarn 8,128" \
  "mixtral --experts 8 --experts-used 2" "qwen3moe --experts 8 --experts-used 4"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  "$rfc" synth tiny --arch $args "${small[@]}" "$dir/f$i.gguf" > /dev/null
  "$rfc" compile "$dir/f$i.gguf" --target gfx1100 --emit-kernels "$dir/f$i" > /dev/null
  for f in "$dir/f$i"/*.hip; do
    b=$(basename "$f")
    case $b in
      rope_h*|head_rms_norm*|attention*|elementwise.hip|router_*|experts_*) ;;
      matvec_t1_*geglu*|matvec_t1_*yarn*|matvec_t1_*mscale*) ;;
      matvec_q8_t4_*geglu*|matvec_q8_t4_*yarn*|matvec_q8_t4_*mscale*) ;;
      matmul_q8_t64_*geglu*|matmul_q8_t64_*yarn*|matmul_q8_t64_*mscale*) ;;
      matmul_q8_narrow_t16_*geglu*|matmul_q8_narrow_t16_*yarn*) ;;
      *) continue ;;
    esac
    # The same label with other constants (llama's adjacent-pair RoPE
    # beside qwen2's halves) is kept under a prefixed name.
    if [ -e "$dir/$b" ] && cmp -s "$f" "$dir/$b"; then continue; fi
    [ -e "$dir/$b" ] && b="f${i}_$b"
    cp "$f" "$dir/$b"
  done
done
HIPRTC_MODE=1 WORK="$dir/work" scripts/check-gfx1100.sh "$dir"/*.hip
