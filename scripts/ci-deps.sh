#!/usr/bin/env bash
# System packages CI needs beyond the Rust toolchain (Debian 12). .ci/run
# calls this before the tests.
# - libamdhip64-5: Debian's ROCm 5.2 HIP runtime (with hiprtc inside), so
#   tests/backend_hip_loader.rs can load the HIP driver layer on a machine
#   without a GPU and check every symbol it uses resolves.
set -euo pipefail
need=()
dpkg -s libamdhip64-5 >/dev/null 2>&1 || need+=(libamdhip64-5)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "ci-deps: libamdhip64-5 $(dpkg-query -W -f='${Version}' libamdhip64-5)"
