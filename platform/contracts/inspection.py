"""One inspection result: the ``inspection-results`` topic and ``POST /api/ingest/inspections``.

One record, :class:`InspectionResult`, is what the edge agent stores in its
outbox and sends (to Kafka with key = ``id``, or to the review app over
HTTP), what ``npusuite inspection run --review-url`` posts, and what the
review app ingests.  Producers build it with :func:`build_inspection_result`;
consumers parse it with :func:`parse_inspection_result`.

Rules of the record:

* ``id`` (1-128 characters) is the idempotency key: a consumer that sees an
  id again changes nothing (the review app answers 200 ``created: false``).
* ``timestamp``: capture time, RFC 3339 with a UTC offset.
* ``line`` 1-64 characters, ``product`` null or at most 64, ``model``
  (``name@version``) 1-128.
* ``image_png_b64``: the frame as base64 PNG; ``heatmap_png_b64``: base64
  PNG or null (producers attach it to NG results only).  Both must be valid
  base64 of a PNG with pixels (read from its header; nothing is decoded).
* ``score`` and ``threshold`` finite; ``defective`` as the inspector decided
  (``score >= threshold``).
* ``boxes``: at most 256 ``[x, y, w, h]`` in image pixels, finite, ``w, h >= 0``,
  inside the image with :data:`BOX_SLACK_PX` of rounding.

Field rules are checked by the model; the image and box rules need the PNG
header, so :func:`parse_inspection_result` checks them after the model (in
that order: fields, timestamp offset, image, boxes, heatmap).  Unknown fields
are ignored.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field

from npusuite.platform.contracts.parsing import parse_record
from npusuite.platform.contracts.transaction import MAX_ID_CHARS
from npusuite.platform.errors import SchemaError

#: A box may end this many pixels past its image (the inspector rounds boxes scaled back to frame size).
BOX_SLACK_PX = 1.0
MAX_BOXES = 256
MAX_LINE_CHARS = 64
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class InspectionResult(BaseModel):
    """The verdict on one captured part."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Idempotency key.")
    timestamp: datetime = Field(description="Capture time, RFC 3339 with a UTC offset.")
    line: str = Field(min_length=1, max_length=MAX_LINE_CHARS)
    product: str | None = Field(default=None, max_length=MAX_LINE_CHARS)
    image_png_b64: str = Field(min_length=1, description="The frame, base64 PNG.")
    heatmap_png_b64: str | None = Field(default=None, description="Anomaly heatmap, base64 PNG (NG results).")
    score: float = Field(allow_inf_nan=False)
    threshold: float = Field(allow_inf_nan=False)
    defective: bool
    boxes: list[tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]] = Field(
        default_factory=list, max_length=MAX_BOXES, description="[x, y, w, h] in image pixels.")
    model: str = Field(min_length=1, max_length=128, description="name@version.")


class _Frame(Protocol):
    timestamp: float


class Verdict(Protocol):
    """What :func:`build_inspection_result` reads of an inspector's verdict (``npusuite.inspection``'s
    ``Inspection`` has it)."""

    @property
    def frame(self) -> _Frame: ...
    @property
    def score(self) -> float: ...
    @property
    def threshold(self) -> float: ...
    @property
    def defective(self) -> bool: ...
    @property
    def boxes(self) -> Sequence[Sequence[float]]: ...
    @property
    def model(self) -> str: ...
    @property
    def product(self) -> str | None: ...


def build_inspection_result(verdict: Verdict, *, record_id: str, line: str, image_png: bytes,
                            heatmap_png: bytes | None, product: str | None = None,
                            model: str | None = None) -> InspectionResult:
    """The record for ``verdict``: ``product`` and ``model`` override the verdict's own when given; boxes are
    whole pixels.  Raises pydantic's ValidationError when a field breaks the record's rules."""
    return InspectionResult(
        id=record_id, timestamp=datetime.fromtimestamp(verdict.frame.timestamp, tz=UTC), line=line,
        product=product if product is not None else verdict.product,
        image_png_b64=base64.b64encode(image_png).decode(),
        heatmap_png_b64=base64.b64encode(heatmap_png).decode() if heatmap_png is not None else None,
        score=float(verdict.score), threshold=float(verdict.threshold), defective=bool(verdict.defective),
        boxes=[tuple(int(v) for v in b) for b in verdict.boxes], model=model or verdict.model)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG header.  Raises SchemaError when DATA is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise SchemaError("not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise SchemaError("PNG image has no pixels")
    return width, height


def decode_png_b64(text: str, field: str) -> tuple[bytes, int, int]:
    """Raises SchemaError naming FIELD when TEXT is not base64 of a PNG."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SchemaError(f"field '{field}': not valid base64") from None
    try:
        width, height = png_size(data)
    except SchemaError as exc:
        raise SchemaError(f"field '{field}': {exc}") from None
    return data, width, height


def parse_inspection_result(raw: bytes | str | dict, max_bytes: int | None = None) -> InspectionResult:
    """Raises SchemaError on a bad body, including images that are not PNG and boxes outside the image."""
    rec = parse_record(InspectionResult, raw, max_bytes)
    if rec.timestamp.tzinfo is None:
        raise SchemaError("field 'timestamp': must carry a UTC offset (RFC 3339)")
    _image, width, height = decode_png_b64(rec.image_png_b64, "image_png_b64")
    for i, (x, y, w, h) in enumerate(rec.boxes):
        if w < 0 or h < 0:
            raise SchemaError(f"field 'boxes.{i}': width and height must be >= 0")
        if x < 0 or y < 0 or x + w > width + BOX_SLACK_PX or y + h > height + BOX_SLACK_PX:
            raise SchemaError(f"field 'boxes.{i}': box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the "
                              f"{width}x{height} image")
    if rec.heatmap_png_b64 is not None:
        decode_png_b64(rec.heatmap_png_b64, "heatmap_png_b64")
    return rec
