#!/usr/bin/env bash
# Creates the Python virtual environment of the `rfc serve` tests
# (tests/serve/requirements.txt) in .venv-serve (git-ignored), or leaves it
# as it is when it already holds what the requirements pin. Prints the
# venv's python. Override the folder with RFC_SERVE_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${RFC_SERVE_VENV:-.venv-serve}"
req=tests/serve/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && "$venv/bin/python" -c 'import openai, jsonschema, lark' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
"$venv/bin/python" -c 'import openai, jsonschema, lark' # fails loudly if the install did not work
echo "$want" > "$stamp"
echo "$venv/bin/python"
