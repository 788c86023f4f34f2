#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them all:
# system packages (scripts/ci-deps.sh), the real models (scripts/fetch-model.sh,
# cached in models/), the whole test suite in the optimized profile (the
# end-to-end tests run the real model), then the offline gfx1100 compile
# check of every kernel the real model needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ci-deps.sh
scripts/fetch-model.sh >/dev/null
scripts/fetch-model.sh gemma3-270m >/dev/null  # tests/e2e_gemma3.rs
scripts/serve-venv.sh >/dev/null  # the Python side of tests/serve_*.rs
cargo test --release "$@"
if [ -x scripts/ci-gfx1100.sh ]; then
  cargo build --release --quiet --bin rfc
  RFC_BIN="${CARGO_TARGET_DIR:-target}/release/rfc" scripts/ci-gfx1100.sh
fi
