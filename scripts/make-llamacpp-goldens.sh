#!/usr/bin/env bash
# Regenerates tests/fixtures/hf/llamacpp/*.json: llama.cpp's logits of tiny
# synthetic models (scripts/llamacpp-goldens.py says what and why).
#
#   scripts/make-llamacpp-goldens.sh [CASE...]
#
# Makes .venv-llamacpp (git-ignored) with numpy, gguf and llama-cpp-python
# built from its source distribution for this CPU (no prebuilt wheel; the
# build takes about an hour on 2 cores), builds `rfc` and writes the
# fixtures. The tests only read the fixtures: CI needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-llamacpp
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q numpy gguf==0.19.0 scikit-build-core cmake ninja
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF" \
        "$VENV/bin/pip" install -q --no-build-isolation --no-binary llama-cpp-python \
        llama-cpp-python==0.3.36
fi
cargo build --release --bin rfc
"$VENV/bin/python" scripts/llamacpp-goldens.py --rfc target/release/rfc "$@"
