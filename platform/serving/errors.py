"""Every failure of the platform's HTTP API as one JSON error shape per API.

Rules:
- KServe / Open Inference Protocol paths (everything outside ``/v1/``)
  answer ``{"error": "<reason>"}``, OIP's error shape.
- OpenAI paths (``/v1/...``) answer OpenAI's error object
  ``{"error": {"message", "type", "param", "code"}}``: ``type`` is
  ``invalid_request_error`` for 4xx (``authentication_error`` for 401) and
  ``server_error`` for 5xx; ``param`` names the offending field when known.
- Status by exception: malformed body or bad parameter 400 (never FastAPI's
  422 ``detail``), unknown model 404, bad/missing admin token 401/403, failed
  load 409, body too large 413, a non-finite output asked for as JSON 422,
  engine busy 503 + ``Retry-After``, deadline
  passed 504, a generation that failed inside the engine 500 with its reason.
- Anything else is a bug: :class:`ErrorBoundary` logs the traceback
  server-side and answers a generic JSON 500 that names no exception type
  and no internals.  No path ever answers a text/plain 500.
- Bodies are encoded with ``allow_nan=False``: never a bare NaN.
"""

from __future__ import annotations

import json
import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from npusuite.platform.engine.errors import (
    DeadlineExceededError,
    EngineBusyError,
    EngineClosedError,
    GenerationError,
    InvalidParameterError,
    ModelNotReadyError,
    SwapError,
)
from npusuite.platform.errors import NotFoundError, UserError
from npusuite.platform.serving.tensors import NonFiniteOutputError

logger = logging.getLogger(__name__)

#: A client that went away before its answer (nginx's convention); nobody reads this status but the metrics.
CLIENT_CLOSED = 499


class ClientDisconnected(Exception):
    """The HTTP client disconnected while its request waited; its work was cancelled."""


class BodyTooLargeError(UserError):
    """The request body is larger than the server's ``--max-body-bytes`` (HTTP 413)."""


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/")


def error_body(path: str, status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    if is_openai_path(path):
        kind = ("authentication_error" if status == 401 else "invalid_request_error" if status < 500
                else "server_error")
        body: dict = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    else:
        body = {"error": message}
    return json.dumps(body, allow_nan=False).encode()


def error_response(request_or_path: Request | str, status: int, message: str, *, param: str | None = None,
                   code: str | None = None, headers: dict | None = None) -> Response:
    path = request_or_path if isinstance(request_or_path, str) else request_or_path.url.path
    return Response(error_body(path, status, message, param, code), status_code=status, headers=headers,
                    media_type="application/json")


def _status_of(exc: UserError) -> tuple[int, str | None]:
    if isinstance(exc, SwapError):
        return 409, None
    if isinstance(exc, NotFoundError | ModelNotReadyError):
        return 404, "model_not_found"
    if isinstance(exc, BodyTooLargeError):
        return 413, None
    if isinstance(exc, NonFiniteOutputError):
        return 422, None
    return 400, None


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception the routes raise to the API's error shape (see module rules)."""

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        where = ".".join(loc)
        return error_response(request, 400, f"malformed request body: {where + ': ' if where else ''}"
                                            f"{first.get('msg', 'invalid')}", param=where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_response(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(EngineBusyError)
    async def busy(request: Request, exc: EngineBusyError):
        return error_response(request, 503, str(exc),
                              headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))})

    @app.exception_handler(DeadlineExceededError)
    async def late(request: Request, exc: DeadlineExceededError):
        return error_response(request, 504, str(exc))

    @app.exception_handler(EngineClosedError)
    async def closed(request: Request, exc: EngineClosedError):
        return error_response(request, 503, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(GenerationError)
    async def generation_failed(request: Request, exc: GenerationError):
        return error_response(request, 500, f"generation failed: {exc}")

    @app.exception_handler(ClientDisconnected)
    async def gone(request: Request, exc: ClientDisconnected):
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        status, code = _status_of(exc)
        return error_response(request, status, str(exc), param=getattr(exc, "param", None), code=code)

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError):  # numpy/tokenizer refusals of the input
        return error_response(request, 400, str(exc), param=getattr(exc, "param", None))

    @app.exception_handler(InvalidParameterError)
    async def bad_parameter(request: Request, exc: InvalidParameterError):
        return error_response(request, 400, str(exc), param=exc.param)


class ErrorBoundary:
    """Pure ASGI middleware: an exception no handler took is logged with its traceback and answered with a
    generic JSON 500 (when the response has not started yet), instead of Starlette's text/plain one."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return  # a streamed answer is under way; the connection ends here
            body = error_body(scope.get("path", ""), 500, "internal server error; the server log has the details")
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
