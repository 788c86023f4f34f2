#!/usr/bin/env bash
# Regenerates tests/fixtures/quant/ from the gguf Python package (the
# independent reference for our block formats): installs gguf 0.19.0 and
# numpy into the git-ignored .venv-fixtures, then runs the .py beside this
# script on the real model (scripts/fetch-model.sh makes it; $RFC_MODEL
# overrides the path). The Rust tests read only the committed fixtures.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-fixtures"
model="${RFC_MODEL:-$root/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}"

if [ ! -f "$model" ]; then
  echo "error: $model is missing; run scripts/fetch-model.sh first" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "gguf==0.19.0" numpy
"$venv/bin/python" "$root/scripts/make-quant-fixtures.py" "$model" "$root/tests/fixtures/quant"
