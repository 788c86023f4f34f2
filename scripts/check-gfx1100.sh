#!/usr/bin/env bash
# Compile-check HIP kernel sources for gfx1100 on a Debian 12 machine without an AMD GPU.
# (From ../shared/tools/check-gfx1100.sh; adapted: a summary line at the end,
# the worst occupancy and any scratch use are called out.)
# Usage: [HIPRTC_MODE=1] [ARCH=gfx1100] scripts/check-gfx1100.sh file.hip ...
set -euo pipefail
ARCH=${ARCH:-gfx1100}
WORK=${WORK:-/tmp/hipchk}
# clang leaves an empty directory per HIP compile in TMPDIR
# (<source>-XXXXXX): they go under WORK and are removed at exit.
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT
SYS=/usr/lib/x86_64-linux-gnu/amdgcn/bitcode
if ! command -v clang++-15 >/dev/null || [ ! -f $SYS/ocml.bc ] || [ ! -f /usr/include/hip/hip_runtime.h ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    clang-15 lld-15 rocm-device-libs libamdhip64-dev >/dev/null
fi
# rocm-device-libs 5.2.3 has no gfx11 ISA file: add one (same content as the gfx10 ones, ISA 11000)
DL=$WORK/devlibs; mkdir -p $DL
for f in $SYS/*.bc; do ln -sf "$f" $DL/; done
for v in 1100 1101 1102 1103; do
  [ -f $DL/oclc_isa_version_$v.bc ] && continue
  cat > $WORK/isa_$v.ll <<LL
target datalayout = "e-p:64:64-p1:64:64-p2:32:32-p3:32:32-p4:64:64-p5:32:32-p6:32:32-i64:64-v16:16-v24:32-v32:32-v48:64-v96:128-v192:256-v256:256-v512:512-v1024:1024-v2048:2048-n32:64-S32-A5-G1-ni:7"
target triple = "amdgcn-amd-amdhsa"
@__oclc_ISA_version = linkonce_odr protected local_unnamed_addr addrspace(4) constant i32 ${v}0, align 4
LL
  clang-15 -target amdgcn-amd-amdhsa -nogpulib -c -emit-llvm $WORK/isa_$v.ll -o $DL/oclc_isa_version_$v.bc
done
# hiprtc's own prelude (preprocessed hiprtc_runtime.h) lives inside libhiprtc-builtins.so.5
[ -f $WORK/hiprtc_runtime.h ] || python3 - "$WORK/hiprtc_runtime.h" <<'PY'
import ctypes, sys
l = ctypes.CDLL("libhiprtc-builtins.so.5")
n = ctypes.c_uint.in_dll(l, "__hipRTC_header_size").value
p = ctypes.addressof(ctypes.c_char.in_dll(l, "__hipRTC_header"))
open(sys.argv[1], "wb").write(ctypes.string_at(p, n))
PY
COMMON=(-x hip -std=c++17 --rocm-path=/usr --rocm-device-lib-path=$DL --offload-arch=$ARCH
        --cuda-device-only --no-gpu-bundle-output -O3 -Werror=implicit-function-declaration
        -Rpass-analysis=kernel-resource-usage)
rc=0
ok=0
failed=0
summary=$WORK/summary.txt
: > "$summary"
for src in "$@"; do
  out=$WORK/$(basename "$src").$ARCH.co
  if [ -n "${HIPRTC_MODE:-}" ]; then
    # emulate hiprtc's environment: builtin hiprtc_runtime.h instead of system headers
    EXTRA=(-std=${RTC_STD:-c++17} -nogpuinc -include $WORK/hiprtc_runtime.h -D__HIPCC_RTC__ -mcumode)
  else EXTRA=(); fi
  if clang++-15 "${COMMON[@]}" "${EXTRA[@]}" "$src" -o "$out" 2>$out.log; then
    echo "OK   $src -> $out ($(stat -c %s "$out") bytes)"
    awk '/remark: +Function Name:/{if(l)print l; sub(/ \[-Rpass.*/,""); l="  "$NF} /remark: +(VGPRs|SGPRs|ScratchSize|Occupancy|LDS Size|VGPRs Spill|SGPRs Spill)/{sub(/.*remark: +/,""); sub(/ \[-Rpass.*/,""); l=l" | "$0} END{if(l)print l}' $out.log | tee -a "$summary"
    ok=$((ok + 1))
  else
    echo "FAIL $src"; grep -v "remark:" $out.log | head -30; rc=1
    failed=$((failed + 1))
  fi
done
worst=$(grep -o 'Occupancy \[waves/SIMD\]: [0-9]*' "$summary" | awk '{print $NF}' | sort -n | head -1)
scratch=$(grep -c 'ScratchSize \[bytes/lane\]: [1-9]' "$summary" || true)
echo "check-gfx1100 ($ARCH${HIPRTC_MODE:+, hiprtc mode}): $ok files compiled, $failed failed; lowest occupancy ${worst:-?} waves/SIMD; $scratch kernels use scratch"
exit $rc
