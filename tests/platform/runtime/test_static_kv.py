"""The static-KV decode path on CPU: same greedy tokens as the dynamic path, slots reused, graph fallback."""

from __future__ import annotations

import time

import pytest
import torch

from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams
from npusuite.platform.engine.errors import GenerationError
from npusuite.platform.runtime.causal_lm import CausalLM
from npusuite.platform.runtime.devices import GraphCapture, get_device
from npusuite.platform.runtime.kv_cache import StaticKVConfig

PROMPTS = ["the card was", "a transfer needs review today because the", "hi", "the camera shows"]


class RefusingCapture(GraphCapture):
    """A backend whose capture always fails (an op that syncs with the host, say)."""

    def __init__(self):
        super().__init__(None, None)

    def capture(self, fn):
        raise RuntimeError("operation not permitted when stream is capturing")


class ReplayCapture(GraphCapture):
    """A CPU stand-in for a graph: 'replay' reruns the step on the same static storage, as a graph would."""

    def __init__(self):
        super().__init__(None, None)

    def capture(self, fn):
        fn()  # the warm-up call a real capture makes
        return fn


@pytest.fixture(scope="module")
def dynamic(tiny_llm_dir):
    return CausalLM.load(tiny_llm_dir)


def _static(tiny_llm_dir, slots: int = 8, capture: GraphCapture | None = None) -> CausalLM:
    lm = CausalLM.load(tiny_llm_dir, static_kv=StaticKVConfig(max_slots=slots, max_tokens=128))
    if capture is not None:
        lm._runner.capture = capture
    return lm


def _joining_texts(lm) -> list[str]:
    """Greedy texts of PROMPTS, the later ones joining while the first decodes (scheduler, prefix cache off)."""
    sched = LLMScheduler(lm, LLMConfig(max_running=8, prefix_cache_max_bytes=0))
    first = sched.submit(lm.encode(PROMPTS[0]), SamplingParams(max_tokens=12))
    it = iter(first)
    head = next(it).text
    rest = []
    for p in PROMPTS[1:]:
        rest.append(sched.submit(lm.encode(p), SamplingParams(max_tokens=12)))
        time.sleep(0.01)
    texts = [head + "".join(ev.text for ev in it)] + [s.result(60)[0] for s in rest]
    sched.close()
    return texts


def test_devices_choose_graph_capture_by_class():
    assert get_device("cpu").graph_capture() is None
    assert isinstance(get_device("cuda", check=False).graph_capture(), GraphCapture)


def test_static_path_matches_the_dynamic_path_for_greedy_decoding(dynamic, tiny_llm_dir):
    lm = _static(tiny_llm_dir)
    assert _joining_texts(lm) == _joining_texts(dynamic)
    assert lm.decode_modes and set(lm.decode_modes.values()) == {"eager"}  # CPU: no graphs, eager
    assert lm.max_context == 128


@pytest.mark.parametrize("capture, mode", [(RefusingCapture(), "eager"), (ReplayCapture(), "graph")])
def test_capture_failure_falls_back_to_eager_with_the_same_tokens(dynamic, tiny_llm_dir, capture, mode):
    lm = _static(tiny_llm_dir, capture=capture)
    assert _joining_texts(lm) == _joining_texts(dynamic)
    assert set(lm.decode_modes.values()) == {mode}


def test_slots_are_reused_and_the_cache_is_never_rebuilt(dynamic, tiny_llm_dir):
    lm = _static(tiny_llm_dir, slots=4)
    ids = [lm.encode(p) for p in PROMPTS]
    logits, state = lm.prefill(ids[:3])
    state = lm.merge(None, state)
    buffers = [layer.keys for layer in lm._static.cache.layers]
    assert state.slots == [0, 1, 2]
    state = lm.select(state, [0, 2])  # slot 1 leaves
    _, joiner = lm.prefill(ids[3:])
    state = lm.merge(state, joiner)
    assert state.slots == [0, 2, 1]  # the lowest free slot is taken again
    lm.decode(state, torch.tensor([5, 6, 7]))
    assert [layer.keys for layer in lm._static.cache.layers] == buffers  # the same tensors, same storage
    assert lm._static.lengths[1] == len(ids[3]) + 1
    # the joiner's next-token logits equal the dynamic path's for the same prompt
    ref_logits, ref_state = dynamic.prefill(ids[3:])
    step, _ = lm.decode(state, torch.tensor([5, 6, 9]))
    ref, _ = dynamic.decode(dynamic.decode(ref_state, torch.tensor([7]))[1], torch.tensor([9]))
    torch.testing.assert_close(step[2:], ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match="full"):
        lm.merge(state, lm.prefill([ids[0], ids[1]])[1])  # 3 running + 2 > 4 slots


class FragileStatic(CausalLM):
    """Static path failing a step whenever a row's slot passes ``limit`` tokens."""

    limit = 10**9

    def decode(self, state, tokens):
        if any(self._static.lengths[s] >= self.limit for s in state.slots):
            raise RuntimeError("decode: slot past the limit")
        return super().decode(state, tokens)


def test_a_failing_row_fails_alone_on_the_static_path(tiny_llm_dir):
    base = CausalLM.load(tiny_llm_dir)
    lm = FragileStatic(base.model, base.tokenizer, base.device, base.precision,
                       static_kv=StaticKVConfig(max_slots=4, max_tokens=128))
    short, long_ = lm.encode("hi"), lm.encode("a transfer needs review today because the camera shows " * 2)
    lm.limit = len(long_) + 3
    sched = LLMScheduler(lm, LLMConfig(max_running=8, max_prefill_batch=8))
    assert sched.config.max_running == 4  # capped by the slots
    streams = sched.submit_many([short, long_, short],
                                SamplingParams(max_tokens=len(long_) - len(short), ignore_eos=True))
    with pytest.raises(GenerationError, match="slot past the limit"):
        streams[1].result(60)
    assert [streams[i].result(60)[1] for i in (0, 2)] == ["length", "length"]
    sched.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_graph_decode_matches_the_dynamic_path_on_cuda(tiny_llm_dir):
    """Unchecked without an accelerator: runs only where torch sees CUDA (bench/device_check.sh)."""
    dynamic = CausalLM.load(tiny_llm_dir, device="cuda")
    lm = CausalLM.load(tiny_llm_dir, device="cuda", static_kv=StaticKVConfig(max_slots=8, max_tokens=128))
    assert _joining_texts(lm) == _joining_texts(dynamic)
    assert set(lm.decode_modes.values()) == {"graph"}
