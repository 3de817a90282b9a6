"""The fraud scorer's account-state changelog topic (``<group>-account-state``): a binary format.

The topic is compacted, private to the fraud scorer and written in the same
Kafka transaction as the scores, alerts and consumed offsets (so it is read
``read_committed``).  Partition ``p`` holds the accounts of partition ``p``
of ``transactions``.  Nothing outside the scorer should read it; it is
described here so an operator can inspect it and so its layout cannot drift
unnoticed (a test compares it with the scorer's encoder).

* key: ``<account_id>#<seq mod R>``, UTF-8, where ``R`` is the scorer's ring
  size: compaction keeps each account's last ``R`` records.
* value: a 14-byte big-endian header (:data:`VALUE_HEADER_FORMAT`,
  :class:`ChangelogValueHeader`: ``seq`` u64, the transaction_id's UTF-8
  length u16, the snapshot's length u32), then the transaction_id, then the
  state snapshot (the scorer's own bytes, often empty: snapshots are written
  every ``R/2`` transactions), then the transaction's original JSON bytes
  (a :class:`~npusuite.platform.contracts.transaction.Transaction` as it
  arrived).
* no headers.
"""

from __future__ import annotations

import struct

from pydantic import BaseModel, ConfigDict, Field

#: ``struct`` format of the value's header.
VALUE_HEADER_FORMAT = ">QHI"
VALUE_HEADER = struct.Struct(VALUE_HEADER_FORMAT)


class ChangelogValueHeader(BaseModel):
    """The fixed-size header at the start of a changelog value."""

    model_config = ConfigDict(frozen=True)

    seq: int = Field(ge=0, lt=2**64, description="The account's transaction count at this record.")
    transaction_id_bytes: int = Field(ge=0, lt=2**16, description="Length of the UTF-8 transaction_id.")
    snapshot_bytes: int = Field(ge=0, lt=2**32, description="Length of the state snapshot (0: none).")

    def pack(self) -> bytes:
        return VALUE_HEADER.pack(self.seq, self.transaction_id_bytes, self.snapshot_bytes)

    @classmethod
    def unpack(cls, value: bytes) -> ChangelogValueHeader:
        """Raises ValueError when ``value`` is shorter than the header."""
        if len(value) < VALUE_HEADER.size:
            raise ValueError("changelog record shorter than its header")
        seq, tid, snap = VALUE_HEADER.unpack_from(value)
        return cls(seq=seq, transaction_id_bytes=tid, snapshot_bytes=snap)
