"""The platform's FastAPI application: routes, error mapping, limits, metrics.

Rules:
- Every error is JSON in the API's shape (KServe ``{"error": "..."}``,
  OpenAI's error object on ``/v1/``); see :mod:`~npusuite.platform.serving.errors`
  for the statuses.  An unexpected exception is logged with its traceback
  and answered with a generic JSON 500; none leaks its type.
- Bodies are bounded before parsing (``max_body_bytes``, 413; JSON depth, 400):
  :mod:`~npusuite.platform.serving.body_limits`.
- Every inference answer is counted in ``npusuite_platform_requests_total`` by model,
  endpoint and status.
- ``/healthz`` (alive) and ``/readyz`` (at least one model loaded and ready, 503 otherwise) are
  unauthenticated, like ``/metrics`` (docs/observability.md).
- Dependencies (the model manager, metrics, admin token, limits) come in
  through :func:`create_app`; nothing here reads the environment.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI
from fastapi.responses import Response

from npusuite.platform.engine.manager import ModelManager
from npusuite.platform.observability.http import add_health_routes
from npusuite.platform.serving import oip, oip_statistics, openai_api
from npusuite.platform.serving.body_limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from npusuite.platform.serving.errors import ErrorBoundary, install_error_handlers
from npusuite.platform.serving.metrics import PlatformMetrics

logger = logging.getLogger(__name__)
_MODEL_IN_PATH = re.compile(r"^/v2/models/([^/]+)")


class RequestCounter:
    """Pure ASGI middleware counting inference answers by model, endpoint and status (cheaper than
    ``BaseHTTPMiddleware``, which copies every response body through a queue)."""

    def __init__(self, app, metrics: PlatformMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "POST" or not (
                path.endswith("/infer") or path.startswith("/v1/")):
            return await self.app(scope, receive, send)
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            m = _MODEL_IN_PATH.match(path)
            model = m.group(1) if m else scope.get("npusuite_model", "-")
            self.metrics.request(model, "infer" if m else path.rsplit("/", 1)[-1], status["code"])


def create_app(manager: ModelManager, metrics: PlatformMetrics | None = None,
               admin_token: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="npusuite platform", version="0.1.0",
                  description="KServe v2 + OpenAI-compatible inference with hot swap and dynamic batching.")
    app.state.manager = manager
    app.state.metrics = metrics or PlatformMetrics()
    app.state.admin_token = admin_token
    app.include_router(oip_statistics.router)  # first: /v2/models/stats is not a model named "stats"
    app.include_router(oip.router)
    app.include_router(openai_api.router)

    add_health_routes(app, lambda: {"models": bool(manager.loaded())})

    @app.get("/metrics")
    def prometheus() -> Response:
        for engine in manager.loaded():
            app.state.metrics.queue_depth(engine.name, engine.queue_depth)
            for alias, version in manager.repository.aliases(engine.name).items():
                app.state.metrics.version(engine.name, alias, version)
        return Response(app.state.metrics.render(), media_type="text/plain; version=0.0.4")

    install_error_handlers(app)
    # add_middleware puts each one outside the previous: RequestCounter (outermost) sees the status of
    # everything, ErrorBoundary turns any escaped exception into JSON, BodyLimit refuses bodies before routes
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)
    app.add_middleware(ErrorBoundary)
    app.add_middleware(RequestCounter, metrics=app.state.metrics)
    return app
