"""Login and logout pages.

Rules: the login form carries a CSRF token bound to a double-submit cookie;
failed logins are counted per (user name, client address), per address and
per user name (see :mod:`npusuite.review.login_limiter`) and, past a limit,
answered 429 with ``Retry-After`` without checking the password; a
wrong user name and a wrong password get the same answer.  A successful login
sets an HttpOnly, SameSite=Lax session cookie (Secure when configured) and
never logs the password.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from npusuite.review import accounts, security
from npusuite.review.accounts import SessionInfo
from npusuite.review.login_limiter import LoginLimiter
from npusuite.review.web.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Db, optional_user, safe_next, templates

logger = logging.getLogger(__name__)
router = APIRouter()


def _login_page(request: Request, next_path: str, error: str | None = None, status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or security.new_secret()
    resp = templates.TemplateResponse(request, "login.html", {"csrf_token": token, "next": next_path,
                                                              "error": error, "user": None}, status_code=status)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                    secure=request.app.state.cfg.cookie_secure)
    return resp


@router.get("/login")
def login_form(request: Request, user: Annotated[SessionInfo | None, Depends(optional_user)],
               next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(request: Request, db: Db, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
          csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/queue") -> Response:
    next_path = safe_next(next)
    if not security.same(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(request, next_path, "Your login form expired; please try again.", 403)
    limiter: LoginLimiter = request.app.state.login_limiter
    address = request.client.host if request.client else "-"
    wait_s = limiter.retry_after_s(db, username, address)
    if wait_s > 0:
        logger.warning("login for %r refused: too many failures (from %s or for this user)", username, address)
        resp = _login_page(request, next_path, f"Too many failed logins. Try again in {wait_s:.0f} s.", 429)
        resp.headers["Retry-After"] = str(int(wait_s) + 1)
        return resp
    user = accounts.authenticate(db, username.strip(), password)
    if user is None:
        limiter.failed(db, username, address)
        logger.info("failed login for %r", username)
        return _login_page(request, next_path, "Wrong user name or password.", 401)
    limiter.succeeded(db, username, address)
    sid, _info = accounts.open_session(db, user, request.app.state.cfg.session_ttl_s)
    logger.info("%s logged in", user.username)
    resp = RedirectResponse(next_path, status_code=303)
    resp.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax", path="/",
                    max_age=int(request.app.state.cfg.session_ttl_s), secure=request.app.state.cfg.cookie_secure)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
def logout(request: Request, db: Db, user: Annotated[SessionInfo | None, Depends(optional_user)],
           csrf_token: Annotated[str, Form()] = "") -> Response:
    if user is not None:
        if not security.same(csrf_token, user.csrf_token):
            return templates.TemplateResponse(request, "error.html", {"user": user, "status": 403,
                                              "message": "missing or wrong CSRF token"}, status_code=403)
        accounts.close_session(db, request.cookies.get(SESSION_COOKIE))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
