"""What the LLM scheduler reports per iteration: tokens computed, KV positions held, next-token entropy."""

from __future__ import annotations

import math

import pytest
import torch
from prometheus_client import CollectorRegistry

from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams
from npusuite.platform.engine.llm_scheduler import ENTROPY_EVERY, entropy_bits
from npusuite.platform.runtime.causal_lm import CausalLM
from npusuite.platform.serving.metrics import PlatformMetrics


@pytest.fixture(scope="module")
def lm(tiny_llm_dir):
    return CausalLM.load(tiny_llm_dir)


def test_entropy_bits_of_known_distributions():
    uniform = torch.zeros(1, 1024)
    peaked = torch.tensor([[50.0] + [0.0] * 1023])
    assert entropy_bits(uniform)[0] == pytest.approx(10.0, abs=1e-4)  # log2(1024)
    assert entropy_bits(peaked)[0] < 0.01


def test_scheduler_reports_iterations_kv_and_entropy(lm):
    metrics = PlatformMetrics(CollectorRegistry())
    sched = LLMScheduler(lm, LLMConfig(max_running=4), "tiny", metrics)
    prompts = ["the card was", "a transfer needs review"]
    streams = [sched.submit(lm.encode(p), SamplingParams(max_tokens=10)) for p in prompts]
    for s in streams:
        s.result(60)
    sched.close()
    get = metrics.registry.get_sample_value
    iterations = get("npusuite_llm_iteration_tokens_count", {"model": "tiny"})
    computed = get("npusuite_llm_iteration_tokens_sum", {"model": "tiny"})
    prompt_tokens = sum(len(lm.encode(p)) for p in prompts)
    assert iterations >= 10 and computed >= prompt_tokens + 9  # every prompt prefilled, rows decoded
    assert get("npusuite_llm_kv_cache_used_tokens", {"model": "tiny"}) == 0  # all finished
    context = getattr(lm, "max_context", None)
    if context:
        assert get("npusuite_llm_kv_cache_capacity_tokens", {"model": "tiny"}) == 4 * context
    entropies = get("npusuite_llm_token_entropy_bits_count", {"model": "tiny"})
    assert entropies >= 1 and entropies <= math.ceil(iterations / ENTROPY_EVERY) * len(prompts)
    assert 0 <= get("npusuite_llm_token_entropy_bits_sum", {"model": "tiny"}) / entropies <= math.log2(
        lm.vocab_size if hasattr(lm, "vocab_size") else 1 << 20)
