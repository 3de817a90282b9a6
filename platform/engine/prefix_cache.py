"""Automatic prefix caching: the KV of prompt prefixes, kept by blocks of token ids, bounded in bytes, LRU.

Rules (vLLM's automatic prefix caching, at block granularity):
- A prompt is cut into blocks of ``block_tokens`` ids.  Block k's key is a
  hash of (block k-1's key, block k's ids), so one key names the whole prefix
  up to the end of its block, and two prompts share cached blocks exactly as
  far as they share leading blocks.  Keys are blake2b digests, not Python
  ``hash``: a collision would hand one prompt another prompt's KV.
- An entry is one block's KV for every layer (an opaque payload here: a tuple
  of tensors) and its size in bytes.  The sum of the sizes never exceeds
  ``max_bytes``: inserting evicts least-recently-used blocks first, and a
  block larger than the whole bound is not kept.
- :meth:`match` touches the blocks it walks from the LAST to the first, so a
  prefix's parent block is always more recently used than its children: LRU
  evicts leaves before the blocks they extend (an evicted parent would strand
  its children, unreachable but still counted).
- :meth:`match` never covers a whole prompt: at least one token is left to
  compute, because a prefill must return the last position's logits.
- Entries are immutable once stored; readers copy them into their own KV, so
  a cached block is shared read-only by every sequence that starts with it.
- The cache belongs to one set of weights (a cached KV is only valid for the
  model that computed it): the causal-LM runtime holds one per loaded model,
  so a hot swap starts with an empty cache.
- Thread-safe (one lock); counters (:meth:`stats`) count looked-up and hit
  tokens, inserted and evicted blocks.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

__all__ = ["PrefixCache", "PrefixCacheConfig", "payload_bytes"]


@dataclass(frozen=True)
class PrefixCacheConfig:
    #: bound on the cached KV, in bytes (0 disables the cache).
    max_bytes: int = 64 * 2**20
    #: tokens per block: prefixes are shared in whole blocks.
    block_tokens: int = 16


def payload_bytes(payload) -> int:
    """Bytes held by a payload: a tensor or nested tuples/lists of tensors."""
    if isinstance(payload, tuple | list):
        return sum(payload_bytes(p) for p in payload)
    return int(payload.numel() * payload.element_size())


@dataclass
class _Entry:
    payload: object
    nbytes: int


class PrefixCache:
    """Block-hashed KV of prompt prefixes with an LRU bound in bytes."""

    def __init__(self, config: PrefixCacheConfig | None = None):
        self.config = config or PrefixCacheConfig()
        if self.config.block_tokens < 1 or self.config.max_bytes < 0:
            raise ValueError(f"bad prefix cache config {self.config}")
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()  # oldest first
        self._lock = threading.Lock()
        self.bytes = 0
        self.looked_up_tokens = 0
        self.hit_tokens = 0
        self.inserted_blocks = 0
        self.evicted_blocks = 0

    @property
    def block_tokens(self) -> int:
        return self.config.block_tokens

    def __len__(self) -> int:
        return len(self._entries)

    def block_keys(self, ids: Sequence[int]) -> list[bytes]:
        """The chained key of every FULL block of ``ids``."""
        b, keys, parent = self.block_tokens, [], b""
        for start in range(0, len(ids) - b + 1, b):
            h = hashlib.blake2b(parent, digest_size=16)
            h.update(b"".join(int(t).to_bytes(4, "little", signed=True) for t in ids[start:start + b]))
            parent = h.digest()
            keys.append(parent)
        return keys

    def match(self, ids: Sequence[int], count: bool = True) -> tuple[list[bytes], list[object]]:
        """The keys and payloads of the longest run of cached leading blocks (leaving >= 1 token uncovered);
        ``count=False``: not a request (an internal probe), the hit counters stay as they are."""
        keys = self.block_keys(ids)[:(len(ids) - 1) // self.block_tokens]
        with self._lock:
            n = 0
            while n < len(keys) and keys[n] in self._entries:
                n += 1
            for key in reversed(keys[:n]):  # parents end up more recent than their children
                self._entries.move_to_end(key)
            if count:
                self.looked_up_tokens += len(ids)
                self.hit_tokens += n * self.block_tokens
            return keys[:n], [self._entries[k].payload for k in keys[:n]]

    def insert(self, ids: Sequence[int], payload_for_block: Callable[[int], object], skip: int = 0) -> int:
        """Store every full block of ``ids`` from block ``skip`` on that is not cached yet;
        ``payload_for_block(k)`` makes block k's payload (called only for blocks stored).  Returns blocks stored."""
        if self.config.max_bytes == 0:
            return 0
        keys = self.block_keys(ids)
        stored = 0
        for k in range(skip, len(keys)):
            with self._lock:
                if keys[k] in self._entries:
                    self._entries.move_to_end(keys[k])
                    continue
            payload = payload_for_block(k)
            nbytes = payload_bytes(payload)
            if nbytes > self.config.max_bytes:
                return stored
            with self._lock:
                while self.bytes + nbytes > self.config.max_bytes:
                    _, old = self._entries.popitem(last=False)
                    self.bytes -= old.nbytes
                    self.evicted_blocks += 1
                self._entries[keys[k]] = _Entry(payload, nbytes)
                self.bytes += nbytes
                self.inserted_blocks += 1
            stored += 1
        # the walk above touched parents first; touch them again leaf-first so they outlive their children
        with self._lock:
            for key in reversed(keys):
                if key in self._entries:
                    self._entries.move_to_end(key)
        return stored

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def stats(self) -> dict:
        with self._lock:
            return {"blocks": len(self._entries), "bytes": self.bytes, "max_bytes": self.config.max_bytes,
                    "block_tokens": self.block_tokens, "looked_up_tokens": self.looked_up_tokens,
                    "hit_tokens": self.hit_tokens, "inserted_blocks": self.inserted_blocks,
                    "evicted_blocks": self.evicted_blocks}
