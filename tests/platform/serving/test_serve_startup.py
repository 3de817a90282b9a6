"""``npusuite platform serve`` fails fast and clearly: the port is taken before any model loads, a missing
repository is the same one-line error as ``models list``; and it announces only once it answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _npusuite(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", *args], capture_output=True, text=True,
                          timeout=timeout_s)


def test_a_taken_port_fails_before_loading_with_one_line(scale_repo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _npusuite("platform", "serve", "--model-root", str(scale_repo.root), "--port", str(port))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"npusuite: error: cannot listen on 127.0.0.1:{port}: the port is in use (another server? choose "
        "another --port)")
    assert "now serving" not in proc.stderr and "serving scale" not in proc.stderr  # nothing loaded or announced


def test_a_missing_repository_is_the_same_error_for_serve_and_models(tmp_path: Path):
    missing = tmp_path / "nothere"
    lines = set()
    for args in (["platform", "serve", "--model-root", str(missing)], ["models", "list", "--root", str(missing)],
                 ["models", "show", "m", "--root", str(missing)], ["models", "rollback", "m", "--root", str(missing)]):
        proc = _npusuite(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines.add(proc.stderr.strip().splitlines()[-1])
    assert lines == {f"npusuite: error: model repository {missing} does not exist (create it with "
                     f"`npusuite models add`)"}


def test_serving_is_announced_only_once_it_answers(scale_repo):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "npusuite.platform", "platform", "serve", "--model-root",
                             str(scale_repo.root), "--port", str(port), "--version-policy", "scale=1,2"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        for line in proc.stderr:
            if "serving" in line and f"127.0.0.1:{port}" in line:
                break
            assert time.monotonic() < deadline and proc.poll() is None, line
        assert "scale@1, scale@2" in line
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(60)
