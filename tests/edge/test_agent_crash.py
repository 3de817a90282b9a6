"""The agent SIGKILLed five times while producing, with the upstream down part of the time:
upstream ends with every result exactly once."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from npusuite.edge.simulate import sample_frames, write_sim_model

N_FRAMES = 90
TOKEN = "ingest-test-token"


def outbox_rows(box: Path) -> int:
    db = box / "outbox.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM delivered)").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def start_agent(tmp: Path, box: Path, url: str, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "npusuite.platform", "edge", "agent", "--box", str(box), "--device-id", "box-1",
           "--source", str(tmp / "frames"), "--pipeline", "sim", "--model", str(tmp / "model"),
           "--review-url", url, "--ingest-token", TOKEN, "--send-ok", "--frame-interval-ms", "40", "--fsync", "full"]
    env = {**os.environ, "NPUSUITE_LOG_LEVEL": "INFO"}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


# slow-marked to keep the default run short (`make test-all` runs it): ~16 s
@pytest.mark.slow
def test_sigkill_five_times_with_upstream_outages(tmp_path, serve, ingest_double):
    frames, truth = sample_frames(N_FRAMES, seed=3)
    (tmp_path / "frames").mkdir()
    for f in frames:
        cv2.imwrite(str(tmp_path / "frames" / f.name), f.image)
    write_sim_model(tmp_path / "model", "line-a", "1.0.0")
    box = tmp_path / "box"
    upstream = ingest_double(TOKEN)
    srv = serve(upstream.app)
    port, url = srv.port, srv.url
    rng = random.Random(7)
    log = (tmp_path / "agent.log").open("ab")
    mid_stream_kills = 0
    for kill in range(5):
        upstream_down = kill in (1, 2, 3)  # the link is down across three of the restarts
        if upstream_down and srv.server is not None and not srv.server.should_exit:
            srv.stop()
        elif not upstream_down and (srv.server is None or srv.server.should_exit):
            srv = serve(upstream.app, port=port)
        before = outbox_rows(box)
        proc = start_agent(tmp_path, box, url, log)
        target = before + rng.randint(4, 12)
        deadline = time.monotonic() + 120
        while outbox_rows(box) < min(target, N_FRAMES) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, f"agent exited early; see {tmp_path / 'agent.log'}"
        time.sleep(rng.uniform(0.0, 0.2))  # land the kill at an arbitrary point of a frame
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        rows = outbox_rows(box)
        mid_stream_kills += 0 < rows < N_FRAMES
    assert mid_stream_kills == 5  # every kill hit a line that was still producing

    if srv.server is None or srv.server.should_exit:
        srv = serve(upstream.app, port=port)
    proc = start_agent(tmp_path, box, url, log)
    assert proc.wait(180) == 0, f"see {tmp_path / 'agent.log'}"

    posts, cases = upstream.counts()
    ids = upstream.case_ids()
    expected = {f"box-1:frames:{f.name}" for f in frames}
    assert len(ids) == len(set(ids)) == cases == N_FRAMES
    assert set(ids) == expected  # every result, none lost, none invented
    assert posts >= cases  # resends after kills are answered "created": false, never stored twice
    con = sqlite3.connect(box / "outbox.db")
    assert con.execute("SELECT count(*) FROM results").fetchone()[0] == 0  # outbox drained
    assert con.execute("SELECT value FROM counters WHERE name = 'boot'").fetchone()[0] == 6
    ng = {f"box-1:frames:{f.name}" for f, t in zip(frames, truth, strict=True) if t}
    con2 = sqlite3.connect(upstream.db_path)
    stored_ng = {r[0] for r in con2.execute("SELECT id FROM cases WHERE defective = 1")}
    assert stored_ng == ng
