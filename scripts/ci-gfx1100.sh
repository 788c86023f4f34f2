#!/usr/bin/env bash
# CI step: every kernel the real model's compiled plan needs, specialized
# for gfx1100 (`rfc compile --emit-kernels`), compiled offline in hiprtc's
# environment (HIPRTC_MODE=1, scripts/check-gfx1100.sh); prints each
# kernel's VGPRs/SGPRs/LDS/occupancy and fails on any compile error.
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
HIPRTC_MODE=1 WORK="$dir/work" scripts/check-gfx1100.sh "$dir"/*.hip
