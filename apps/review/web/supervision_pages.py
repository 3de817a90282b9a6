"""The supervisors' forms: reassign a case, and decide the selected cases of the queue at once.

Both check the session's CSRF token first; the rules (supervisor of the case's
team, which cases a bulk decision may close, one journal entry per closed
case) are :mod:`npusuite.review.supervision`'s.  An analyst is refused with
403.  Case ids from the form must be whole numbers 1..2^31-1 (400 otherwise).
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from npusuite.platform.errors import UserError
from npusuite.review import supervision
from npusuite.review.web.deps import MAX_ID, CaseId, Db, PageUser, check_form_csrf
from npusuite.review.web.pages import _act

logger = logging.getLogger(__name__)
router = APIRouter()


def parse_ids(values: list[str]) -> list[int]:
    """Form values as case ids; raises UserError naming the first bad one."""
    ids = []
    for v in values:
        if not v.isdigit() or not 1 <= int(v) <= MAX_ID:
            raise UserError(f"bad case id {v[:20]!r}: a whole number 1..{MAX_ID}")
        ids.append(int(v))
    return ids


def bulk_notice(result: supervision.BulkResult) -> str:
    text = f"Closed {len(result.closed)} case(s)."
    if result.skipped:
        shown = ", ".join(f"#{i} ({why})" for i, why in result.skipped[:10])
        text += f" Left {len(result.skipped)} alone: {shown}{' …' if len(result.skipped) > 10 else ''}."
    return text


@router.post("/queue/bulk")
def bulk(user: PageUser, db: Db, csrf_token: Annotated[str, Form()] = "",
         case_id: Annotated[list[str] | None, Form()] = None, action: Annotated[str, Form()] = "",
         comment: Annotated[str, Form()] = "", label_type: Annotated[str, Form()] = "",
         back: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    if len(case_id or []) > supervision.MAX_BULK:
        raise UserError(f"at most {supervision.MAX_BULK} cases at once")
    result = supervision.bulk_decide(db, user, parse_ids(case_id or []), action, comment, label_type)
    target = back if back.startswith("/queue") and "//" not in back else "/queue"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(target + sep + urlencode({"notice": bulk_notice(result)}), status_code=303)


@router.post("/cases/{case_id}/assign")
def assign(request: Request, case_id: CaseId, user: PageUser, db: Db, csrf_token: Annotated[str, Form()] = "",
           username: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    return _act(request, user, db, case_id, lambda: supervision.reassign(db, case_id, user, username[:64]))
