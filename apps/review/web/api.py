"""JSON endpoints: ingest (service tokens), cases (session + CSRF header), and case images.

Ingest (interfaces 3 and 4 of the team contract):

- ``POST /api/ingest/fraud-alerts``: a ``fraud-alerts`` message body.
- ``POST /api/ingest/inspections``: an inspection NG record.
- Both need ``Authorization: Bearer <token>`` (401 otherwise) and answer 201
  ``{"case_id", "created": true}`` the first time, 200 with ``"created":
  false`` for a repeated id; 400 for a body that is not a JSON object
  (malformed, nested deeper than 64 levels, or with NaN/Infinity, which JSON
  does not have), 413 when it is larger than ``max_ingest_bytes``, 422 naming
  the bad field (non-finite numbers such as ``1e999`` and boxes outside the
  image included).  Size and depth are checked before parsing, and parsing
  runs off the event loop.

Everything else here needs a session: 401 JSON without one.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from npusuite.platform.errors import SchemaError
from npusuite.platform.records import load_json_object
from npusuite.platform.serving.body_limits import read_capped_body
from npusuite.review import accounts, cases, ingest, supervision
from npusuite.review.models import CaseImage
from npusuite.review.web.deps import MAX_ID, ApiUser, ApiWriter, CaseId, Db, Offset
from npusuite.review.web.views import case_json

logger = logging.getLogger(__name__)
router = APIRouter()


async def _body(request: Request) -> bytes:
    """The raw body, refused with 413 past the limit before more of it is read than the limit."""
    return await read_capped_body(request, request.app.state.cfg.max_ingest_bytes)


def _parse(parse, body: bytes, limit: int):
    """BODY as a record: 400 when it is not a JSON object (including too deep, or NaN/Infinity), 422 naming a field."""
    try:
        data = load_json_object(body, max_bytes=limit)
    except SchemaError as exc:
        raise HTTPException(400, f"body is not an acceptable JSON object: {exc}") from None
    try:
        return parse(data)
    except SchemaError as exc:
        raise HTTPException(422, str(exc)) from None


def _caller(request: Request) -> str:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    with request.app.state.sessions() as db:
        who = accounts.check_service_token(db, token, request.app.state.cfg.env_ingest_token)
    if who is None:
        raise HTTPException(401, "a valid service token is required: Authorization: Bearer <token>")
    return who


async def _ingest(request: Request, parse, store) -> JSONResponse:
    who = await run_in_threadpool(_caller, request)
    body = await _body(request)
    # Parsing up to 16 MiB takes a while: off the event loop, so other requests are not held up.
    record = await run_in_threadpool(_parse, parse, body, request.app.state.cfg.max_ingest_bytes)

    def work() -> ingest.IngestResult:
        with request.app.state.sessions() as db:
            return store(db, record, who, request.app.state.cfg)

    result = await run_in_threadpool(work)
    return JSONResponse({"case_id": result.case_id, "created": result.created},
                        status_code=201 if result.created else 200)


@router.post("/api/ingest/fraud-alerts")
async def ingest_fraud_alert(request: Request) -> JSONResponse:
    return await _ingest(request, ingest.parse_fraud_alert, ingest.ingest_fraud_alert)


@router.post("/api/ingest/inspections")
async def ingest_inspection(request: Request) -> JSONResponse:
    return await _ingest(request, ingest.parse_inspection, ingest.ingest_inspection)


@router.get("/api/me")
def me(user: ApiUser) -> dict:
    return {"username": user.username, "role": user.role, "teams": dict(user.teams), "csrf_token": user.csrf_token}


@router.get("/api/cases")
def list_cases(user: ApiUser, db: Db, kind: str | None = None, status: str | None = None,
               decision: str | None = None, outcome: str | None = None, reason: str | None = None,
               typology: str | None = None, model: str | None = None, assignee: str | None = None,
               sort: str = "risk", limit: Annotated[int, Query(ge=1, le=500)] = 100,
               offset: Offset = 0, team: str | None = None,
               linked: Annotated[str | None, Query(max_length=160)] = None) -> dict:
    flt = cases.QueueFilter(kind, status, decision, outcome, reason, typology, model, assignee, sort, team, linked)
    return {"cases": [case_json(c) for c in cases.list_cases(db, flt, user, limit, offset)]}


@router.get("/api/cases/{case_id}")
def get_case(case_id: CaseId, user: ApiUser, db: Db) -> dict:
    return case_json(cases.visible_case(db, case_id, user), cases.journal_for(db, case_id))


class NextBody(BaseModel):
    kind: str | None = Field(default=None, max_length=32)
    team: str | None = Field(default=None, max_length=32)


@router.post("/api/cases/next")
def next_case(user: ApiWriter, db: Db, body: NextBody | None = None) -> dict:
    taken = cases.next_case(db, user, body.kind if body else None, body.team if body else None)
    return {"case": None if taken is None else case_json(taken)}


@router.post("/api/cases/{case_id}/take")
def take(case_id: CaseId, user: ApiWriter, db: Db) -> dict:
    return case_json(cases.take_case(db, case_id, user))


@router.post("/api/cases/{case_id}/release")
def release(case_id: CaseId, user: ApiWriter, db: Db) -> dict:
    return case_json(cases.release_case(db, case_id, user))


class DecideBody(BaseModel):
    action: str
    comment: str | None = None
    type: str | None = None


@router.post("/api/cases/{case_id}/decide")
def decide(case_id: CaseId, body: DecideBody, user: ApiWriter, db: Db) -> dict:
    found = cases.decide(db, case_id, user, body.action, body.comment, body.type)
    return case_json(found, cases.journal_for(db, case_id))


class AssignBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)


@router.post("/api/cases/{case_id}/assign")
def assign(case_id: CaseId, body: AssignBody, user: ApiWriter, db: Db) -> dict:
    """Supervisors of the case's team: hand the case to a member of the team (403 for others)."""
    return case_json(supervision.reassign(db, case_id, user, body.username))


class BulkBody(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=supervision.MAX_BULK)
    action: str = Field(max_length=32)
    comment: str | None = None
    type: str | None = None


@router.post("/api/cases/bulk-decide")
def bulk_decide(body: BulkBody, user: ApiWriter, db: Db) -> dict:
    """Supervisors: close many cases of their team with one decision; one journal entry per closed case."""
    result = supervision.bulk_decide(db, user, body.ids, body.action, body.comment, body.type)
    return {"closed": result.closed, "skipped": [{"id": i, "reason": why} for i, why in result.skipped]}


@router.get("/cases/{case_id}/{name}.png")
def case_image(case_id: CaseId, name: str, user: ApiUser, db: Db) -> Response:
    if name not in ("image", "heatmap"):
        raise HTTPException(404, f"no image {name!r}")
    cases.visible_case(db, case_id, user)
    row = db.get(CaseImage, (case_id, name))
    if row is None:
        raise HTTPException(404, f"case {case_id} has no {name}")
    return Response(row.png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
