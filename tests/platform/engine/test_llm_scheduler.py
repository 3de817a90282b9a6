"""Iteration-level LLM scheduling on the tiny model: joins mid-batch, stops, sampling."""

from __future__ import annotations

import time

import pytest
import torch

from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams
from npusuite.platform.engine.llm_scheduler import plan_admission
from npusuite.platform.engine.sampling import sample, stop_cut
from npusuite.platform.runtime.causal_lm import CausalLM

PROMPTS = ["the card was", "a transfer needs review today because the", "hi", "the camera shows"]


@pytest.fixture(scope="module")
def lm(tiny_llm_dir):
    return CausalLM.load(tiny_llm_dir)


def test_plan_admission_is_bounded():
    cfg = LLMConfig(max_running=8, max_prefill_batch=4)
    assert plan_admission(10, 0, cfg) == 4
    assert plan_admission(10, 6, cfg) == 2
    assert plan_admission(0, 0, cfg) == 0
    assert plan_admission(3, 8, cfg) == 0


def test_requests_joining_a_running_batch_match_plain_generate(lm):
    """Greedy text is the same as `model.generate` one request at a time, although requests join mid-way."""
    expected = [lm.decode_ids(ids) for ids in (lm.generate_offline([p], 12)[0] for p in PROMPTS)]
    sched = LLMScheduler(lm, LLMConfig(max_running=8))
    streams = [sched.submit(lm.encode(PROMPTS[0]), SamplingParams(max_tokens=12))]
    it = iter(streams[0])
    head = next(it).text  # the first request is decoding now
    for p in PROMPTS[1:]:
        streams.append(sched.submit(lm.encode(p), SamplingParams(max_tokens=12)))
        time.sleep(0.01)
    joined_while_running = sched.running
    texts = [s.result(60)[0] for s in streams[1:]]
    first = head + "".join(ev.text for ev in it)
    sched.close()
    assert joined_while_running >= 2  # later requests joined before the first one finished
    assert [first, *texts] == expected


def test_stop_sequences_and_max_tokens(lm):
    sched = LLMScheduler(lm)
    free_text, reason = sched.submit(lm.encode(PROMPTS[1]), SamplingParams(max_tokens=20)).result(60)
    assert reason == "length" and len(sched.submit(lm.encode(PROMPTS[1]), SamplingParams(max_tokens=3))
                                        .result(60)[0]) <= len(free_text)
    stop = free_text[4:7]
    cut, reason = sched.submit(lm.encode(PROMPTS[1]), SamplingParams(max_tokens=20, stop=(stop,))).result(60)
    sched.close()
    assert reason == "stop" and stop not in cut and free_text.startswith(cut)


def test_seeded_sampling_is_reproducible_and_differs_from_greedy(lm):
    sched = LLMScheduler(lm)
    params = SamplingParams(max_tokens=16, temperature=1.5, top_p=0.95, seed=7)
    a = sched.submit(lm.encode(PROMPTS[0]), params).result(60)[0]
    b = sched.submit(lm.encode(PROMPTS[0]), params).result(60)[0]
    greedy = sched.submit(lm.encode(PROMPTS[0]), SamplingParams(max_tokens=16)).result(60)[0]
    sched.close()
    assert a == b and a != greedy


def test_cancel_frees_the_row(lm):
    sched = LLMScheduler(lm)
    s = sched.submit(lm.encode(PROMPTS[0]), SamplingParams(max_tokens=500))
    next(iter(s))
    s.cancel()
    assert s.result(60)[1] == "cancelled"
    deadline = time.monotonic() + 30
    while sched.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sched.running == 0
    sched.close()


def test_sampling_and_stop_helpers_are_pure():
    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 0.0]])
    assert sample(logits, [SamplingParams(), SamplingParams()], [None, None]) == [1, 0]
    gen = torch.Generator().manual_seed(0)
    # top_p small keeps only the most likely token, whatever the temperature
    assert sample(logits, [SamplingParams(temperature=2.0, top_p=0.01)] * 2, [gen, gen]) == [1, 0]
    assert stop_cut("hello wor", ("world",)) == (None, 6)
    assert stop_cut("hello world!", ("world",)) == (6, 6)
    assert stop_cut("abc", ()) == (None, 3)


def test_label_probabilities_one_forward_pass(lm):
    probs = lm.label_probabilities(["is this fraud? answer:", "the card was"], ["yes", "no"])
    assert probs.shape == (2, 2)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
