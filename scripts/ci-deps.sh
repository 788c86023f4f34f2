#!/usr/bin/env bash
# System packages CI needs beyond the Rust toolchain (Debian 12). .ci/run
# calls this before the tests.
# - libamdhip64-5: Debian's ROCm 5.2 HIP runtime (with hiprtc inside), so
#   tests/backend_hip_loader.rs can load the HIP driver layer on a machine
#   without a GPU and check every symbol it uses resolves.
# - clang-15, lld-15, rocm-device-libs, libhiprtc-builtins5: the offline
#   AMD compiler `rfc compile --target gfx1100` uses where hiprtc predates
#   gfx11 (tests/artifact_gfx1100.rs, scripts/ci-gfx1100.sh).
set -euo pipefail
need=()
for p in libamdhip64-5 libhiprtc-builtins5 clang-15 lld-15 rocm-device-libs; do
  dpkg -s $p >/dev/null 2>&1 || need+=($p)
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "ci-deps: libamdhip64-5 $(dpkg-query -W -f='${Version}' libamdhip64-5), clang-15 $(dpkg-query -W -f='${Version}' clang-15)"
