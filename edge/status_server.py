"""The agent's local HTTP endpoint: ``GET /status`` (JSON), ``GET /metrics`` (Prometheus), ``GET /healthz``,
``GET /readyz`` (200 when the ``ready`` checks all pass, e.g. a model is loaded; 503 otherwise).

``/status`` shows the running slot, the state of the current or last update
(``idle``, ``downloading``, ``health_check``, ``committed``, ``rolled_back``,
``refused`` ... with the health report), the outbox counters and the link
state.  It carries no images.  With a status token configured, ``/status``
and ``/metrics`` need ``Authorization: Bearer TOKEN`` (401 JSON otherwise).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from npusuite.platform.observability.http import Readiness, add_health_routes

logger = logging.getLogger(__name__)


def create_status_app(status: Callable[[], dict[str, Any]], registry: CollectorRegistry,
                      token: str | None = None, ready: Readiness = lambda: {}) -> FastAPI:
    app = FastAPI(title="npusuite edge agent", docs_url=None, redoc_url=None)

    def _denied(request: Request) -> JSONResponse | None:
        if not token:
            return None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
            return None
        return JSONResponse({"error": "missing or bad bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    add_health_routes(app, ready)

    @app.get("/status")
    def get_status(request: Request) -> Any:
        return _denied(request) or status()

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        return _denied(request) or Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class StatusServer:
    """uvicorn on a daemon thread (the agent's main thread runs the line)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="edge-status")
        self.url = f"http://{host}:{port}"

    def start(self) -> StatusServer:
        self.thread.start()
        logger.info("agent status at %s/status", self.url)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
