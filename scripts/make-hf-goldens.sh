#!/usr/bin/env bash
# Regenerates tests/fixtures/hf/*.json: HF transformers logits of tiny
# synthetic models (see scripts/make-hf-goldens.py for what and how).
#
#   scripts/make-hf-goldens.sh [CASE...]
#
# Makes .venv-hf (git-ignored) with CPU-capable torch, transformers,
# accelerate, gguf and numpy from the default PyPI index (torch's wheel is
# large), builds `rfc` in release mode and writes the fixtures.
#
# On a machine that already has torch and transformers (the GPU machine),
# skip the venv: HF_PYTHON=python3 scripts/make-hf-goldens.sh (with the
# gguf and accelerate wheels installed there, e.g. carried as files).
set -euo pipefail
cd "$(dirname "$0")/.."

# The versions the committed fixtures were made with.
PKGS=(torch==2.15.0 transformers==5.24.0 accelerate==1.15.0 gguf==0.19.0 numpy)

if [[ -n "${HF_PYTHON:-}" ]]; then
    PY=$HF_PYTHON
else
    VENV=.venv-hf
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "${PKGS[@]}"
    PY=$VENV/bin/python
fi

cargo build --release --bin rfc
"$PY" scripts/make-hf-goldens.py --rfc target/release/rfc --out tests/fixtures/hf "$@"
