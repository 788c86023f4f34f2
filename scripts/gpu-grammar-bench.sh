#!/usr/bin/env bash
# The cost of a JSON schema per decoded token on an NVIDIA GPU (issue #19),
# not yet run: a synthetic model with the real Qwen layout and tokenizer
# (random weights), five alternating runs with and without --json-schema.
# Here: scripts/gpu-check.sh --build, and
#   rfc inspect models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --json --full > devbin/layout/real.json
# then on the GPU machine (carry devbin): scripts/gpu-grammar-bench.sh
set -u
R=devbin/gpu-selftest/rfc
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
$R synth --layout devbin/layout/real.json /tmp/real.gguf > /dev/null || exit 1
S='{"type":"object","properties":{"users":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string","maxLength":20},"age":{"type":"integer"},"email":{"type":"string","maxLength":40}},"required":["name","age","email"]},"maxItems":50}},"required":["users"]}'
for i in 1 2 3 4 5; do
  for mode in free schema; do
    if [ $mode = free ]; then extra=(); else extra=(--json-schema "$S"); fi
    line=$($R run /tmp/real.gguf -p "List users as JSON" -n 256 --temp 1 --top-k 0 --top-p 1 --min-p 0 --seed $i --device cuda "${extra[@]}" 2>&1 >/tmp/out.$mode.$i | grep -o 'generation.*')
    echo "$mode seed $i: $line"
  done
done
head -c 300 /tmp/out.schema.1; echo
