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
=======================================  =============================================  ==================

Operator auth: ``Authorization: Bearer TOKEN`` where TOKEN is an operator's
(``npusuite edge fleet add-operator NAME``; the audit log names them) or the
admin token (``--admin-token`` / ``NPUSUITE_ADMIN_TOKEN``; audited as
``admin``).  Device tokens never grant management access.  The TUF files are
public on purpose: boxes trust them because of their signatures, not the
transport.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles

from npusuite.edge.fleet_store import UPDATE_STATES, FleetStore
from npusuite.edge.rollout import RolloutPlan
from npusuite.platform.errors import NotFoundError, UserError

logger = logging.getLogger(__name__)


class EnrollBody(BaseModel):
    enrollment_token: str
    device_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")


class UpdateReport(BaseModel):
    campaign_id: str | None = None
    target: str | None = None
    state: str
    detail: str | None = None


class HeartbeatBody(BaseModel):
    version: str | None = None
    target: str | None = None
    health: dict[str, Any] = Field(default_factory=dict)
    update: UpdateReport | None = None


class TokenBody(BaseModel):
    uses: int = Field(default=1, ge=1, le=100_000)


class CampaignBody(BaseModel):
    target: str = Field(min_length=1)
    version: str = Field(min_length=1)
    stages_pct: list[float] = Field(default_factory=lambda: [5.0, 25.0, 100.0])
    failure_threshold: float = 0.2
    device_timeout_s: float = 1800.0


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


def create_app(store: FleetStore, admin_token: str | None = None, release_dir: Path | None = None) -> FastAPI:
    app = FastAPI(title="npusuite edge fleet", docs_url=None, redoc_url=None)
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

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/enroll", status_code=201)
    def enroll(body: EnrollBody) -> dict[str, str]:
        try:
            token = store.enroll(body.enrollment_token, body.device_id)
        except PermissionError as exc:
            raise HTTPException(401, str(exc)) from exc
        return {"device_id": body.device_id, "device_token": token}

    @app.post("/api/heartbeat")
    def heartbeat(body: HeartbeatBody, device_id: Device) -> dict[str, Any]:
        if body.update is not None and body.update.state not in UPDATE_STATES:
            raise HTTPException(422, f"update.state must be one of {', '.join(UPDATE_STATES)}")
        desired = store.heartbeat(device_id, body.version, body.target, body.health,
                                  body.update.model_dump() if body.update else None)
        return {"desired": desired}

    @app.post("/api/enrollment-tokens", status_code=201)
    def new_enrollment_token(body: TokenBody, actor: Operator) -> dict[str, Any]:
        return {"enrollment_token": store.create_enrollment_token(actor, body.uses), "uses": body.uses}

    @app.get("/api/devices")
    def devices(_actor: Operator) -> list[dict[str, Any]]:
        return store.devices()

    @app.post("/api/campaigns", status_code=201)
    def start_campaign(body: CampaignBody, actor: Operator) -> dict[str, Any]:
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
    def audit(_actor: Operator, limit: int = 200) -> list[dict[str, Any]]:
        return store.audit(limit)

    if release_dir is not None:
        repo = Path(release_dir) / "repository"
        if not repo.is_dir():
            raise NotFoundError(f"{release_dir} has no repository/ (run `npusuite edge release init`)")
        app.mount("/tuf", StaticFiles(directory=str(repo)), name="tuf")
    return app
