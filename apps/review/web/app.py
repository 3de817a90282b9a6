"""The FastAPI application: wiring, error shapes and security headers.

Rules:

- :func:`create_app` takes everything it needs (config, database session
  factory, optional alert consumer); it opens nothing itself except starting
  and stopping the consumer with the app's lifespan.
- One error shape: under ``/api/`` and for images, JSON ``{"error": "..."}``
  with the status; for pages, an HTML error page with the same status.  A
  missing session on a page is a 303 to ``/login?next=...``.  This holds for
  every exception, not only the expected ones: a value the database refuses
  is a 422, a database that cannot be reached a 503 with ``Retry-After``,
  anything else a 500 ``internal error`` (logged with its traceback).  No
  answer names an exception type or carries a traceback.
- ``/healthz`` (liveness) answers 503 when the alert consumer was started and
  its thread is gone; ``/readyz`` answers 200 only when the database answers
  and the consumer (if any) is consuming, 503 otherwise.  Both report the
  consumer's counters and state.  ``/metrics`` is the Prometheus exposition
  (breached open cases per team; counts only, no login).
- Every response carries a strict Content-Security-Policy (same-origin only:
  no CDN, no inline scripts), ``X-Frame-Options: DENY``, ``nosniff`` and
  ``Referrer-Policy: same-origin``; pages are ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from npusuite.platform.errors import NotFoundError, UserError
from npusuite.review import cases, metrics
from npusuite.review.config import ReviewConfig
from npusuite.review.consumer import AlertConsumer
from npusuite.review.failures import database_refusal, is_transient, one_line
from npusuite.review.login_limiter import LoginLimiter
from npusuite.review.web import admin, api, auth_routes, pages, supervision_pages
from npusuite.review.web.deps import LoginRequired, templates

logger = logging.getLogger(__name__)

_STATIC = Path(__file__).resolve().parent.parent / "static"
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.endswith(".png") or path.endswith(".svg")


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    user = getattr(request.state, "user", None)
    return templates.TemplateResponse(request, "error.html", {"user": user, "status": status, "message": message},
                                      status_code=status)


def _secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if response.headers.get("content-type", "").startswith("text/html"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _unexpected(request: Request, exc: Exception) -> Response:
    """The answer to an exception no route expected: never a text/plain 500, never the exception's type."""
    if is_transient(exc):
        logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, one_line(exc))
        resp = _error(request, 503, "the database is unavailable; try again shortly")
        resp.headers["Retry-After"] = "5"
        return resp
    refusal = database_refusal(exc)
    if refusal is not None:
        logger.info("%s %s: the database refused a value: %s", request.method, request.url.path, refusal)
        return _error(request, 422, f"the database refused a value of this request: {refusal}")
    logger.error("%s %s failed: %s", request.method, request.url.path, one_line(exc), exc_info=exc)
    return _error(request, 500, "internal error")


def create_app(cfg: ReviewConfig, sessions: sessionmaker[Session], consumer: AlertConsumer | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if consumer is not None:
            consumer.start()
        try:
            yield
        finally:
            if consumer is not None:
                consumer.stop()

    app = FastAPI(title="npusuite review", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.cfg = cfg
    app.state.sessions = sessions
    app.state.consumer = consumer
    app.state.login_limiter = LoginLimiter(cfg.login_max_failures, cfg.login_window_s,
                                           max_per_address=cfg.login_max_failures_per_address,
                                           max_per_user=cfg.login_max_failures_per_user)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/login?" + urlencode({"next": exc.next_path}), status_code=303)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        resp = _error(request, exc.status_code, str(exc.detail))
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
        return _error(request, 422, f"field '{field}': {err['msg']}")

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> Response:
        status = 400
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, cases.PermissionDenied):
            status = 403
        elif isinstance(exc, cases.CaseStateError):
            status = 409
        return _error(request, status, str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> Response:
        return _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _anything(request: Request, exc: Exception) -> Response:
        # Starlette answers this from outside the middleware below, so the headers are added here too.
        return _secure(_unexpected(request, exc))

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        return _secure(await call_next(request))

    def consumer_report() -> dict:
        # Counters and state only: the last error may name hosts, and these endpoints need no login.
        stats = {k: v for k, v in vars(consumer.stats).items() if k != "last_error"}
        return {"alive": consumer.alive, "ready": consumer.ready, **stats}

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness: 503 once the alert consumer's thread has died (it restarts itself after any failure)."""
        if consumer is None:
            return JSONResponse({"status": "ok"})
        dead = consumer.stats.state != "stopped" and not consumer.alive
        return JSONResponse({"status": "consumer thread died" if dead else "ok", "consumer": consumer_report()},
                            status_code=503 if dead else 200)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the database answers and the consumer, if any, is consuming."""
        def database_answers() -> str | None:
            try:
                with sessions() as db:
                    db.execute(text("SELECT 1"))
            except SQLAlchemyError as exc:
                return one_line(exc)
            return None

        problem = await run_in_threadpool(database_answers)
        out: dict = {"status": "ready", "database": "ok" if problem is None else "unavailable"}
        if problem is not None:
            out["status"] = "database unavailable"
        if consumer is not None:
            out["consumer"] = consumer_report()
            if problem is None and not consumer.ready:
                out["status"] = f"consumer {consumer.stats.state if consumer.alive else 'thread died'}"
        return JSONResponse(out, status_code=200 if out["status"] == "ready" else 503)

    registry = metrics.registry_for(sessions)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text format; counts only (see npusuite.review.metrics), so no login."""
        body = await run_in_threadpool(metrics.exposition, registry)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(auth_routes.router)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(supervision_pages.router)
    app.include_router(admin.router)
    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")
    return app
