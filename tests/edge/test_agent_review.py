"""The agent's CLI against the real review app (its inspection ingest, docs/contracts.md): NG results become cases
once each."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time

import cv2
import httpx

from npusuite.edge.results import png_b64
from npusuite.edge.simulate import sample_frames, write_sim_model

TOKEN = "edge-review-token-for-tests"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_agent_uploads_ng_results_to_the_review_app(tmp_path):
    port = _port()
    env = {**os.environ, "NPUSUITE_REVIEW_INGEST_TOKEN": TOKEN}
    env.pop("KAFKA_BOOTSTRAP", None)
    review_db = tmp_path / "review.db"
    review = subprocess.Popen([sys.executable, "-m", "npusuite.platform", "review", "serve", "--db", str(review_db),
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(url + "/login", timeout=2)
                break
            except httpx.HTTPError:
                assert review.poll() is None and time.monotonic() < deadline, "review app did not start"
                time.sleep(0.3)
        frames, truth = sample_frames(16, seed=5)
        (tmp_path / "frames").mkdir()
        for f in frames:
            cv2.imwrite(str(tmp_path / "frames" / f.name), f.image)
        write_sim_model(tmp_path / "model", "line-a", "1.0.0")
        cmd = [sys.executable, "-m", "npusuite.platform", "edge", "agent", "--box", str(tmp_path / "box"),
               "--device-id", "box-7", "--source", str(tmp_path / "frames"), "--pipeline", "sim",
               "--model", str(tmp_path / "model"), "--review-url", url, "--line", "line-b"]
        for _ in range(2):  # the second run finds every frame already recorded and sends nothing new
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr[-2000:]
        con = sqlite3.connect(review_db)
        got = sorted(r[0] for r in con.execute("SELECT external_id FROM cases WHERE kind = 'inspection'"))
        expected = sorted(f"box-7:frames:{f.name}" for f, ng in zip(frames, truth, strict=True) if ng)
        assert got == expected and len(got) == 4
        # the ingest is idempotent on our ids: a resend is "created": false
        again = httpx.post(url + "/api/ingest/inspections", headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"id": expected[0], "timestamp": "2026-01-01T00:00:00Z", "line": "line-b",
                                 "product": None, "image_png_b64": png_b64(frames[0].image), "heatmap_png_b64": None,
                                 "score": 0.1,
                                 "threshold": 0.02, "defective": True, "boxes": [], "model": "line-a@1.0.0"})
        assert again.status_code == 200 and again.json()["created"] is False, again.text
    finally:
        review.terminate()
        review.wait(20)
