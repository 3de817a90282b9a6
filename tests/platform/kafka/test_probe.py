"""The Kafka reachability probe: a listening port passes, a dead one fails in seconds with a hint."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from npusuite.platform.errors import UserError
from npusuite.platform.kafka.probe import parse_bootstrap, probe_bootstrap


def _dead_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_listening_bootstrap_passes_even_after_a_dead_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        probe_bootstrap(f"127.0.0.1:{_dead_port()},127.0.0.1:{server.getsockname()[1]}", timeout_s=5)


def test_a_dead_bootstrap_names_the_address_and_the_fix():
    port = _dead_port()
    with pytest.raises(UserError) as err:
        probe_bootstrap(f"127.0.0.1:{port}", timeout_s=2)
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "npusuite kafka up" in message and "KAFKA_BOOTSTRAP" in message


@pytest.mark.parametrize("bad", ["", "nohostport", "host:", ":9092", "host:99999", "host:x", "a:1,,b:2"])
def test_a_malformed_bootstrap_is_a_user_error(bad: str):
    with pytest.raises(UserError, match="HOST:PORT"):
        parse_bootstrap(bad)


def test_fraud_run_without_a_broker_exits_2_with_one_line(tmp_path):
    port = _dead_port()
    proc = subprocess.run([sys.executable, "-m", "npusuite.platform", "fraud", "run",
                           "--bootstrap", f"127.0.0.1:{port}", "--model", "nothing", "--model-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("npusuite: error: cannot reach the Kafka broker at 127.0.0.1:")
    assert "npusuite kafka up" in last and "Traceback" not in proc.stderr
