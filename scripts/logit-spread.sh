#!/usr/bin/env bash
# How far correct computations of a model land from llama.cpp's reference
# top-10 logits: docs/COMPATIBILITY.md's table "How far correct runs land
# from the reference", which sets tests/e2e_gemma3.rs's bar.
#
#   LLAMA_SRC=DIR scripts/logit-spread.sh [MODEL [REFERENCE]]
#
# DIR: the llama.cpp tree of the llama-cpp-python 0.3.36 source package
# (vendor/llama.cpp; `pip download --no-deps --no-binary llama-cpp-python
# llama-cpp-python==0.3.36`). Builds its static library twice under $WORK
# (for this CPU, and without SIMD; ~5 minutes each on 2 cores), links
# scripts/llamacpp-last-logits.cpp to each, runs the reference's prompts
# with flash attention off and on, and the exact float64 forward pass of
# scripts/numpy-goldens.py ($PYTHON needs numpy and gguf). Our own paths'
# figures: `RFC_CPU_PATH=avx2|portable cargo test --release --test
# e2e_gemma3 -- --nocapture` (avx512 with `--features emulate-avx512`).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${LLAMA_SRC:?set LLAMA_SRC to the llama.cpp source tree}
model=${1:-models/gemma-3-270m-q4_k_m.gguf}
ref=${2:-../shared/testdata/reference/gemma3_270m_llamacpp.json}
work=${WORK:-target/logit-spread}
py=${PYTHON:-python3}
mkdir -p "$work"
python3 scripts/logit-spread.py prompts "$ref" > "$work/prompts.txt"
common=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_COMMON=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF)
runs=()
for build in native scalar; do
  case $build in
    native) flags=(-DGGML_NATIVE=ON) ;;
    scalar) flags=(-DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF
                   -DGGML_F16C=OFF -DGGML_SSE42=OFF -DGGML_BMI2=OFF) ;;
  esac
  b=$work/build-$build
  cmake -S "$src" -B "$b" "${common[@]}" "${flags[@]}" > "$work/$build.log"
  cmake --build "$b" -j"$(nproc)" --target llama >> "$work/$build.log"
  g++ -O2 -std=c++17 scripts/llamacpp-last-logits.cpp -I"$src/include" -I"$src/ggml/include" \
    "$b/src/libllama.a" "$b/ggml/src/libggml.a" "$b/ggml/src/libggml-cpu.a" \
    "$b/ggml/src/libggml-base.a" -fopenmp -lpthread -o "$b/last-logits"
  for fa in 0 1; do
    "$b/last-logits" "$model" $fa < "$work/prompts.txt" > "$work/$build-fa$fa.txt" 2>> "$work/$build.log"
    runs+=("llama.cpp b11312 $build, flash attention $fa=$work/$build-fa$fa.txt")
  done
done
"$py" scripts/logit-spread.py table "$ref" "${runs[@]}" --f64 "$model"
