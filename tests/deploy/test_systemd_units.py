"""deploy/systemd: the edge agent's and the fleet server's units, checked by the real
systemd-analyze (verify, and the offline security review), their command lines parsed by the real
CLI, and the fleet server's sd_notify conversation as systemd would see it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
NAMES = ("npusuite-edge-agent.service", "npusuite-fleet-server.service")
#: Highest overall exposure `systemd-analyze security` may score (0 = locked down, 10 = exposed).
#: The agent needs device nodes (camera, GPU/NPU) and W+X pages for torch, hence its margin.
MAX_EXPOSURE = {"npusuite-edge-agent.service": 2.5, "npusuite-fleet-server.service": 2.0}
#: What the units' EnvironmentFile and systemd would set, for parsing ExecStart.
EXAMPLE_ENV = {"STATE_DIRECTORY": "/var/lib/npusuite-x", "EDGE_DEVICE_ID": "box-17", "EDGE_SOURCE": "/dev/video0",
               "EDGE_ARGS": "--fleet-url https://fleet.example:8600 --modbus 10.0.0.9 --fail-safe --status-port 8700",
               "FLEET_HOST": "127.0.0.1", "FLEET_PORT": "8600", "FLEET_ARGS": "--release-dir /srv/release"}


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: run deploy/system-deps.sh (Debian package systemd)")
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A filesystem root for `systemd-analyze --root`: the host's stock units (for the default
    dependencies), an executable where the units expect npusuite, and our units."""
    root = tmp_path_factory.mktemp("root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    exe = root / "opt/npusuite/bin/npusuite"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in NAMES:
        shutil.copy(UNITS / name, root / "etc/systemd/system" / name)
    return root


def directives(name: str) -> dict[str, list[str]]:
    """Each key's values, in order (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("name", NAMES)
def test_systemd_analyze_verify_is_clean(systemd_analyze, root, name):
    proc = subprocess.run([systemd_analyze, "verify", f"--root={root}", name], capture_output=True, text=True,
                          timeout=60)
    # verify exits 0 on directives it ignores ("Unknown key", "Failed to parse"): any output fails.
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_verify_reports_a_bad_directive(systemd_analyze, root):
    bad = root / "etc/systemd/system/npusuite-bad.service"
    bad.write_text((UNITS / NAMES[1]).read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    proc = subprocess.run([systemd_analyze, "verify", f"--root={root}", bad.name], capture_output=True, text=True,
                          timeout=60)
    assert "Unknown key" in proc.stderr and "ProtectSytem" in proc.stderr


@pytest.mark.parametrize("name", NAMES)
def test_security_exposure_is_low(systemd_analyze, root, name):
    proc = subprocess.run([systemd_analyze, "security", "--offline=yes", f"--root={root}",
                           f"--threshold={round(MAX_EXPOSURE[name] * 10)}", name],  # in tenths
                          capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert score, proc.stdout + proc.stderr
    assert proc.returncode == 0 and float(score.group(1)) <= MAX_EXPOSURE[name], proc.stdout[-2000:]


@pytest.mark.parametrize("name", NAMES)
def test_watchdog_restart_and_sandbox(name):
    d = directives(name)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] and d["Restart"] == ["always"]
    assert d["ProtectSystem"] == ["strict"] and d["NoNewPrivileges"] == ["yes"]
    assert d["PrivateTmp"] == ["yes"] and d["ProtectHome"] == ["yes"]
    assert d["DynamicUser"] == ["yes"] and "User" not in d
    assert d["CapabilityBoundingSet"] == [""] and d["AmbientCapabilities"] == [""]
    assert d["StateDirectory"], "the one writable place"


@pytest.mark.parametrize("name", NAMES)
def test_exec_start_is_a_real_cli_invocation(parse_cli, name):
    (line,) = directives(name)["ExecStart"]
    # systemd's expansion: ${VAR} is one word, $VAR splits on whitespace.
    words = []
    for word in shlex.split(line):
        if re.fullmatch(r"\$\w+", word):
            words += EXAMPLE_ENV[word[1:]].split()
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: EXAMPLE_ENV[m.group(1)], word))
    assert words[0] == "/opt/npusuite/bin/npusuite"
    path, params = parse_cli(words[1:])
    assert path == {"npusuite-edge-agent.service": ["edge", "agent"],
                    "npusuite-fleet-server.service": ["edge", "fleet", "serve"]}[name]
    if "box" in params:
        assert str(params["box"]) == EXAMPLE_ENV["STATE_DIRECTORY"]
    else:
        assert str(params["db"]).startswith(EXAMPLE_ENV["STATE_DIRECTORY"]) and params["host"] == "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fleet_server_speaks_sd_notify_as_its_unit_expects(tmp_path):
    """`npusuite edge fleet serve` under a stand-in for systemd: READY=1 at start, WATCHDOG=1 more
    often than WatchdogSec, STOPPING=1 on SIGTERM."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "npusuite.platform", "edge", "fleet", "serve",
                             "--db", str(tmp_path / "fleet.db"), "--port", str(_free_port())],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        received = [notify.recv(4096).decode() for _ in range(3)]
        assert received[0].startswith("READY=1") or "READY=1" in received, (received, proc.poll())
        assert "WATCHDOG=1" in received
        notify.settimeout(1)
        assert notify.recv(4096).decode() == "WATCHDOG=1"  # a second ping within 2 x 0.2 s
        proc.send_signal(signal.SIGTERM)
        notify.settimeout(10)
        tail = []
        while "STOPPING=1" not in tail:
            tail.append(notify.recv(4096).decode())
        # uvicorn re-raises SIGTERM after its graceful shutdown; systemd counts that as a clean stop.
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
