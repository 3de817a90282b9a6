"""Request dependencies: the database session, who is calling, and CSRF.

Rules:

- Pages without a valid session raise :class:`LoginRequired`, which the app
  turns into a 303 redirect to ``/login?next=...``; APIs and images answer
  401 JSON ``{"error": "login required"}``.
- Every state-changing request made with a session carries the session's CSRF
  token: as the ``csrf_token`` form field (pages) or the ``X-CSRF-Token``
  header (JSON APIs).  A missing or wrong token is refused with 403 before
  anything happens.  The login form, made before there is a session, uses a
  double-submit cookie instead.
- Ingest calls use ``Authorization: Bearer <service token>`` and no cookies.
- Ids and paging are checked by range here, at the boundary (422 otherwise):
  a case id is 1..2^31-1 (PostgreSQL's integer), an offset at most
  :data:`MAX_OFFSET`, a page at most :data:`MAX_PAGE`; names in paths at most
  64 characters (the column's size).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from npusuite.review import accounts, security
from npusuite.review.accounts import SessionInfo

SESSION_COOKIE = "npr_session"
#: The largest id an INTEGER column holds on PostgreSQL (SQLite holds more; both refuse 2^63).
MAX_ID = 2**31 - 1
MAX_OFFSET = 10**9
MAX_PAGE = 10**6

CaseId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]
NameInPath = Annotated[str, PathParam(min_length=1, max_length=64)]
LOGIN_CSRF_COOKIE = "npr_login_csrf"

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as db:
        yield db


Db = Annotated[Session, Depends(get_db)]


def optional_user(request: Request, db: Db) -> SessionInfo | None:
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    user = accounts.resolve_session(db, request.cookies.get(SESSION_COOKIE))
    request.state.user = user
    return user


def page_user(request: Request, user: Annotated[SessionInfo | None, Depends(optional_user)]) -> SessionInfo:
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return user


def api_user(user: Annotated[SessionInfo | None, Depends(optional_user)]) -> SessionInfo:
    if user is None:
        raise HTTPException(401, "login required")
    return user


PageUser = Annotated[SessionInfo, Depends(page_user)]
ApiUser = Annotated[SessionInfo, Depends(api_user)]


def check_form_csrf(user: SessionInfo, token: str | None) -> None:
    """Raises HTTPException 403 unless TOKEN is this session's CSRF token."""
    if not security.same(token, user.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")


def api_csrf(request: Request, user: ApiUser) -> SessionInfo:
    check_form_csrf(user, request.headers.get("x-csrf-token"))
    return user


ApiWriter = Annotated[SessionInfo, Depends(api_csrf)]


def need_role(user: SessionInfo, role: str) -> None:
    if not accounts.role_at_least(user.role, role):
        raise HTTPException(403, f"this needs the {role} role")


def safe_next(path: str | None) -> str:
    """Only same-site relative paths; anything else goes to the queue."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/queue"
    return path
