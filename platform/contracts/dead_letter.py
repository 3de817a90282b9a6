"""The dead-letter topics (``transactions-dlq``, ``fraud-alerts-dlq``): a record no consumer could use.

Wire format, the same for every dead-letter topic of the suite (the
convention of Kafka Connect's dead-letter queues):

* key and value: the original record's bytes, untouched (null stays null),
  so the record can be fixed and replayed as it was;
* header :data:`REASON_HEADER` (``npusuite.dlq.reason``): why, UTF-8, one
  line of at most :data:`MAX_REASON_CHARS` characters (a longer one is cut and
  ends with ``…``; a producer may cut shorter, the fraud scorer cuts at
  :data:`FRAUD_REASON_CHARS`); for a record that failed while it was handled
  the reason is the exception's type and message;
* header :data:`SOURCE_HEADER` (``npusuite.dlq.source``): where it was read,
  ``<topic>/<partition>@<offset>``.

A dead letter is written in the same Kafka transaction as the consumer's
offsets where the consumer is transactional (the fraud scorer), so a record is
dead-lettered once; an at-least-once consumer (the review app) may write the
same dead letter twice after a broker failure, never lose it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

REASON_HEADER = "npusuite.dlq.reason"
SOURCE_HEADER = "npusuite.dlq.source"
#: Longest reason any producer writes (characters).
MAX_REASON_CHARS = 500
#: The fraud scorer's own, shorter, limit.
FRAUD_REASON_CHARS = 300
#: ``<topic>/<partition>@<offset>``; Kafka topic names are ``[a-zA-Z0-9._-]``, at most 249 characters.
SOURCE_PATTERN = r"^[a-zA-Z0-9._-]{1,249}/\d+@\d+$"
CUT_MARKER = "\u2026"


class DeadLetterHeaders(BaseModel):
    """The headers of a dead letter (values are UTF-8 on the wire)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    reason: str = Field(alias=REASON_HEADER, min_length=1, max_length=MAX_REASON_CHARS)
    source: str = Field(alias=SOURCE_HEADER, pattern=SOURCE_PATTERN)

    @classmethod
    def of(cls, reason: str, topic: str, partition: int, offset: int,
           limit: int = MAX_REASON_CHARS) -> DeadLetterHeaders:
        """The headers for the record read at ``topic/partition@offset``; ``reason`` made one line of ``limit``.

        Never fails on the reason: a lone surrogate (quoted from hostile input) becomes ``?``."""
        text = one_line(reason, limit).encode("utf-8", "replace").decode("utf-8") or "(no reason)"
        return cls(reason=text, source=f"{topic}/{partition}@{offset}")

    def to_kafka(self) -> list[tuple[str, bytes]]:
        return [(REASON_HEADER, self.reason.encode()), (SOURCE_HEADER, self.source.encode())]

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes]] | None) -> DeadLetterHeaders:
        """Raises pydantic's ValidationError when a header is missing or malformed."""
        return cls.model_validate({k: v.decode("utf-8", "replace") for k, v in headers or () if v is not None})


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters ending with ``…``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + CUT_MARKER
