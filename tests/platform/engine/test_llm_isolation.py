"""A failure inside an LLM step fails only the requests that cause it (issue 12.1), on the tiny model."""

from __future__ import annotations

import pytest

from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams
from npusuite.platform.engine.errors import EngineBusyError, GenerationError, InvalidParameterError
from npusuite.platform.runtime.causal_lm import CausalLM

POISON = 7  # a token id that the fragile model below refuses to prefill


class Fragile(CausalLM):
    """The tiny model, failing like a real one would on particular rows."""

    position_limit = 10**9

    def prefill(self, prompts):
        if any(POISON in p for p in prompts):
            raise RuntimeError("prefill: poisoned prompt")
        return super().prefill(prompts)

    def decode(self, state, tokens):
        if bool((state.next_position >= self.position_limit).any()):
            raise RuntimeError("decode: position past the limit")
        return super().decode(state, tokens)


@pytest.fixture(scope="module")
def lm(tiny_llm_dir):
    base = CausalLM.load(tiny_llm_dir)
    return Fragile(base.model, base.tokenizer, base.device, base.precision)


def _unchecked(params: SamplingParams, **bad) -> SamplingParams:
    """Params that slipped past validation (e.g. built by an older client library)."""
    for k, v in bad.items():
        object.__setattr__(params, k, v)
    return params


def test_a_row_whose_sampling_fails_fails_alone(lm):
    sched = LLMScheduler(lm, LLMConfig(max_running=8))
    good = [sched.submit(lm.encode(p), SamplingParams(max_tokens=12, temperature=0.8, seed=3, ignore_eos=True))
            for p in ("the card was", "a part")]
    bad = sched.submit(lm.encode("hi"), _unchecked(SamplingParams(max_tokens=12, temperature=0.8), seed=2**70))
    with pytest.raises(GenerationError):
        bad.result(60)
    assert [s.result(60)[1] for s in good] == ["length", "length"]
    assert sched.submit(lm.encode("hi"), SamplingParams(max_tokens=3)).result(60)[1] in ("length", "stop")
    sched.close()


def test_a_prompt_whose_prefill_fails_fails_alone(lm):
    sched = LLMScheduler(lm, LLMConfig(max_running=8, max_prefill_batch=8))
    ids = lm.encode("the card was")
    streams = sched.submit_many([ids, ids + [POISON], lm.encode("a part")], SamplingParams(max_tokens=5,
                                                                                          ignore_eos=True))
    with pytest.raises(GenerationError, match="poisoned"):
        streams[1].result(60)
    assert streams[0].result(60)[1] == "length" and streams[2].result(60)[1] == "length"
    sched.close()


def test_a_row_whose_decode_fails_fails_alone(lm):
    """A long prompt passes the position limit first: only it fails, the short rows keep decoding."""
    short, long_ = lm.encode("hi"), lm.encode("a transfer needs review today because the camera shows " * 2)
    lm.position_limit = len(long_) + 3
    try:
        sched = LLMScheduler(lm, LLMConfig(max_running=8, max_prefill_batch=8))
        params = SamplingParams(max_tokens=len(long_) - len(short), ignore_eos=True)
        streams = sched.submit_many([short, long_, short], params)
        with pytest.raises(GenerationError, match="position past the limit"):
            streams[1].result(60)
        assert [streams[i].result(60)[1] for i in (0, 2)] == ["length", "length"]
        sched.close()
    finally:
        lm.position_limit = 10**9


def test_groups_are_admitted_all_or_none(lm):
    sched = LLMScheduler(lm, LLMConfig(max_queue_size=4))
    ids = lm.encode("hi")
    with pytest.raises(EngineBusyError):
        sched.submit_many([ids] * 5, SamplingParams(max_tokens=3))
    assert sched.queue_depth == 0 and sched.running == 0
    sched.close()


@pytest.mark.parametrize("field, value", [("temperature", float("nan")), ("temperature", 2.5), ("top_p", 0.0),
                                          ("seed", 2**64), ("seed", -1), ("max_tokens", 0), ("max_tokens", 1.5),
                                          ("max_tokens", None), ("stop", ("a",) * 17)])
def test_sampling_params_refuse_out_of_range_values(field, value):
    with pytest.raises(InvalidParameterError) as info:
        SamplingParams(**{field: value})
    assert info.value.param == field


def test_tiny_temperature_and_top_p_sample_the_top_token(lm):
    sched = LLMScheduler(lm)
    ids = lm.encode("the card was")
    greedy = sched.submit(ids, SamplingParams(max_tokens=6, ignore_eos=True)).result(60)[0]
    for params in (SamplingParams(max_tokens=6, temperature=1e-45, ignore_eos=True),
                   SamplingParams(max_tokens=6, temperature=1.0, top_p=5e-324, ignore_eos=True)):
        assert sched.submit(ids, params).result(60)[0] == greedy
    sched.close()


def test_generations_are_capped_by_the_context(lm):
    sched = LLMScheduler(lm)
    with pytest.raises(InvalidParameterError) as info:
        sched.submit(lm.encode("hi"), SamplingParams(max_tokens=lm.max_context))
    assert info.value.param == "max_tokens"
    with pytest.raises(InvalidParameterError):
        sched.submit([lm.vocab_size + 5], SamplingParams(max_tokens=2))
    sched.close()
