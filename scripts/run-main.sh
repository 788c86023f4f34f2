#!/usr/bin/env bash
# The main job on a fresh machine: fetch the real model, build rfc, and
# generate text with it. Extra arguments go to `rfc run`.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(scripts/fetch-model.sh)
cargo build --release --quiet
if [ $# -eq 0 ]; then
  set -- -p "def fibonacci(n):" -n 64 --temp 0
fi
exec target/release/rfc run "$model" "$@"
