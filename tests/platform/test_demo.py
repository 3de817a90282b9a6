"""The README's first two commands exist and the demo starts and stops cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from npusuite.platform.observability.demo import find_binary as find_prometheus

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:sh|bash)?\n(.*?)```", text, re.S)
    assert block, "README must start with a code block holding the two commands"
    return [ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.split("#")[0].strip()]


def test_readme_starts_with_demo_and_test_commands():
    cmds = readme_commands()
    assert cmds[:2] == ["make demo", "make test"]
    # .ci/run must use the README's test command.
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr


# ~2 min (every step trains or starts its services): slow-marked to keep the default run near 11 min;
# `make test-all` runs it, and every step has its own faster test beside its module.
@pytest.mark.slow
@pytest.mark.kafka
def test_demo_once_starts_and_stops(kafka_bootstrap, tmp_path):
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run([sys.executable, "-m", "npusuite.platform", "demo", "--once", "--workdir",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "npusuite demo is running" in proc.stdout
    assert kafka_bootstrap in proc.stdout
    assert "npusuite demo stopped." in proc.stdout
    if find_prometheus() is not None:  # deploy/system-deps.sh installs it; the demo scrapes all it started
        assert re.search(r"prometheus +http://127\.0\.0\.1:\d+ scrapes 6 jobs .*\(6 up\)", proc.stdout), proc.stdout
    assert (tmp_path / "admin-token").stat().st_mode & 0o077 == 0
