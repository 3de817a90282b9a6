"""Which zone is an account's home: the routing rule of the dual-active deployment.

``home_zone(account_id, zones)`` is ``zones[crc32(account_id) % len(zones)]``
after sorting the zone names: a pure function of the account id and the *set*
of zones, the same in every process, language and release (CRC-32 of the UTF-8
bytes, as zlib, Java's ``java.util.zip.CRC32`` and every gateway compute it;
Python's ``hash()`` would change per process).  Each account has one home zone,
so its transactions are scored in one place and its state (the 24 h counts...)
lives in one changelog; the other zone holds a mirrored copy
(``<zone>.<group>-account-state``) to take the accounts over if the home zone
is lost (docs/kafka.md).

Rules: the zone list must be non-empty and without repeats (ValueError); the
order it is given in does not matter; changing the set of zones re-homes
accounts (a planned move, not a failover: drain first).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence


def home_zone(account_id: str, zones: Sequence[str]) -> str:
    ordered = sorted(zones)
    if not ordered or len(set(ordered)) != len(ordered):
        raise ValueError(f"zones must be distinct and non-empty, not {list(zones)!r}")
    return ordered[zlib.crc32(account_id.encode()) % len(ordered)]


__all__ = ["home_zone"]
