"""The capture thread against real files: drop-oldest, reconnect with backoff, timestamps."""

import os
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from npusuite.inspection.source import FrameSource, SourceConfig
from npusuite.platform.errors import UserError


def _numbered_clip(path: Path, frames: int = 240) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (64, 64))
    rng = np.random.default_rng(0)
    for i in range(frames):
        img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        img[:16] = i  # the frame number, readable back through JPEG
        writer.write(img)
    writer.release()


def test_killed_video_file_reconnects_resumes_and_exposes_drop_counters(tmp_path: Path):
    clip, backup = tmp_path / "line.avi", tmp_path / "line-full.avi"
    _numbered_clip(clip)
    shutil.copy(clip, backup)
    cfg = SourceConfig(str(clip), queue_size=4, fps=100.0, reconnect_initial_s=0.1, reconnect_max_s=0.4)
    got, ids = [], []
    killed = threading.Event()

    def restore() -> None:
        shutil.copy(backup, clip)  # the stream comes back

    with FrameSource(cfg) as src:
        while True:
            frame = src.get(timeout_s=30)
            if frame is None:
                break
            got.append(frame)
            ids.append(int(np.median(frame.image[2:14])))
            if len(got) == 40 and not killed.is_set():
                with clip.open("r+b") as fh:  # kill the stream midway: the file loses its second half
                    fh.truncate(os.path.getsize(clip) // 2)
                killed.set()
                threading.Timer(1.5, restore).start()
            time.sleep(0.03)  # a consumer slower than the 100 fps source: the queue must drop
        stats = src.stats()
    assert killed.is_set()
    assert stats.reconnects >= 1, stats
    assert stats.finished and stats.last_error is None
    assert stats.frames_read == 240  # resumed where it died: no frame read twice, none skipped
    assert stats.frames_dropped > 0 and stats.frames_dropped + len(got) == stats.frames_read
    seqs = [f.seq for f in got]
    assert seqs == sorted(set(seqs))  # dropped frames show as gaps in seq, never reordering
    assert abs(ids[-1] - 239) <= 2 and all(abs(i - s) <= 2 for i, s in zip(ids, seqs, strict=True))
    stamps = [f.timestamp for f in got]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60


def test_a_full_queue_drops_the_oldest_frames(tmp_path: Path):
    clip = tmp_path / "clip.avi"
    _numbered_clip(clip, 60)
    with FrameSource(SourceConfig(str(clip), queue_size=3, realtime=False)) as src:
        while not src.stats().finished:
            time.sleep(0.05)
        frames = list(src)
        stats = src.stats()
    assert [f.seq for f in frames] == [57, 58, 59]  # the newest survive
    assert stats.frames_dropped == 57


def test_an_image_folder_is_read_once_in_order_without_drops(tmp_path: Path):
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((16, 16, 3), i, np.uint8))
    with FrameSource(SourceConfig(str(tmp_path), queue_size=2)) as src:
        frames = []
        for f in src:
            frames.append(f)
            time.sleep(0.01)
    assert [f.name for f in frames] == [f"{i:02d}.png" for i in range(12)]
    assert src.stats().frames_dropped == 0


def test_a_source_that_never_opens_gives_up_after_max_reconnects(tmp_path: Path):
    clip = tmp_path / "broken.avi"
    clip.write_bytes(b"not a video")
    with FrameSource(SourceConfig(str(clip), reconnect_initial_s=0.05, reconnect_max_s=0.05, max_reconnects=2)) as src:
        assert src.get(timeout_s=20) is None
        stats = src.stats()
    assert stats.finished and stats.frames_read == 0 and "cannot open" in stats.last_error


@pytest.mark.parametrize("uri", ["/no/such/clip.avi", "relative/missing"])
def test_missing_sources_are_refused(uri: str):
    with pytest.raises(UserError):
        FrameSource(SourceConfig(uri))


def test_empty_folder_is_refused(tmp_path: Path):
    with pytest.raises(UserError, match="no images"):
        FrameSource(SourceConfig(str(tmp_path)))
