"""Image files in, ``HxWx3`` BGR arrays out: the one place inspection and edge decode an image.

Rules (what every file, folder, health sample and training image goes through):

* Only PNG, JPEG, BMP and TIFF are accepted, recognised by their magic bytes
  (not their file name).  Anything else is refused.
* Dimensions are read from the header **before** any pixel is decoded
  (the format's own Pillow parser, which reads only the header), and an image
  wider or taller than :data:`MAX_IMAGE_SIDE` or with more than
  :data:`MAX_IMAGE_PIXELS` pixels is refused.  A 1 MB PNG can announce
  20000 x 20000 pixels; ``cv2.imread`` would allocate the 1.2 GB it decodes to
  (3.4 GB peak) before anyone could object.
* The header must name the same format as the magic bytes (no polyglots), and
  the bytes checked are the bytes decoded: the file is read once (refused over
  :data:`MAX_IMAGE_FILE_BYTES`), checked, then handed to ``cv2.imdecode``.
* Every refusal is an :class:`ImageRefused` (a :class:`UserError`) with a
  one-line reason; the decoded array is checked against the limit again
  (defence in depth), and is always ``uint8`` with 3 channels.

Live streams (cameras, RTSP, video files) are decoded by OpenCV's video
backends; :func:`check_frame_size` applies the same limit to the size a
stream announces when it opens and to every frame it delivers.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

#: File suffixes looked at when a folder is scanned.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Most pixels (width x height) an image may have: 16.7 MP, e.g. 4096 x 4096 (48 MiB as BGR; the heatmap
#: the inspector returns at frame size adds 64 MiB of float32).
MAX_IMAGE_PIXELS = 4096 * 4096
#: Longest side accepted, so a 1 x 16M strip is refused too.
MAX_IMAGE_SIDE = 16384
#: Largest image file read (an uncompressed 32-bit BMP at the pixel limit is 64 MiB).
MAX_IMAGE_FILE_BYTES = 80 * 1024 * 1024

# Magic bytes -> the Pillow format name the header must agree with.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


class ImageRefused(UserError):
    """An image file or frame that is not decoded: unknown format, unreadable header, or over the size limit."""


def check_frame_size(width: int, height: int, what: str = "image") -> None:
    """Raises :class:`ImageRefused` when ``width x height`` is over :data:`MAX_IMAGE_PIXELS` or a side too long."""
    if width < 1 or height < 1:
        raise ImageRefused(f"{what} has no pixels ({width} x {height})")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageRefused(f"{what} is {width} x {height} px, over the limit (at most {MAX_IMAGE_PIXELS} "
                           f"pixels, {MAX_IMAGE_SIDE} px a side)")


def image_format(data: bytes) -> str | None:
    """``PNG``, ``JPEG``, ``BMP`` or ``TIFF`` from the magic bytes; ``None`` for anything else."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def header_size(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` from the header alone, no pixels decoded.  Raises :class:`ImageRefused`."""
    from PIL import Image

    fmt = image_format(data)
    if fmt is None:
        raise ImageRefused("not a PNG, JPEG, BMP or TIFF image")
    Image.init()
    factory = Image.OPEN[fmt][0]  # the format's own parser: no guessing, and no DecompressionBombError
    try:                          # (our limit, applied by the caller, is the stricter one)
        with factory(io.BytesIO(data)) as img:  # lazy: parses the header only
            width, height = img.size
    except Exception as exc:  # Pillow raises many types on a corrupt header; all mean the same here
        raise ImageRefused(f"unreadable {fmt} header ({type(exc).__name__})") from None
    return fmt, width, height


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """``HxWx3`` uint8 BGR from encoded bytes, after the header check.  Raises :class:`ImageRefused`."""
    import cv2

    if len(data) > MAX_IMAGE_FILE_BYTES:
        raise ImageRefused(f"{what}: {len(data)} bytes, over the limit of {MAX_IMAGE_FILE_BYTES} bytes")
    try:
        fmt, width, height = header_size(data)
    except ImageRefused as exc:
        raise ImageRefused(f"{what}: {exc}") from None
    check_frame_size(width, height, f"{what} ({fmt})")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageRefused(f"{what}: {fmt} data could not be decoded")
    check_frame_size(image.shape[1], image.shape[0], what)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, :3])


def read_image(path: Path) -> np.ndarray:
    """Decode the image file at ``path`` (see the module rules).  Raises :class:`ImageRefused`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise ImageRefused(f"{path}: {size} bytes, over the limit of {MAX_IMAGE_FILE_BYTES} bytes")
        with path.open("rb") as fh:
            data = fh.read(MAX_IMAGE_FILE_BYTES + 1)  # never more, even if the file grew since stat()
    except OSError as exc:
        raise ImageRefused(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return decode_image(data, str(path))


def list_images(folder: Path) -> list[Path]:
    """Files under ``folder`` (recursively) with an image suffix, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclass(frozen=True, slots=True)
class ImageFile:
    """One file of a folder scan: ``image`` when it decoded, else ``reason`` says why not."""

    path: Path
    name: str  # relative to the scanned folder
    image: np.ndarray | None
    reason: str | None


def scan_folder(folder: Path, paths: list[Path] | None = None) -> Iterator[ImageFile]:
    """Every image file under ``folder`` in sorted order, decoded or with the reason it was refused."""
    folder = Path(folder)
    for path in list_images(folder) if paths is None else paths:
        name = str(path.relative_to(folder))
        try:
            yield ImageFile(path, name, read_image(path), None)
        except ImageRefused as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            logger.warning("skipping image %s: %s", path, reason)
            yield ImageFile(path, name, None, reason)


def working_shape(width: int, height: int, size_px: int, multiple_px: int = 1) -> tuple[int, int]:
    """``(width, height)`` of the working frame for a ``width x height`` image: the longer side becomes
    ``size_px`` (never more than the image's own: nothing is gained by upscaling), the shorter one keeps the
    aspect ratio; both are rounded to a multiple of ``multiple_px`` (at least one multiple).  Raises
    :class:`UserError` for a working size that is not such a multiple."""
    if size_px < multiple_px or size_px % multiple_px:
        raise UserError(f"--size {size_px} must be a positive multiple of {multiple_px} px")
    scale = min(size_px, max(width, height)) / max(width, height)

    def side(v: int) -> int:
        return max(multiple_px, int(round(v * scale / multiple_px)) * multiple_px)

    return side(width), side(height)


def to_working(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (uint8 ``HxWx3``) resized to ``shape = (width, height)`` with area interpolation, exactly as the
    :class:`~npusuite.inspection.inspector.Inspector` resizes a frame (so training, calibration and the line see
    the same pixels)."""
    import cv2

    if image.shape[1] == shape[0] and image.shape[0] == shape[1]:
        return image
    return cv2.resize(image, shape, interpolation=cv2.INTER_AREA)
