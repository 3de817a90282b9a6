from __future__ import annotations

import subprocess
import sys


def npusuite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", *args], capture_output=True,
                          text=True, timeout=300)


def test_help_lists_only_built_groups():
    proc = npusuite("--help")
    assert proc.returncode == 0
    assert "kafka" in proc.stdout


def test_unknown_command_is_one_line_error():
    proc = npusuite("no-such-group")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
