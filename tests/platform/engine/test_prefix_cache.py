"""Prefix caching: block keys, LRU bound in bytes, and identical outputs with and without it (tiny model)."""

from __future__ import annotations

import pytest
import torch

from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams
from npusuite.platform.engine.prefix_cache import PrefixCache, PrefixCacheConfig
from npusuite.platform.runtime.causal_lm import CausalLM

INSTRUCTION = ("you are a fraud analyst. read the transaction and answer fraud or legit. the card was approved "
               "today. the merchant looks normal. a transfer needs review at night in another country. ")
TAILS = ["the card was declined twice in a minute", "a customer spent more than usual", "hi", "the part"]


def _block(value: float, n: int = 4) -> tuple[torch.Tensor]:
    return (torch.full((n,), float(value)),)  # 4 float32 = 16 bytes


@pytest.fixture(scope="module")
def lm(tiny_llm_dir):
    return CausalLM.load(tiny_llm_dir)


def test_block_keys_are_chained_so_only_shared_leading_blocks_match():
    cache = PrefixCache(PrefixCacheConfig(max_bytes=1024, block_tokens=2))
    a, b, c = cache.block_keys([1, 2, 3, 4, 5]), cache.block_keys([1, 2, 3, 9]), cache.block_keys([9, 2, 3, 4])
    assert len(a) == 2 and a[0] == b[0] and a[1] != b[1]  # the partial last block has no key
    assert not set(a) & set(c)  # same second block after a different first one: a different prefix
    cache.insert([1, 2, 3, 4, 5], lambda k: _block(k))
    keys, payloads = cache.match([1, 2, 3, 4, 5])
    assert keys == a and [p[0][0].item() for p in payloads] == [0, 1]
    # a prompt that IS a cached prefix keeps its last token to compute: one block, not two
    assert len(cache.match([1, 2, 3, 4])[0]) == 1
    assert cache.match([7, 7, 7])[0] == []
    assert cache.stats()["hit_tokens"] == 4 + 2


def test_memory_is_bounded_and_lru_evicts_leaves_before_their_prefixes():
    cache = PrefixCache(PrefixCacheConfig(max_bytes=3 * 16, block_tokens=1))
    cache.insert([1, 2, 3], _block)  # a chain of three 16-byte blocks: full
    cache.insert([9], _block)  # one more: the least recently used goes, and that is the leaf [1,2,3]
    assert cache.bytes <= 48 and len(cache) == 3 and cache.stats()["evicted_blocks"] == 1
    assert len(cache.match([1, 2, 3, 0])[0]) == 2  # [1] and [1,2] survived
    cache.insert([5, 6], _block)  # two more: evicts [9] (older than the touched chain) and [1,2], the leaf
    assert len(cache.match([1, 2, 0])[0]) == 1 and len(cache.match([9, 0])[0]) == 0
    assert cache.bytes <= 48
    huge = PrefixCache(PrefixCacheConfig(max_bytes=8, block_tokens=1))
    assert huge.insert([1], _block) == 0 and huge.bytes == 0  # larger than the whole bound: not kept


def _run(lm, prompts: list[list[int]], cache_bytes: int, block: int = 8) -> tuple[list[str], dict | None]:
    sched = LLMScheduler(lm, LLMConfig(max_running=8, prefix_cache_max_bytes=cache_bytes, prefix_block_tokens=block))
    first = sched.submit(prompts[0], SamplingParams(max_tokens=10)).result(60)[0]  # a warm, cached prefix
    texts = [first] + [t for t, _ in (s.result(60) for s in sched.submit_many(prompts[1:], SamplingParams(
        max_tokens=10)))]
    stats = sched.prefix_cache_stats()
    sched.close()
    return texts, stats


def test_scheduler_outputs_are_identical_with_and_without_the_prefix_cache(lm):
    prompts = [lm.encode(INSTRUCTION + t) for t in TAILS]
    plain, none = _run(lm, prompts, cache_bytes=0)
    cached, stats = _run(lm, prompts, cache_bytes=2**20)
    assert none is None and lm.prefix_cache is not None
    assert cached == plain
    shared = len(INSTRUCTION) // 4  # loosely: most of the instruction's tokens came from the cache
    assert stats["hit_tokens"] >= 3 * min(shared, 24) and stats["bytes"] <= 2**20
    # a bound smaller than the prompts: evictions happen, outputs do not change
    tight, tight_stats = _run(lm, prompts, cache_bytes=3 * 8 * lm.model.config.num_hidden_layers * 2 * 2 * 16 * 4)
    assert tight == plain and tight_stats["evicted_blocks"] > 0 and tight_stats["bytes"] <= tight_stats["max_bytes"]


def test_a_burst_sharing_an_uncached_prefix_prefills_it_once(lm):
    prompts = [lm.encode(INSTRUCTION + t) for t in TAILS]
    lm.prefix_cache = PrefixCache(PrefixCacheConfig(block_tokens=8))
    try:
        with_cache, _ = lm.prefill(prompts)
        stats = lm.prefix_cache.stats()
        lm.prefix_cache = None
        without, _ = lm.prefill(prompts)
    finally:
        lm.prefix_cache = None
    # cold cache, yet every prompt read the shared blocks: they were prefilled once, before the batch
    assert stats["hit_tokens"] >= 4 * 8 * (len(lm.encode(INSTRUCTION)) // 8 - 1)
    torch.testing.assert_close(with_cache, without, rtol=1e-4, atol=1e-4)
    assert (with_cache.argmax(-1) == without.argmax(-1)).all()


def test_label_probabilities_use_the_model_prefix_cache(lm):
    prompts = [INSTRUCTION + t + " verdict:" for t in TAILS]
    plain = lm.label_probabilities(prompts, ["yes", "no"])
    lm.prefix_cache = PrefixCache(PrefixCacheConfig(block_tokens=8))
    try:
        lm.label_probabilities(prompts, ["yes", "no"])
        cached = lm.label_probabilities(prompts, ["yes", "no"])
        hits = lm.prefix_cache.stats()["hit_tokens"]
    finally:
        lm.prefix_cache = None
    assert hits > 0
    torch.testing.assert_close(cached, plain, rtol=1e-4, atol=1e-5)
