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
    assert proc.returncode == 2  # a usage error, reported as such
    assert "Traceback" not in proc.stderr
    assert "No such command" in proc.stderr


def test_unknown_option_is_a_usage_error():
    proc = npusuite("kafka", "up", "--no-such-flag")
    assert proc.returncode == 2
    assert "No such option" in proc.stderr and "Traceback" not in proc.stderr
