"""The platform's FastAPI application: routes, error mapping, metrics.

Rules:
- Every error is JSON ``{"error": "..."}``.  Caller mistakes are 4xx: a
  malformed body 400 (never FastAPI's default 422 ``detail``), an unknown model
  404, a missing/bad admin token 401.  A full queue is 503 with ``Retry-After``
  (seconds); a request past its deadline 504; a failed load 409 with the
  reason (the old version keeps serving).
- Every inference answer is counted in ``npusuite_requests_total`` by model,
  endpoint and status.
- Dependencies (the model manager, metrics, admin token) come in through
  :func:`create_app`; nothing here reads the environment.
"""

from __future__ import annotations

import logging
import math
import re

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from npusuite.platform.engine.errors import (
    DeadlineExceededError,
    EngineBusyError,
    EngineClosedError,
    ModelNotReadyError,
    SwapError,
)
from npusuite.platform.engine.manager import ModelManager
from npusuite.platform.errors import NotFoundError, UserError
from npusuite.platform.serving import oip, openai_api
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


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(manager: ModelManager, metrics: PlatformMetrics | None = None,
               admin_token: str | None = None) -> FastAPI:
    app = FastAPI(title="npusuite platform", version="0.1.0",
                  description="KServe v2 + OpenAI-compatible inference with hot swap and dynamic batching.")
    app.state.manager = manager
    app.state.metrics = metrics or PlatformMetrics()
    app.state.admin_token = admin_token
    app.include_router(oip.router)
    app.include_router(openai_api.router)

    @app.get("/metrics")
    def prometheus() -> Response:
        for engine in manager.loaded():
            app.state.metrics.queue_depth(engine.name, engine.queue_depth)
            for alias, version in manager.repository.aliases(engine.name).items():
                app.state.metrics.version(engine.name, alias, version)
        return Response(app.state.metrics.render(), media_type="text/plain; version=0.0.4")

    app.add_middleware(RequestCounter, metrics=app.state.metrics)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(400, f"malformed request body: {where + ': ' if where else ''}{first.get('msg', exc)}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(EngineBusyError)
    async def busy(request: Request, exc: EngineBusyError):
        return _error(503, str(exc), {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))})

    @app.exception_handler(DeadlineExceededError)
    async def late(request: Request, exc: DeadlineExceededError):
        return _error(504, str(exc))

    @app.exception_handler(EngineClosedError)
    async def closed(request: Request, exc: EngineClosedError):
        return _error(503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        if isinstance(exc, SwapError):
            return _error(409, str(exc))
        if isinstance(exc, NotFoundError | ModelNotReadyError):
            return _error(404, str(exc))
        return _error(400, str(exc))

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError):
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        logger.error("unhandled error on %s", request.url.path, exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    return app
