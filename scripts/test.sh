#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them all:
# fetches the real model into models/, then the whole test suite in the
# optimized profile (the end-to-end tests run the real model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh >/dev/null
cargo test --release "$@"
