"""The platform's demo step really builds, registers and serves the tiny LLM (as `npusuite demo` does)."""

from __future__ import annotations

import httpx

from npusuite.platform.demo import DemoContext
from npusuite.platform.serving.demo import step


def test_demo_step_serves_the_tiny_llm(tmp_path):
    ctx = DemoContext(tmp_path, bootstrap="127.0.0.1:1", admin_token="demo-token")
    try:
        step(ctx)
        url = ctx.shared["platform_url"]
        r = httpx.post(f"{url}/v1/completions", json={"model": "tiny-llm", "prompt": "the card", "max_tokens": 4},
                       timeout=60)
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("length", "stop")
        idx = httpx.post(f"{url}/v2/repository/index", headers={"Authorization": "Bearer demo-token"}, timeout=30)
        assert idx.status_code == 200 and idx.json()[0]["state"] == "READY"
    finally:
        ctx.stop_all()
    assert (tmp_path / "models" / "tiny-llm" / "1" / "manifest.json").is_file()
