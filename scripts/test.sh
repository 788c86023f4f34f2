#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them all:
# system packages (scripts/ci-deps.sh: apt, as root or through sudo), the
# real models (scripts/fetch-model.sh, cached in models/), the whole test
# suite in the optimized profile (the end-to-end tests run the real model),
# then the offline gfx1100 compile check of every kernel the real model
# needs. The test summary is printed last, after the gfx1100 report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ci-deps.sh
scripts/fetch-model.sh >/dev/null
scripts/fetch-model.sh gemma3-270m >/dev/null  # tests/e2e_gemma3.rs
scripts/serve-venv.sh >/dev/null  # the Python side of tests/serve_*.rs
log=$(mktemp)
trap 'rm -f "$log"' EXIT
tests_status=0
cargo test --release "$@" 2>&1 | tee "$log" || tests_status=$?
gfx_status=0
if [ -x scripts/ci-gfx1100.sh ]; then
  cargo build --release --quiet --bin rfc
  RFC_BIN="${CARGO_TARGET_DIR:-target}/release/rfc" scripts/ci-gfx1100.sh || gfx_status=$?
fi
echo
echo "== test summary"
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) p += $i
         if ($(i+1) ~ /^failed/) f += $i
         if ($(i+1) ~ /^ignored/) g += $i
       }
       n++
     }
     END { printf "%d test binaries: %d passed, %d failed, %d ignored\n", n, p, f, g }' "$log"
grep -E '^test .* \.\.\. FAILED$' "$log" || true
[ "$gfx_status" -eq 0 ] || echo "gfx1100 compile check: FAILED (status $gfx_status)"
[ "$tests_status" -eq 0 ] || echo "cargo test: FAILED (status $tests_status)"
[ "$tests_status" -eq 0 ] && [ "$gfx_status" -eq 0 ]
