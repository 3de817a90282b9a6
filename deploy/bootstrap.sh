#!/usr/bin/env bash
# Create .venv and install npusuite with its extras, pinned by deploy/constraints.txt.
# Idempotent: re-installs only when pyproject.toml or the constraints change.
# Wheels are not cached (--no-cache-dir): torch and its CUDA libraries would
# otherwise take another ~3.5 GB in ~/.cache/pip.
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
free_gb=$(df -Pk "$(dirname "$VENV")" | awk 'NR==2 {print int($4/1048576)}')
echo "installing npusuite and its dependencies into $VENV (~8 GB installed, mostly torch's CUDA libraries; ${free_gb} GB free) ..."
if [ "$free_gb" -lt 9 ]; then
  echo "warning: only ${free_gb} GB free; the install needs about 9 GB at its peak" >&2
fi
pip_install() { "$VENV/bin/python" -m pip install -q --no-cache-dir -c deploy/constraints.txt "$@"; }
pip_install --upgrade pip
# torch's CUDA libraries go in one wheel at a time and no wheel is cached, so the
# peak disk use is the installed size plus one wheel, not twice the download.
for lib in $(grep -oE '^nvidia-[a-z0-9-]+' deploy/constraints.txt); do
  pip_install --no-deps "$lib"
done
pip_install --no-deps torch
pip_install -e ".[dev]"
echo "$want" > "$STAMP"
