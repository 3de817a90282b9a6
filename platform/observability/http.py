"""``/metrics``, ``/healthz`` and ``/readyz`` for processes that have no web app of their own.

:class:`HealthServer` is a small threaded ``http.server`` on a daemon thread
(the fraud scorer and the inspection line run their work on the main
thread).  It binds to 127.0.0.1 unless told otherwise.  FastAPI apps (the
platform server, the review app, the fleet server) add the same two health
routes with :func:`add_health_routes`.

Readiness is a callable returning ``{check: bool}``; ``/readyz`` answers 200
when every check is true and 503 with the checks otherwise (JSON either way).
Other paths answer a JSON 404; methods other than GET/HEAD a JSON 405.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

Readiness = Callable[[], Mapping[str, bool]]


def readiness_answer(ready: Readiness) -> tuple[int, dict]:
    """(status, body) for ``/readyz``; a check that raises counts as failed (and names the error type)."""
    try:
        checks = {k: bool(v) for k, v in ready().items()}
    except Exception as exc:  # a readiness probe must answer, not crash the handler
        logger.warning("readiness check failed: %s", exc)
        return 503, {"ready": False, "checks": {}, "error": type(exc).__name__}
    ok = all(checks.values())
    return (200 if ok else 503), {"ready": ok, "checks": checks}


def _handler(registry: CollectorRegistry, ready: Readiness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "npusuite"
        sys_version = ""

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                self._json(*readiness_answer(ready))
            else:
                self._json(404, {"error": "not found; try /metrics, /healthz or /readyz"})

        do_HEAD = do_GET

        def _not_allowed(self) -> None:
            self._json(405, {"error": f"method {self.command} not allowed; use GET"})

        do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

        def log_message(self, format: str, *args) -> None:
            pass

    return Handler


class HealthServer:
    """``/metrics`` + ``/healthz`` + ``/readyz`` on ``host:port`` (port 0 picks a free one: see :attr:`port`)."""

    def __init__(self, registry: CollectorRegistry, ready: Readiness = lambda: {}, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer((host, port), _handler(registry, ready))
        self._httpd.daemon_threads = True
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="npusuite-health")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        logger.info("metrics and health at %s/metrics, /healthz, /readyz", self.url)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def add_health_routes(app, ready: Readiness = lambda: {}) -> None:
    """``GET /healthz`` and ``GET /readyz`` on a FastAPI ``app`` (unauthenticated, like /metrics)."""
    from fastapi.responses import JSONResponse

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        status, body = readiness_answer(ready)
        return JSONResponse(body, status_code=status)
