"""Static KV cache for decoding: one preallocated slot per running sequence, never rebuilt.

Rules:
- Buffers are allocated once, at the first join (shapes taken from the
  prefill's KV): per layer, keys and values ``[max_slots, heads,
  max_tokens, head_dim]``.  A sequence owns one slot; the KV of its position p
  lives at index p of its slot, so there is no padding and a slot's length is
  its sequence's length.
- Joining copies a prefill's real KV columns into the lowest free slot;
  leaving frees the slot.  Neither moves any other sequence's KV, and nothing
  is concatenated or re-padded per step (the dynamic path's cost).
- A decode step runs over the first ``bucket`` slots: the smallest of
  :data:`BUCKETS` that covers the highest occupied slot, so the step has a
  few fixed shapes (one captured graph each, :mod:`decode_graphs`).  Free
  slots inside the bucket compute rows nobody reads (rows never attend to
  each other); what they write is overwritten when the slot is taken.
- The step writes each row's new KV at index = its length and attends to the
  indices <= its length (an additive mask made inside the step from the
  lengths).  Lengths advance only in :meth:`StaticKVCache.commit`, after a
  step succeeded, so a failed step has nothing to roll back.
- The step reads its inputs from, and returns, tensors owned here (same
  storage every call), which is what graph capture needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

logger = logging.getLogger(__name__)

__all__ = ["BUCKETS", "SlotState", "StaticKVCache", "StaticKVConfig"]

BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class StaticKVConfig:
    #: sequences decoded together at most (the scheduler's ``max_running`` is capped to it).
    max_slots: int = 64
    #: prompt + generated tokens one sequence may reach (the model's context is capped to it).
    max_tokens: int = 2048


@dataclass
class SlotState:
    """A running batch on the static cache: row i is the sequence in slot ``slots[i]``."""

    slots: list[int]
    #: False for a probe copy (:meth:`CausalLM.copy_state`): its decode commits nothing, its select frees nothing.
    owner: bool = True

    @property
    def rows(self) -> int:
        return len(self.slots)


class _SlotLayer(CacheLayerMixin):
    """One layer's buffers, seen by the model as a cache whose update writes at per-row positions."""

    def __init__(self, owner: StaticKVCache, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.owner, self.keys, self.values, self.is_initialized = owner, keys, values, True

    def lazy_initialization(self, key_states: torch.Tensor) -> None:  # allocated up front
        pass

    def update(self, key_states, value_states, cache_kwargs=None):
        n = key_states.shape[0]
        at = self.owner.positions[:n].view(n, 1, 1, 1)
        keys, values = self.keys[:n], self.values[:n]
        keys.scatter_(2, at.expand(-1, keys.shape[1], 1, keys.shape[3]), key_states)
        values.scatter_(2, at.expand(-1, values.shape[1], 1, values.shape[3]), value_states)
        return keys, values

    def get_mask_sizes(self, cache_position):
        return self.keys.shape[2], 0

    def get_seq_length(self) -> int:
        return 0  # positions are per row; the step passes them explicitly

    def get_max_cache_shape(self) -> int:
        return self.keys.shape[2]


class StaticKVCache:
    """Slots of preallocated KV plus the static inputs of a decode step."""

    def __init__(self, config: StaticKVConfig, device: torch.device):
        self.config, self.device = config, device
        self.cache: Cache | None = None
        self.lengths = [0] * config.max_slots  # host copy: buckets and capacity without a device sync
        self.tokens = torch.zeros((config.max_slots, 1), dtype=torch.long, device=device)
        self.positions = torch.zeros(config.max_slots, dtype=torch.long, device=device)
        self._index = torch.arange(config.max_tokens, device=device)
        self._free = list(range(config.max_slots))

    @property
    def allocated_bytes(self) -> int:
        if self.cache is None:
            return 0
        return sum(t.numel() * t.element_size() for layer in self.cache.layers for t in (layer.keys, layer.values))

    def _allocate(self, like) -> None:
        slots, tokens = self.config.max_slots, self.config.max_tokens
        layers = []
        for layer in like.layers:
            k, v = layer.keys, layer.values
            layers.append(_SlotLayer(self, k.new_zeros((slots, k.shape[1], tokens, k.shape[3])),
                                     v.new_zeros((slots, v.shape[1], tokens, v.shape[3]))))
        self.cache = Cache(layers=layers)
        logger.info("static KV cache: %d slots x %d tokens, %.1f MiB", slots, tokens, self.allocated_bytes / 2**20)

    def join(self, cache, attention_mask: torch.Tensor) -> list[int]:
        """Copy each row's real KV (columns where ``attention_mask`` is 1) into a free slot; returns the slots."""
        if self.cache is None:
            self._allocate(cache)
        slots = []
        for row in range(attention_mask.shape[0]):
            real = attention_mask[row].nonzero().view(-1)
            length = int(real.numel())
            if not self._free or length >= self.config.max_tokens:
                self.release(slots)
                raise RuntimeError(f"static KV cache full: {len(self._free)} free slots, a prompt of {length} "
                                   f"tokens against {self.config.max_tokens} per slot")
            slot = self._free.pop(0)
            for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
                mine.keys[slot, :, :length] = theirs.keys[row].index_select(1, real)
                mine.values[slot, :, :length] = theirs.values[row].index_select(1, real)
            self.lengths[slot] = length
            slots.append(slot)
        return slots

    def release(self, slots: list[int]) -> None:
        for s in slots:
            self.lengths[s] = 0
            self._free.append(s)
        self._free.sort()  # lowest first: occupied slots stay packed at the front, buckets stay small

    def release_all(self) -> None:
        self.lengths = [0] * self.config.max_slots
        self._free = list(range(self.config.max_slots))

    def bucket_for(self, slots: list[int]) -> int:
        need = max(slots) + 1
        return next((b for b in BUCKETS if b >= need and b <= self.config.max_slots), self.config.max_slots)

    def prepare(self, slots: list[int], tokens: torch.Tensor) -> None:
        """Load one step's inputs into the static tensors: every slot's position = its length."""
        for s in slots:
            if self.lengths[s] >= self.config.max_tokens:
                raise RuntimeError(f"slot {s} is full ({self.config.max_tokens} tokens)")
        idx = torch.tensor(slots, dtype=torch.long, device=self.device)
        self.tokens.index_copy_(0, idx, tokens.view(-1, 1).to(self.device))
        self.positions.copy_(torch.tensor(self.lengths, dtype=torch.long), non_blocking=True)

    def commit(self, slots: list[int]) -> None:
        for s in slots:
            self.lengths[s] += 1

    def step_fn(self, model, rows: int, mask_dtype: torch.dtype):
        """The decode step over the first ``rows`` slots, reading and returning static tensors only."""
        tokens, positions, index = self.tokens[:rows], self.positions[:rows], self._index
        low = torch.finfo(mask_dtype).min
        cache_position = torch.zeros(1, dtype=torch.long, device=self.device)  # unused by the slot layers

        def step() -> torch.Tensor:
            visible = index.view(1, -1) <= positions.view(-1, 1)
            mask = torch.zeros(visible.shape, dtype=mask_dtype, device=visible.device).masked_fill(~visible, low)
            out = model(input_ids=tokens, position_ids=positions.view(-1, 1), attention_mask=mask[:, None, None, :],
                        past_key_values=self.cache, use_cache=True, cache_position=cache_position)
            return out.logits[:, -1, :]

        return step
