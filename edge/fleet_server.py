"""``npusuite edge fleet serve``: the fleet server's HTTP protocol (FastAPI) over :class:`FleetStore`.

Endpoints (errors are JSON ``{"error": ...}``):

=======================================  =============================================  ==================
``POST /api/enroll``                     ``{enrollment_token, device_id}`` -> device token  enrolment token
``POST /api/heartbeat``                  version, health, update report -> desired update  device token
``POST /api/enrollment-tokens``          ``{uses}`` -> a new enrolment token              operator
``GET  /api/devices``                    devices with last heartbeat                       operator
``POST /api/campaigns``                  ``{target, version, stages_pct, failure_threshold}``  operator
``GET  /api/campaigns[/{id}]``           status, stage, outcome counts                     operator
``POST /api/campaigns/{id}/{action}``    ``pause`` / ``resume`` / ``cancel``               operator
``GET  /api/audit``                      who did what, newest first                        operator
``GET  /tuf/...``                        the signed release repository (static files)      public (signed)
``GET  /healthz``                        liveness                                          public
``GET  /readyz``                         the database answers (503 otherwise)              public
``GET  /metrics``                        Prometheus: process, host, disk, check-ins     public (loopback)
=======================================  =============================================  ==================

Hostile input: a JSON body is read only after the caller is authenticated,
refused with 413 past :data:`MAX_BODY_BYTES` (before more is read), with 400
when it is not a JSON object (nested deeper than 64, NaN/Infinity, not UTF-8:
:func:`npusuite.platform.records.load_json_object`), and with 422 naming the
field when a value is out of range: ids and names match patterns, target
paths are relative with no ``..`` (:func:`npusuite.edge.release.check_target_path`),
versions are PEP 440, numbers are finite and bounded, strings are bounded.

Operator auth: ``Authorization: Bearer TOKEN`` where TOKEN is an operator's
(``npusuite edge fleet add-operator NAME``; the audit log names them) or the
admin token (``--admin-token`` / ``NPUSUITE_ADMIN_TOKEN``; audited as
``admin``).  Device tokens never grant management access.  The TUF files are
public on purpose: boxes trust them because of their signatures, not the
transport.

Under systemd (``deploy/systemd/npusuite-fleet-server.service``, ``Type=notify``) the app's
lifespan sends ``READY=1`` at start (uvicorn binds its socket right after) and pings the watchdog
from the event loop that serves requests, so a stalled loop gets the service restarted; outside
systemd both are no-ops (:mod:`npusuite.platform.sd_notify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.staticfiles import StaticFiles

from npusuite.edge.fleet_metrics import LastSeenCollector
from npusuite.edge.fleet_store import UPDATE_STATES, FleetStore
from npusuite.edge.release import check_target_path, check_version
from npusuite.edge.rollout import RolloutPlan
from npusuite.platform.errors import NotFoundError, SchemaError, UserError
from npusuite.platform.observability.http import add_health_routes
from npusuite.platform.observability.infrastructure import register_infrastructure
from npusuite.platform.records import load_json_object, validation_reason
from npusuite.platform.sd_notify import SdNotify
from npusuite.platform.serving.body_limits import read_capped_body

logger = logging.getLogger(__name__)

#: Largest request body read; a heartbeat with its health report is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
_ID = r"^[A-Za-z0-9._-]+$"


def _as_value_error(check):
    def run(value: str | None) -> str | None:
        try:
            return value if value is None else check(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None
    return run


TargetPath = Annotated[str, AfterValidator(_as_value_error(check_target_path))]
Version = Annotated[str, AfterValidator(_as_value_error(check_version))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class EnrollBody(_Body):
    enrollment_token: str = Field(max_length=256)
    device_id: str = Field(min_length=1, max_length=128, pattern=_ID)


class UpdateReport(_Body):
    campaign_id: str | None = Field(default=None, max_length=64, pattern=_ID)
    target: TargetPath | None = None
    state: str = Field(max_length=32)
    detail: str | None = Field(default=None, max_length=4000)


class HeartbeatBody(_Body):
    version: str | None = Field(default=None, max_length=64)
    target: TargetPath | None = None
    health: dict[str, Any] = Field(default_factory=dict)  # bounded by MAX_BODY_BYTES and the JSON depth limit
    update: UpdateReport | None = None


class TokenBody(_Body):
    uses: int = Field(default=1, ge=1, le=100_000)


class CampaignBody(_Body):
    target: TargetPath
    version: Version
    stages_pct: list[float] = Field(default_factory=lambda: [5.0, 25.0, 100.0], min_length=1, max_length=20)
    failure_threshold: float = 0.2
    device_timeout_s: float = Field(default=1800.0, gt=0, le=30 * 86400)


B = TypeVar("B", bound=_Body)


def json_body(model: type[B]):
    """A dependency giving the body as ``model``: 413 too large, 400 not an acceptable JSON object, 422 a bad field."""
    async def parse(request: Request) -> B:
        raw = await read_capped_body(request, MAX_BODY_BYTES)
        try:
            data = load_json_object(raw or b"{}", max_bytes=MAX_BODY_BYTES)
        except SchemaError as exc:
            raise HTTPException(400, f"body is not an acceptable JSON object: {exc}") from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise HTTPException(422, validation_reason(exc, "body")) from None
    return Depends(parse)


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing Authorization: Bearer token")
    return authorization[7:].strip()


def _operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    token = _bearer(authorization)
    admin_token = request.app.state.admin_token
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return "admin"
    name = request.app.state.store.operator_for(token)
    if name is None:
        raise HTTPException(401, "not an operator token")
    return name


def _device(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    device_id = request.app.state.store.device_for(_bearer(authorization))
    if device_id is None:
        raise HTTPException(401, "unknown device token")
    return device_id


Operator = Annotated[str, Depends(_operator)]
Device = Annotated[str, Depends(_device)]


def _systemd_lifespan(notifier: SdNotify | None):
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        n = notifier or SdNotify.from_settings()
        watchdog = asyncio.create_task(n.watchdog_loop())
        n.ready("fleet server up")
        try:
            yield
        finally:
            n.stopping()
            watchdog.cancel()
    return lifespan


def create_app(store: FleetStore, admin_token: str | None = None, release_dir: Path | None = None,
               notifier: SdNotify | None = None) -> FastAPI:
    """The fleet app; ``notifier`` (default: from the environment) gets systemd's READY/WATCHDOG."""
    app = FastAPI(title="npusuite edge fleet", docs_url=None, redoc_url=None, lifespan=_systemd_lifespan(notifier))
    app.state.store = store
    app.state.admin_token = admin_token

    @app.exception_handler(HTTPException)
    async def _http_error(_req: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                            headers={"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid body')}"}, status_code=422)

    def _user_error(exc: UserError) -> HTTPException:
        return HTTPException(404 if isinstance(exc, NotFoundError) else 400, str(exc))

    registry = CollectorRegistry()
    app.state.gc_pauses = register_infrastructure(registry, {"database": store.path})
    registry.register(LastSeenCollector(store))

    def _database() -> bool:
        store.devices()  # a read: raises if the database is gone or locked past its timeout
        return True

    add_health_routes(app, lambda: {"database": _database()})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/api/enroll", status_code=201)
    def enroll(body: Annotated[EnrollBody, json_body(EnrollBody)]) -> dict[str, str]:
        try:
            token = store.enroll(body.enrollment_token, body.device_id)
        except PermissionError as exc:
            raise HTTPException(401, str(exc)) from exc
        return {"device_id": body.device_id, "device_token": token}

    @app.post("/api/heartbeat")
    def heartbeat(device_id: Device, body: Annotated[HeartbeatBody, json_body(HeartbeatBody)]) -> dict[str, Any]:
        if body.update is not None and body.update.state not in UPDATE_STATES:
            raise HTTPException(422, f"update.state must be one of {', '.join(UPDATE_STATES)}")
        desired = store.heartbeat(device_id, body.version, body.target, body.health,
                                  body.update.model_dump() if body.update else None)
        return {"desired": desired}

    @app.post("/api/enrollment-tokens", status_code=201)
    def new_enrollment_token(actor: Operator, body: Annotated[TokenBody, json_body(TokenBody)]) -> dict[str, Any]:
        return {"enrollment_token": store.create_enrollment_token(actor, body.uses), "uses": body.uses}

    @app.get("/api/devices")
    def devices(_actor: Operator) -> list[dict[str, Any]]:
        return store.devices()

    @app.post("/api/campaigns", status_code=201)
    def start_campaign(actor: Operator, body: Annotated[CampaignBody, json_body(CampaignBody)]) -> dict[str, Any]:
        try:
            plan = RolloutPlan(tuple(body.stages_pct), body.failure_threshold, body.device_timeout_s)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        try:
            camp = store.create_campaign(actor, body.target, body.version, plan)
        except UserError as exc:
            raise _user_error(exc) from exc
        return store.campaign(camp.id)

    @app.get("/api/campaigns")
    def list_campaigns(_actor: Operator) -> list[dict[str, Any]]:
        return store.campaigns()

    @app.get("/api/campaigns/{campaign_id}")
    def get_campaign(campaign_id: str, _actor: Operator) -> dict[str, Any]:
        try:
            return store.campaign(campaign_id)
        except UserError as exc:
            raise _user_error(exc) from exc

    @app.post("/api/campaigns/{campaign_id}/{action}")
    def campaign_action(campaign_id: str, action: str, actor: Operator) -> dict[str, Any]:
        if action not in ("pause", "resume", "cancel"):
            raise HTTPException(404, f"unknown action {action!r}: use pause, resume or cancel")
        try:
            store.set_status(actor, campaign_id, action)
            return store.campaign(campaign_id)
        except UserError as exc:
            raise _user_error(exc) from exc

    @app.get("/api/audit")
    def audit(_actor: Operator, limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> list[dict[str, Any]]:
        return store.audit(limit)

    if release_dir is not None:
        repo = Path(release_dir) / "repository"
        if not repo.is_dir():
            raise NotFoundError(f"{release_dir} has no repository/ (run `npusuite edge release init`)")
        app.mount("/tuf", StaticFiles(directory=str(repo)), name="tuf")
    return app
