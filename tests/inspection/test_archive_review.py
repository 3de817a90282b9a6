"""NG archive retention, and NG posting to the real review app (docs/contracts.md)."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from npusuite.inspection.archive import ArchiveConfig, NgArchive
from npusuite.inspection.records import Frame, Inspection
from npusuite.inspection.review import ReviewConfig, ReviewPoster

TOKEN = "inspection-review-token-for-tests"


def _ng(seq: int, t: float, score: float = 0.9) -> Inspection:
    img = np.full((16, 16, 3), seq % 255, np.uint8)
    heat = np.zeros((16, 16), np.float32)
    heat[4:8, 4:8] = score
    return Inspection(Frame(img, t, "cam0", seq), score, 0.5, heat, [(4, 4, 4, 4)], 2.0, "washer@1", "washer")


def test_archive_keeps_the_newest_records_within_its_bounds(tmp_path: Path):
    archive = NgArchive(ArchiveConfig(tmp_path / "ng", max_records=3, line="L"))
    t0 = time.time()
    for seq in range(7):
        archive.save(_ng(seq, t0 + seq))
    records = archive.records()
    assert len(records) == 3 and archive.deleted == 4
    assert [json.loads((r / "record.json").read_text())["seq"] for r in records] == [4, 5, 6]
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "ng").iterdir())
    ok = Inspection(_ng(9, t0).frame, 0.1, 0.5, np.zeros((16, 16), np.float32), [], 1.0, "washer@1")
    with pytest.raises(ValueError):
        archive.save(ok)
    # a byte bound: one record is a few hundred bytes, so 1 kB keeps only the newest one or two
    small = NgArchive(ArchiveConfig(tmp_path / "ng2", max_records=100, max_bytes=1024))
    for seq in range(5):
        small.save(_ng(seq, t0 + seq))
    assert 1 <= len(small.records()) < 5
    reopened = NgArchive(ArchiveConfig(tmp_path / "ng", max_records=2))
    reopened.save(_ng(7, t0 + 7))
    assert len(reopened.records()) == 2  # retention counts records written by an earlier process


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def review_app(tmp_path: Path):
    port = _port()
    env = {**os.environ, "NPUSUITE_REVIEW_INGEST_TOKEN": TOKEN}
    env.pop("KAFKA_BOOTSTRAP", None)
    db = tmp_path / "review.db"
    proc = subprocess.Popen([sys.executable, "-m", "npusuite.platform", "review", "serve", "--db", str(db), "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(url + "/login", timeout=2)
            break
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, "review app did not start"
            time.sleep(0.3)
    try:
        yield url, db
    finally:
        proc.terminate()
        proc.wait(20)


def test_ng_results_become_review_cases_once_each(review_app):
    url, db = review_app
    t0 = time.time()
    poster = ReviewPoster(ReviewConfig(url=url, token=TOKEN, line="washer-line"))
    for seq in range(3):
        poster.submit(_ng(seq, t0 + seq))
    poster.submit(_ng(1, t0 + 1))  # the same part again (e.g. a retry after a lost answer)
    poster.close()
    stats = poster.stats()
    assert (stats.posted, stats.duplicates, stats.refused, stats.failed) == (3, 1, 0, 0)
    con = sqlite3.connect(db)
    ids = sorted(r[0] for r in con.execute("SELECT external_id FROM cases WHERE kind = 'inspection'"))
    assert ids == sorted(f"washer-line:{int(round((t0 + s) * 1e6))}:{s}" for s in range(3))

    wrong = ReviewPoster(ReviewConfig(url=url, token="not-the-token", line="washer-line"))
    wrong.submit(_ng(5, t0 + 5))
    wrong.close()
    assert wrong.stats().refused == 1 and wrong.stats().posted == 0
