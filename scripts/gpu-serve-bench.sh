#!/usr/bin/env bash
# Batched and served figures on an NVIDIA GPU, in one lease: batched ==
# alone (rfc batch-check), rfc bench --parallel on both shapes of
# ../shared/BENCHMARKS.md, and rfc serve under scripts/serve-bench.py at
# concurrency 1, 4, 16. With LLAMA_BIN set to a folder holding a peer's
# llama-batched-bench and llama-server (built elsewhere, never by this
# project), the same loads run against them. Logs and JSON go to $OUT.
# The peer builds on the GPU machine (no network) from the pruned tree of
# the llama-cpp-python 0.3.36 source package with scripts/ui-assets.cmake
# kept and: cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
#   -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
#   -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF (the UI step would
#   download assets), then --target llama-server llama-batched-bench.
set -u
cd "$(dirname "$0")/.."
B=${RFC_BIN:-$PWD/devbin/gpu-selftest/rfc}
M=/tmp/gpu-serve-models; mkdir -p $M
O=${OUT:-/tmp/gpu-serve}; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $O/card.txt
"$B" synth qwen05b $M/q.gguf >/dev/null
"$B" batch-check $M/q.gguf --device cuda --parallel 16 > $O/batch_q.txt 2>&1; tail -6 $O/batch_q.txt
"$B" bench $M/q.gguf --device cuda --parallel 1,2,4,8,16,32,64 -p 128 -n 128 -r 1 > $O/q_par.txt 2>&1; grep "^| cuda" $O/q_par.txt
if [ "${RFC_BENCH_8B:-1}" = 1 ]; then
  "$B" synth llama8b $M/l8.gguf >/dev/null
  "$B" bench $M/l8.gguf --device cuda --parallel 1,2,4,8,16,32,64 -p 128 -n 64 -r 1 > $O/l8_par.txt 2>&1; grep "^| cuda" $O/l8_par.txt
fi
sb() { python3 scripts/serve-bench.py --url "$1" --concurrency "$2" --requests "$3" --prompt-tokens 512 --output-tokens 128 --vocab 150000 --token-min 100 --warmup 1 --json; }
levels="1 8
4 16
16 64"
"$B" serve $M/q.gguf --device cuda --port 18301 --parallel 16 --ctx 1024 > $O/rfc_serve.out 2> $O/rfc_serve.err & SP=$!
for _ in $(seq 120); do curl -sf localhost:18301/health >/dev/null && break; sleep 1; done
echo "$levels" | while read -r c n; do sb http://127.0.0.1:18301 "$c" "$n" > $O/rfc_c$c.json 2>&1; done
kill -TERM $SP; wait $SP
L=${LLAMA_BIN:-}
if [ -n "$L" ] && [ -x "$L/llama-batched-bench" ]; then
  "$L/llama-batched-bench" -m $M/q.gguf -npp 128 -ntg 128 -npl 1,2,4,8,16,32,64 -fa 1 -ngl 99 -c 20000 > $O/peer_bb_q.txt 2>&1; tail -9 $O/peer_bb_q.txt
fi
if [ -n "$L" ] && [ -x "$L/llama-server" ]; then
  "$L/llama-server" -m $M/q.gguf --port 18302 -np 16 -c 16384 -ngl 99 -fa on --no-webui > $O/peer_serve.out 2>&1 & LP=$!
  for _ in $(seq 120); do curl -sf localhost:18302/health >/dev/null && break; sleep 1; done
  echo "$levels" | while read -r c n; do sb http://127.0.0.1:18302 "$c" "$n" > $O/peer_c$c.json 2>&1; done
  kill -TERM $LP; wait $LP
fi
grep -H output_tok_s $O/*_c*.json
