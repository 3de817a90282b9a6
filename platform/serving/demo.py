"""Demo step: make a tiny local LLM, register it, and serve the demo's model repository.

Publishes ``ctx.shared["platform_url"]`` for later steps.  The server follows
aliases and picks up models that later steps add with a production alias.
"""

from __future__ import annotations

import logging

import httpx

from npusuite.platform.kafka.broker import free_port

logger = logging.getLogger(__name__)


def step(ctx) -> None:
    llm_dir = ctx.workdir / "tiny-llm"
    ctx.prepare("platform: make a tiny LLM", llm_dir / "config.json", "platform", "make-tiny-llm", str(llm_dir))
    ctx.prepare("platform: register tiny-llm", ctx.model_root / "tiny-llm" / "aliases.json",
                "models", "add", "--root", str(ctx.model_root), "tiny-llm", str(llm_dir))
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/v2/models/tiny-llm/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    ctx.start("platform", "platform", "serve", "--model-root", str(ctx.model_root), "--port", str(port),
              url=url, ready=ready)
    ctx.shared["platform_url"] = url
    ctx.expose_metrics("npusuite-platform", f"{url}/metrics")
    ctx.notes.append(f"platform     {url}/v1 (OpenAI: model tiny-llm), {url}/v2 (KServe), {url}/metrics")
