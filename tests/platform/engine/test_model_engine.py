"""In-process engine: hot swap under load, failed loads, alias following, LLM swap (no HTTP)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from npusuite.platform.engine import ModelEngine, SamplingParams, SwapError
from npusuite.platform.repository import ModelRepository
from npusuite.platform.runtime.reference_models import save_scale

X = {"x": np.ones((1, 4), np.float32)}


def test_swaps_under_threads_lose_nothing(scale_repo):
    engine = ModelEngine.open("scale", scale_repo.root, follow_alias=False)
    stop, failures, seen = threading.Event(), [], set()

    def client():
        while not stop.is_set():
            try:
                r = engine.infer(X)
                y = float(r.outputs["y"][0, 0])
                seen.add(r.model)
                if y != float(r.model.rpartition("@")[2]):
                    failures.append(f"{r.model} answered {y}")
            except Exception as exc:  # any failure is a test failure
                failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for i in range(10):
        engine.load("2" if i % 2 == 0 else "1")
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    engine.wait_drained()
    assert failures == [] and seen == {"scale@1", "scale@2"}
    assert engine.ref == "scale@1"
    engine.close()


def test_failed_load_keeps_the_old_version(scale_repo, tmp_path: Path):
    # a version whose architecture cannot be built: config names a width the weights do not have
    src = save_scale(tmp_path / "bad", 1.0)
    (src / "module.json").write_text((src / "module.json").read_text().replace('"width": 4', '"width": 5'))
    scale_repo.add("scale", src)
    engine = ModelEngine.open("scale", scale_repo.root, follow_alias=False)
    with pytest.raises(SwapError, match="cannot load scale@3.*scale@1 keeps serving"):
        engine.load("3")
    assert engine.infer(X).model == "scale@1"
    with pytest.raises(SwapError, match="no version or alias"):
        engine.load("42")
    assert engine.infer(X).model == "scale@1"
    engine.close()


def test_engine_follows_the_production_alias(scale_repo):
    engine = ModelEngine.open("scale", scale_repo.root)  # name = name@production, followed
    assert engine.ref == "scale@1"
    scale_repo.promote("scale", "2")
    deadline = time.monotonic() + 30
    while engine.ref != "scale@2" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.infer(X).model == "scale@2"
    scale_repo.rollback("scale")
    while engine.ref != "scale@1" and time.monotonic() < deadline + 30:
        time.sleep(0.1)
    assert engine.infer(X).outputs["y"][0, 0] == 1.0
    engine.load("2")  # an explicit load is not undone by the follower while the alias stays put
    time.sleep(2.5)
    assert engine.ref == "scale@2"
    engine.close()


def test_llm_generation_in_flight_survives_a_swap(tmp_path: Path, tiny_llm_dir: Path):
    from npusuite.platform.runtime.tiny_llm import make_tiny_llm

    repo = ModelRepository(tmp_path / "models")
    repo.add("llm", tiny_llm_dir)
    repo.add("llm", make_tiny_llm(tmp_path / "other", seed=1), precision="int8")
    engine = ModelEngine.open("llm", repo.root, follow_alias=False)
    long_run = engine.generate("the card was", SamplingParams(max_tokens=40))
    engine.load("2")  # int8 version
    text, reason = long_run.result(120)
    assert reason == "length" and long_run.model_ref == "llm@1"
    after = engine.generate("the card was", SamplingParams(max_tokens=4))
    after.result(60)
    assert after.model_ref == "llm@2"
    engine.close()


def test_open_a_plain_folder(tmp_path: Path):
    engine = ModelEngine.open(save_scale(tmp_path / "f", 3.0))
    assert engine.infer(X).outputs["y"][0, 0] == 3.0
    with pytest.raises(SwapError, match="opened from a folder"):
        engine.load("2")
    engine.close()
