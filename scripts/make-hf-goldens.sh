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
# The F32/F16 cases again with our f16 KV cache emulated: a tight check of
# everything else (quantized cases are left out: with 8-bit activations a
# value rounding the other way at one position moves logits by up to 1e-2).
FLOAT_CASES=(llama_mha_f32 llama_gqa_f32 llama_gqa_tied_bias_f32 qwen2_gqa_tied_bias_f32
    qwen2_mha_untied_nobias_f32 mistral_gqa_f32 mistral_gqa_window4_f32 llama_gqa_f16
    qwen2_gqa_tied_bias_f16 qwen3_gqa_f32 qwen3_mha_tied_f32 qwen3_gqa_f16)
if [[ $# -eq 0 ]]; then
    "$PY" scripts/make-hf-goldens.py --rfc target/release/rfc --emulate \
        --out tests/fixtures/hf/emulated "${FLOAT_CASES[@]}"
fi
