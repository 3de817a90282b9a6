"""Hostile image files: refused from their header, before a pixel is decoded, with a one-line reason."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from npusuite.inspection import images
from npusuite.inspection.images import ImageRefused, read_image
from npusuite.inspection.source import FrameSource, SourceConfig

HUGE = 20000


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width: int = HUGE, height: int = HUGE) -> bytes:
    """A valid grey PNG of ``width x height`` zeros (~400 kB), built row by row: the pixels never exist in memory."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one grey byte per pixel
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def huge_jpeg_header(width: int = HUGE, height: int = HUGE) -> bytes:
    """SOI, a baseline SOF0 announcing ``width x height`` (3 components) and an SOS: all a header parser reads."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3))
    sos = struct.pack(">B", 3) + b"".join(bytes([i, 0]) for i in (1, 2, 3)) + b"\x00\x3f\x00"
    return (b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof
            + b"\xff\xda" + struct.pack(">H", len(sos) + 2) + sos + b"\x00" * 64 + b"\xff\xd9")


def huge_bmp_header(width: int = HUGE, height: int = HUGE) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + 16, 0, 0, 14 + len(info)) + info + b"\x00" * 16


@pytest.mark.parametrize("make, suffix", [(huge_png, ".png"), (huge_jpeg_header, ".jpg"), (huge_bmp_header, ".bmp")])
def test_an_oversized_header_is_refused_with_its_size(tmp_path: Path, make, suffix: str):
    path = tmp_path / f"bomb{suffix}"
    path.write_bytes(make())
    with pytest.raises(ImageRefused, match=f"{HUGE} x {HUGE} px, over the limit") as err:
        read_image(path)
    assert "\n" not in str(err.value)


def test_a_20000px_png_in_a_folder_source_is_refused_without_decoding(tmp_path: Path):
    """Issue 12 defect 10: the 1.2 MB 20000 x 20000 PNG took 3.4 GB.  Peak RSS of a fresh process must stay small."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(huge_png())
    cv2.imwrite(str(folder / "ok.png"), np.full((64, 64, 3), 128, np.uint8))
    script = textwrap.dedent(f"""
        import json, resource, sys
        import cv2, numpy, PIL.Image, PIL.PngImagePlugin
        from npusuite.inspection.source import FrameSource, SourceConfig
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with FrameSource(SourceConfig({str(folder)!r})) as src:
            names = [f.name for f in src]
            stats = src.stats().__dict__
        grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps({{"grew_mb": grew_kb / 1024, "names": names, "stats": stats}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["grew_mb"] < 150, got  # decoding it would take >= 1144 MiB (20000 x 20000 x 3 bytes)
    assert got["names"] == ["ok.png"]
    assert got["stats"]["frames_refused"] == 1 and got["stats"]["frames_read"] == 1
    assert "bomb.png" in got["stats"]["last_error"] and f"{HUGE} x {HUGE}" in got["stats"]["last_error"]


def test_files_that_are_not_images_or_are_truncated_are_refused(tmp_path: Path):
    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), np.full((32, 48, 3), 7, np.uint8))
    assert read_image(ok).shape == (32, 48, 3)
    cases = {
        "text.png": (b"hello, not an image", "not a PNG, JPEG, BMP or TIFF"),
        "cut.png": (ok.read_bytes()[:40], "unreadable PNG header"),
        "noidat.png": (ok.read_bytes()[:-25], "could not be decoded"),
        "empty.jpg": (b"", "not a PNG, JPEG, BMP or TIFF"),
        "badihdr.png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "unreadable PNG header"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageRefused, match=reason):
            read_image(tmp_path / name)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageRefused, match="cannot read"):
        read_image(tmp_path / "dir.png")


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_FILE_BYTES", 1000)
    big = tmp_path / "big.bmp"
    big.write_bytes(huge_bmp_header(10, 10) + b"\x00" * 2000)
    with pytest.raises(ImageRefused, match="over the limit of 1000 bytes"):
        read_image(big)


def test_a_video_announcing_frames_over_the_limit_is_refused_when_it_opens(tmp_path: Path, monkeypatch):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for _ in range(5):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 64 * 48 - 1)  # the clip is one pixel over this limit
    with FrameSource(SourceConfig(str(clip), realtime=False, reconnect_initial_s=0.01, reconnect_max_s=0.01)) as src:
        frames = list(src)
        stats = src.stats()
    assert frames == [] and stats.finished and stats.reconnects == 0
    assert "64 x 48 px, over the limit" in stats.last_error
