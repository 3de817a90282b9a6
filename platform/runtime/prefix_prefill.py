"""Prefill through a prefix cache: reuse cached KV of leading blocks, compute the rest, offer new blocks.

Rules (the cache's own rules are in ``npusuite.platform.engine.prefix_cache``;
this module only needs its ``block_tokens``, ``match`` and ``insert``):
- Prompts of one batch are grouped by the cached prefix they hit (the key of
  their last hit block); each group is one :meth:`CausalLM.prefill_after`
  call with that prefix's KV, and the groups' states are merged and put back
  in prompt order.
- When two or more prompts of a batch share leading blocks that are not
  cached yet (a burst of requests with one system prompt arriving together),
  that shared prefix is prefilled ONCE first and cached, so the burst pays
  for it once instead of once per prompt.
- After the prefill, every full block of every prompt that was computed (not
  read from the cache) is offered to the cache; a block's payload is, per
  layer, the (keys, values) of its positions, [heads, block_tokens, head_dim],
  copied out of the batch (the batch's tensors are not kept alive by it).
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)

__all__ = ["prefill_with_prefixes"]


def _join_blocks(payloads: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the keys and values of consecutive blocks joined along the sequence."""
    if not payloads:
        return []
    return [(torch.cat([blk[layer][0] for blk in payloads], dim=1), torch.cat([blk[layer][1] for blk in payloads],
                                                                               dim=1))
            for layer in range(len(payloads[0]))]


def _remember(cache, ids: list[int], state, row: int, skip: int) -> None:
    """Offer blocks ``skip``.. of ``ids`` (row ``row`` of ``state``) to the cache."""
    b = cache.block_tokens
    if len(ids) // b <= skip:
        return
    real = state.attention_mask[row].nonzero().view(-1)  # the row's real columns, in position order

    def payload(k: int):
        cols = real[k * b:(k + 1) * b]
        return tuple((layer.keys[row].index_select(1, cols), layer.values[row].index_select(1, cols))
                     for layer in state.cache.layers)

    cache.insert(ids, payload, skip=skip)


def _share_common_prefix(lm, prompts: list[list[int]], cache) -> None:
    """Prefill and cache the blocks all ``prompts`` share, once, when they are not cached yet."""
    if len(prompts) < 2:
        return
    b = cache.block_tokens
    common = min(len(os.path.commonprefix(prompts)), min(len(p) for p in prompts) - 1) // b * b
    if common == 0:
        return
    head = prompts[0][:common]
    keys, payloads = cache.match(head + [-1], count=False)  # + one token: match may cover all of ``head``
    if len(keys) * b >= common:
        return
    logger.debug("prefilling a shared prefix of %d tokens once for %d prompts", common, len(prompts))
    _, state = lm.prefill_after([head], _join_blocks(payloads))
    _remember(cache, head, state, 0, skip=len(keys))


def prefill_with_prefixes(lm, prompts: list[list[int]], cache):
    """:meth:`CausalLM.prefill` with a prefix cache: (last-position logits [n, vocab], BatchState)."""
    _share_common_prefix(lm, prompts, cache)
    matches = [cache.match(p) for p in prompts]
    groups: dict[bytes, list[int]] = {}
    for i, (keys, _) in enumerate(matches):
        groups.setdefault(keys[-1] if keys else b"", []).append(i)
    parts, state, order = [], None, []
    for rows in groups.values():
        part_logits, part = lm.prefill_after([prompts[i] for i in rows], _join_blocks(matches[rows[0]][1]))
        parts.append(part_logits)
        order += rows
        state = part if state is None else lm.merge(state, part)
    logits = torch.cat(parts)
    if order != list(range(len(prompts))):
        back = sorted(range(len(order)), key=order.__getitem__)  # back[i]: where prompt i's row is now
        logits, state = logits[back], lm.select(state, back)
    for i, p in enumerate(prompts):
        _remember(cache, p, state, i, skip=len(matches[i][0]))
    return logits, state
