"""sd_notify: the datagrams systemd would receive, on a real AF_UNIX socket standing in for it."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

from npusuite.platform.sd_notify import SdNotify
from npusuite.platform.settings import SystemdSettings


@pytest.fixture
def listener(tmp_path):
    """A datagram socket where systemd's notify socket would be; yields (path, receive)."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)

    def receive() -> str:
        return sock.recv(4096).decode()

    yield path, receive
    sock.close()


def test_ready_status_and_stopping_reach_the_socket(listener):
    path, receive = listener
    n = SdNotify(path)
    assert n.enabled
    assert n.ready("serving on :8600")
    assert receive() == "READY=1\nSTATUS=serving on :8600"
    assert n.status("3 devices")
    assert receive() == "STATUS=3 devices"
    assert n.stopping()
    assert receive() == "STOPPING=1"


def test_watchdog_pings_at_half_the_timeout(listener):
    path, receive = listener
    n = SdNotify(path, watchdog_usec=30_000_000)
    assert n.watchdog_interval_s() == 15.0
    assert n.watchdog()
    assert receive() == "WATCHDOG=1"


def test_watchdog_off_without_usec_or_for_another_pid(listener):
    path, _ = listener
    assert SdNotify(path).watchdog_interval_s() is None
    assert not SdNotify(path).watchdog()
    assert SdNotify(path, 30_000_000, watchdog_pid=os.getpid()).watchdog_interval_s() == 15.0
    assert SdNotify(path, 30_000_000, watchdog_pid=os.getpid() + 1).watchdog_interval_s() is None


def test_no_socket_means_no_op():
    n = SdNotify(None, watchdog_usec=30_000_000)
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.stopping()
    assert n.watchdog_interval_s() is None
    asyncio.run(asyncio.wait_for(n.watchdog_loop(), 1))  # returns at once


def test_abstract_namespace_socket():
    name = f"npusuite-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert SdNotify("@" + name).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_a_vanished_socket_returns_false_without_raising(tmp_path):
    assert not SdNotify(str(tmp_path / "gone")).ready()


def test_watchdog_loop_pings_repeatedly(listener):
    path, receive = listener
    n = SdNotify(path, watchdog_usec=20_000)  # a 10 ms period

    async def run_briefly():
        task = asyncio.create_task(n.watchdog_loop())
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(run_briefly())
    assert [receive(), receive(), receive()] == ["WATCHDOG=1"] * 3


def test_from_settings_reads_what_systemd_sets(monkeypatch, listener):
    path, receive = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = SdNotify.from_settings(SystemdSettings())
    assert n.watchdog_interval_s() == 2.0
    assert n.watchdog()
    assert receive() == "WATCHDOG=1"
