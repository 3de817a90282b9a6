"""The engine's app-adapter rule: build and warm run BEFORE the switch, a failure there is a SwapError and the
old version keeps serving, and only the worker the adapter declares is created.  Also: a followed alias is
noticed through the folder watch, not the (here hour-long) fallback poll."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from npusuite.platform.engine import ModelEngine, SwapError
from npusuite.platform.engine.adapter import AppAdapter, require_tensor
from npusuite.platform.engine.batcher import DynamicBatcher
from npusuite.platform.errors import UserError

X = {"x": np.ones((1, 4), np.float32)}


@dataclass
class App:
    ref: str
    runtime: object


class FakeAdapter(AppAdapter[App]):
    """Doubles the model's output; refuses chosen versions at build or at warm-up."""

    def __init__(self, kind: str = "batcher", bad_build: str | None = None, bad_warm: str | None = None):
        self.kind, self.bad_build, self.bad_warm = kind, bad_build, bad_warm
        self.attempts: list[str] = []

    def worker(self, version):
        return self.kind

    def build(self, version, runtime):
        self.attempts.append(version.ref)
        if version.version == self.bad_build:
            raise ValueError(f"{version.ref} was trained on another feature set")
        return App(version.ref, require_tensor(runtime, version))

    def warm(self, app):
        if app.ref.endswith(f"@{self.bad_warm}"):
            raise RuntimeError("warm-up produced NaN")
        self.predict(app, X)

    def predict(self, app, inputs):
        return {"y": app.runtime.predict(inputs)["y"] * 2}


@pytest.mark.parametrize("stage", ["build", "warm"])
def test_a_version_the_app_refuses_is_a_swap_error_and_the_old_one_keeps_serving(scale_repo, stage):
    adapter = FakeAdapter(**{f"bad_{stage}": "2"})
    engine = ModelEngine.open("scale", scale_repo.root, follow_alias=False, adapter=adapter)
    try:
        with pytest.raises(SwapError, match=r"cannot load scale@2: .*scale@1 keeps serving"):
            engine.load("2")
        result = engine.infer(X)
        assert result.model == "scale@1" and float(result.outputs["y"][0, 0]) == 2.0  # v1 through the adapter
        with engine.lease() as lease:
            assert lease.version.ref == "scale@1" and lease.app.ref == "scale@1"
        # no worker of the refused version is left running: one batcher thread, the serving version's
        assert len([t for t in threading.enumerate() if t.name == "batcher-scale"]) == 1
    finally:
        engine.close()


def test_a_followed_alias_moving_to_a_refused_version_changes_nothing(scale_repo):
    engine = ModelEngine.open("scale", scale_repo.root, adapter=FakeAdapter(bad_build="2"))
    try:
        scale_repo.promote("scale", "2")
        checks = 0
        while "scale@2" not in engine.adapter.attempts and checks < 600:  # the follower tries version 2
            checks += 1
            time.sleep(0.05)
        assert "scale@2" in engine.adapter.attempts
        assert engine.ref == "scale@1" and engine.infer(X).model == "scale@1"
    finally:
        engine.close()


def test_only_the_declared_worker_exists(scale_repo):
    direct = ModelEngine.open("scale", scale_repo.root, follow_alias=False, adapter=FakeAdapter("direct"))
    batched = ModelEngine.open("scale", scale_repo.root, follow_alias=False, adapter=FakeAdapter("batcher"))
    try:
        with direct.lease() as lease:
            assert lease.kind == "direct" and lease.worker is None
            assert float(lease.app.runtime.predict(X)["y"][0, 0]) == 1.0  # the caller runs the app itself
        with pytest.raises(UserError, match="served by 'direct', not a batcher"):
            direct.infer(X)
        assert direct.queue_depth == 0
        with batched.lease() as lease:
            assert lease.kind == "batcher" and isinstance(lease.worker, DynamicBatcher)
        assert float(batched.infer(X).outputs["y"][0, 0]) == 2.0  # the batcher runs the adapter's predict
    finally:
        direct.close()
        batched.close()


def test_a_plain_folder_is_swapped_in_by_the_same_rule(scale_repo, tmp_path):
    from npusuite.platform.runtime.reference_models import save_scale

    good, bad = save_scale(tmp_path / "good", 3.0), save_scale(tmp_path / "bad", 5.0)
    engine = ModelEngine("scale", adapter=FakeAdapter(bad_warm="9"))
    try:
        assert engine.load_path(good, label="scale@3").ref == "scale@3"
        with pytest.raises(SwapError, match="scale@3 keeps serving"):
            engine.load_path(bad, label="scale@9")
        assert engine.infer(X).model == "scale@3" and float(engine.infer(X).outputs["y"][0, 0]) == 6.0
    finally:
        engine.close()


def test_a_promote_is_noticed_by_the_folder_watch(scale_repo):
    # The fallback poll is an hour away: only the inotify watch can wake the follower within the test.
    engine = ModelEngine("scale", scale_repo)
    engine.load("production")
    engine.follow("production", fallback_poll_s=3600)
    try:
        scale_repo.promote("scale", "2")
        checks = 0
        while engine.ref != "scale@2" and checks < 600:  # generous: 30 s of 50 ms checks
            checks += 1
            time.sleep(0.05)
        assert engine.ref == "scale@2", f"not switched after {checks} checks"
    finally:
        engine.close()
