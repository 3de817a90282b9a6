"""No tracked file may point to documents outside the repository (a contracts file, numbered interfaces)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Built from pieces so this file does not match itself.
STALE = re.compile("CONTRACT" + "S|interface" + r" [0-9]")


def test_no_tracked_file_refers_to_missing_contract_documents():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    hits = []
    for name in filter(None, files.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        hits += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if STALE.search(line)]
    assert not hits, f"point these to docs/contracts.md or the record module instead: {hits[:20]}"
