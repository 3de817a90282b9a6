"""Platform fixtures: a tiny local LLM (built once), model repositories, and a real uvicorn server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ADMIN_TOKEN = "test-admin-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from npusuite.platform.runtime.tiny_llm import make_tiny_llm

    return make_tiny_llm(tmp_path_factory.mktemp("tiny-llm") / "qwen2", seed=0)


@pytest.fixture
def scale_repo(tmp_path: Path):
    """A repository with model ``scale`` v1 (y = x) and v2 (y = 2x); production -> 1."""
    from npusuite.platform.repository import ModelRepository
    from npusuite.platform.runtime.reference_models import save_scale

    repo = ModelRepository(tmp_path / "models")
    repo.add("scale", save_scale(tmp_path / "src1", 1.0))
    repo.add("scale", save_scale(tmp_path / "src2", 2.0))
    return repo


@contextlib.contextmanager
def serving(manager, admin_token: str | None = ADMIN_TOKEN) -> Iterator[str]:
    """Run the platform app on a real socket in a thread; yields the base URL."""
    import uvicorn

    from npusuite.platform.serving.app import create_app

    port = _free_port()
    app = create_app(manager, manager.observer, admin_token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/v2/health/live", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("platform server did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        manager.close()


@pytest.fixture
def serve():
    """``with serve(manager) as url:`` runs the app on a real socket (see :func:`serving`)."""
    return serving


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
