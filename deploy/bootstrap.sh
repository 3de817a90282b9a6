#!/usr/bin/env bash
# Create .venv and install npusuite with its extras, pinned by deploy/constraints.txt.
# Idempotent: re-installs only when pyproject.toml or the constraints change.
# pip's own cache (~/.cache/pip) keeps the large torch wheel after the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.npusuite-installed"
want=$(cat pyproject.toml deploy/constraints.txt | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "npusuite needs Python >= 3.11" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo "installing npusuite and its dependencies into $VENV (the first time downloads torch, ~3 GB) ..."
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c deploy/constraints.txt -e ".[dev]"
echo "$want" > "$STAMP"
