"""Edge fixtures: real HTTP servers on loopback (uvicorn in a thread), a release repository, a box.

``serve(app)`` starts any ASGI app on a free loopback port and returns its base URL;
servers stop when the test ends.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.app = app
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(15)


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def _serve(app, port: int | None = None) -> ServerThread:
        srv = ServerThread(app, port).start()
        started.append(srv)
        return srv

    yield _serve
    for srv in started:
        srv.stop()


def static_repo_app(repository_dir: Path) -> Starlette:
    """The TUF repository served as plain files (Range requests supported by Starlette)."""
    return Starlette(routes=[Mount("/", app=StaticFiles(directory=str(repository_dir)))])


@pytest.fixture
def serve_static(serve) -> Callable[[Path], ServerThread]:
    """Serve a folder (e.g. a TUF ``repository/``) over real HTTP on loopback."""
    return lambda folder: serve(static_repo_app(folder))
