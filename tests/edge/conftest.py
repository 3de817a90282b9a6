"""Edge fixtures: real HTTP servers on loopback (uvicorn in a thread), a release repository, a box.

``serve(app)`` starts any ASGI app on a free loopback port and returns its base URL;
servers stop when the test ends.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
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


class IngestDouble:
    """The review app's inspection ingest (docs/contracts.md), reduced to its contract, on SQLite that outlives
    restarts.

    Used where the test must take the upstream down and up again on the same port; a separate test
    runs the agent against the real review app.  Records every POST (``posts``) and every stored
    case once per id (``cases``), so a test can see retries and prove nothing was stored twice.
    """

    def __init__(self, db_path: Path, token: str) -> None:
        import sqlite3

        self.db_path = db_path
        self.token = token
        db = sqlite3.connect(db_path)
        db.executescript("CREATE TABLE IF NOT EXISTS posts(id TEXT, at REAL);"
                         "CREATE TABLE IF NOT EXISTS cases(id TEXT PRIMARY KEY, defective INTEGER, body TEXT);")
        db.close()
        app = FastAPI()

        @app.post("/api/ingest/inspections")
        async def ingest(request: Request, authorization: str | None = Header(None)):
            if authorization != f"Bearer {token}":
                return JSONResponse({"error": "bad token"}, status_code=401)
            body = await request.json()
            if not isinstance(body.get("id"), str) or "image_png_b64" not in body:
                return JSONResponse({"error": "bad body"}, status_code=422)
            con = sqlite3.connect(db_path, isolation_level=None)
            try:
                con.execute("INSERT INTO posts VALUES(?, ?)", (body["id"], time.time()))
                cur = con.execute("INSERT OR IGNORE INTO cases VALUES(?, ?, ?)",
                                  (body["id"], int(body["defective"]), json.dumps(body)[:2000]))
                created = cur.rowcount == 1
            finally:
                con.close()
            return JSONResponse({"case_id": body["id"], "created": created}, status_code=201 if created else 200)

        self.app = app

    def counts(self) -> tuple[int, int]:
        import sqlite3

        con = sqlite3.connect(self.db_path)
        try:
            return (con.execute("SELECT count(*) FROM posts").fetchone()[0],
                    con.execute("SELECT count(*) FROM cases").fetchone()[0])
        finally:
            con.close()

    def case_ids(self) -> list[str]:
        import sqlite3

        con = sqlite3.connect(self.db_path)
        try:
            return [r[0] for r in con.execute("SELECT id FROM cases")]
        finally:
            con.close()


@pytest.fixture
def ingest_double(tmp_path) -> Callable[[str], IngestDouble]:
    return lambda token: IngestDouble(tmp_path / "upstream.db", token)


@pytest.fixture(scope="session")
def trained_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A washer student trained for a few steps (``ROOT/torch``) and exported to ONNX (``ROOT/onnx``) by
    ``inspection export``, with its test images (``ROOT/data/washer/test``): the real model files and code paths
    a bundle carries, not a good detector."""
    from npusuite.inspection.export import ExportConfig, export
    from npusuite.inspection.generate import GenerateConfig, generate
    from npusuite.inspection.train import TrainConfig, train

    root = tmp_path_factory.mktemp("edge-trained")
    generate(root / "data", GenerateConfig(size_px=32, train_good=24, test_good=6, test_per_defect=2, seed=3),
             ("washer",))
    train(root / "data" / "washer", root / "torch", TrainConfig(teacher_steps=20, student_steps=20, batch_size=8,
                                                                 teacher_widths=(8, 16, 32), progress=False))
    export(root / "torch", root / "onnx", ExportConfig(images=root / "data" / "washer" / "test"))
    return root
