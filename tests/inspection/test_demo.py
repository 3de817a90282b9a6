"""The inspection demo step: a trained model in the platform repository, a line on the clip, a PLC, hot swap."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from npusuite.inspection.demo import MODEL_NAME, step
from npusuite.platform.demo import DemoContext
from npusuite.platform.repository import ModelRepository


@pytest.mark.slow
def test_demo_step_runs_a_line_that_hot_swaps(tmp_path):
    ctx = DemoContext(tmp_path, bootstrap="127.0.0.1:1", admin_token="demo-admin")
    results = tmp_path / "inspection" / "results.jsonl"
    try:
        step(ctx)
        repo = ModelRepository(ctx.model_root)
        assert repo.aliases(MODEL_NAME) == {"production": "1"}
        src = tmp_path / "v2"
        shutil.copytree(repo.resolve(MODEL_NAME, "1").path, src)
        repo.add(MODEL_NAME, src)
        repo.promote(MODEL_NAME, "2")
        deadline = time.monotonic() + 120
        models = set()
        while time.monotonic() < deadline and f"{MODEL_NAME}@2" not in models:
            models = {json.loads(x)["model"] for x in results.read_text().splitlines() if x.strip()}
            time.sleep(0.5)
        assert models == {f"{MODEL_NAME}@1", f"{MODEL_NAME}@2"}
        seqs = [json.loads(x)["seq"] for x in results.read_text().splitlines() if x.strip()]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    finally:
        ctx.stop_all()
    codes = {s.name: s.proc.returncode for s in ctx.services}
    assert set(codes.values()) <= {0, -15}, (codes, [s.log.read_text()[-1500:] for s in ctx.services])
