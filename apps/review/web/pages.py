"""Server-rendered pages: queue, case pages and their actions, journal, SLA dashboard.

Every page needs a session (no session: 303 to the login page).  Every form
post is checked for the session's CSRF token before anything else.  Actions
answer 303 back to the case page on success (post/redirect/get), and re-render
the case page with the reason and a 4xx status when refused.  A user sees only
their teams' queues and cases (another team's case page is a 403); the
supervisors' forms (reassign, bulk decide) are in ``supervision_pages.py``.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from npusuite.platform.contracts.labels import DefectKind, FraudTypology
from npusuite.platform.errors import NotFoundError, UserError
from npusuite.review import cases, links, sla, sla_chart
from npusuite.review.accounts import list_users
from npusuite.review.models import OUTCOMES, STATUSES, CaseImage, utcnow
from npusuite.review.teams import TEAM_LABELS
from npusuite.review.web import views
from npusuite.review.web.deps import CaseId, Db, PageNumber, PageUser, check_form_csrf, need_role, templates

logger = logging.getLogger(__name__)
router = APIRouter()

PAGE_SIZE = 50
#: The forms' choices, (value, human label), from the one label vocabulary.
DEFECT_TYPES = DefectKind.choices()
FRAUD_TYPES = FraudTypology.choices()
_FILTERS = ("team", "linked", "kind", "status", "decision", "outcome", "reason", "typology", "model", "assignee")
#: What every page that lists cases needs to draw them.
HELPERS = {"sla_text": views.sla_text, "age_text": views.age_text, "ref": views.case_ref, "risk": views.risk_view,
           "breached": views.breached, "team_labels": TEAM_LABELS}


def _status_of(exc: UserError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, cases.PermissionDenied):
        return 403
    if isinstance(exc, cases.CaseStateError):
        return 409
    return 400


@router.get("/")
def home(user: PageUser) -> Response:
    return RedirectResponse("/queue", status_code=303)


@router.get("/queue")
def queue(request: Request, user: PageUser, db: Db, sort: str = "risk", page: PageNumber = 1,
          notice: str | None = None) -> Response:
    chosen = {k: request.query_params.get(k) or None for k in _FILTERS}
    if chosen["reason"] not in (None, *views.REASON_LABELS):
        chosen["reason"] = None  # a stale or hand-typed link: show the whole queue (the API says 400)
    if chosen["team"] not in (None, *user.team_list):
        chosen["team"] = None
    if "status" not in request.query_params:
        chosen["status"] = "active"
    flt = cases.QueueFilter(**chosen, sort=sort if sort in cases.SORTS else "risk")
    rows = cases.list_cases(db, flt, user, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    more = len(rows) > PAGE_SIZE
    keep = {k: v for k, v in chosen.items() if v}

    def link(**changes) -> str:
        merged = {**keep, "sort": flt.sort, **changes}
        return "/queue?" + urlencode({k: v for k, v in merged.items() if v})

    return templates.TemplateResponse(request, "queue.html", {
        "user": user, "cases": rows[:PAGE_SIZE], "flt": flt, "facets": cases.facets(db), "sorts": cases.SORTS,
        "statuses": ["active", *STATUSES], "outcomes": OUTCOMES, "page": page, "more": more, "link": link,
        "notice": notice, "reason_labels": views.REASON_LABELS, "typology_labels": views.TYPOLOGY_LABELS,
        "defect_types": DEFECT_TYPES, "fraud_types": FRAUD_TYPES, **HELPERS,
    })


@router.post("/queue/next")
def take_next(user: PageUser, db: Db, csrf_token: Annotated[str, Form()] = "",
              kind: Annotated[str, Form()] = "", team: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    taken = cases.next_case(db, user, kind or None, team or None)
    if taken is None:
        return RedirectResponse("/queue?" + urlencode({"notice": "No unassigned case is waiting."}), status_code=303)
    return RedirectResponse(f"/cases/{taken.id}", status_code=303)


def _case_page(request: Request, user, db, case_id: int, error: str | None = None, status: int = 200) -> Response:
    found = cases.visible_case(db, case_id, user)
    supervises = user.supervises(found.team)
    ctx = {"user": user, "case": found, "journal": cases.journal_for(db, case_id), "error": error,
           "sla": views.sla_text(found), "can_decide": found.assignee_id == user.user_id,
           "defect_types": DEFECT_TYPES, "fraud_types": FRAUD_TYPES, "supervises": supervises,
           "linked": links.linked_context(db, found, utcnow()),
           "members": [u.username for u in list_users(db) if u.active and (
               u.role == "admin" or found.team in u.team_roles())] if supervises else [], **HELPERS}
    if found.kind == "fraud":
        headline, every = views.human_features(found)
        ctx.update(timeline=views.timeline(found), features=headline, all_features=every)
        return templates.TemplateResponse(request, "case_fraud.html", ctx, status_code=status)
    image = db.get(CaseImage, (case_id, "image"))
    ctx.update(image=image, has_heatmap=db.get(CaseImage, (case_id, "heatmap")) is not None,
               boxes=views.box_percentages(found, image.width_px, image.height_px) if image else [])
    return templates.TemplateResponse(request, "case_inspection.html", ctx, status_code=status)


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: CaseId, user: PageUser, db: Db) -> Response:
    return _case_page(request, user, db, case_id)


def _act(request: Request, user, db, case_id: int, fn) -> Response:
    try:
        fn()
    except UserError as exc:
        db.rollback()
        if isinstance(exc, NotFoundError):
            raise
        return _case_page(request, user, db, case_id, str(exc), _status_of(exc))
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.post("/cases/{case_id}/take")
def take(request: Request, case_id: CaseId, user: PageUser, db: Db,
         csrf_token: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    return _act(request, user, db, case_id, lambda: cases.take_case(db, case_id, user))


@router.post("/cases/{case_id}/release")
def release(request: Request, case_id: CaseId, user: PageUser, db: Db,
            csrf_token: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    return _act(request, user, db, case_id, lambda: cases.release_case(db, case_id, user))


@router.post("/cases/{case_id}/decide")
def decide(request: Request, case_id: CaseId, user: PageUser, db: Db, csrf_token: Annotated[str, Form()] = "",
           action: Annotated[str, Form()] = "", comment: Annotated[str, Form()] = "",
           label_type: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    return _act(request, user, db, case_id, lambda: cases.decide(db, case_id, user, action, comment, label_type))


@router.get("/journal")
def journal(request: Request, user: PageUser, db: Db) -> Response:
    return templates.TemplateResponse(request, "journal.html", {"user": user, "entries": cases.recent_journal(db)})


@router.get("/dashboard")
def dashboard(request: Request, user: PageUser, db: Db) -> Response:
    """The SLA figures and workload of the teams the user supervises."""
    if not user.supervised:
        need_role(user, "supervisor")
    board = sla.dashboard(db, teams=user.supervised)
    return templates.TemplateResponse(request, "dashboard.html", {
        "user": user, "board": board, "chart": sla_chart.chart_svg(board), "buckets": sla.AGE_BUCKETS,
        **HELPERS})
