"""The admin page: users and service tokens.  Admin role only; every change is a CSRF-checked form.

Users are created with ``npusuite review add-user`` (the password never passes through a web
form); here an admin can deactivate or reactivate a user (ending their sessions) and revoke a
service token.  An admin cannot deactivate themselves.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from npusuite.review import accounts
from npusuite.review.web.deps import Db, NameInPath, PageUser, check_form_csrf, need_role, templates

logger = logging.getLogger(__name__)
router = APIRouter()


@router.get("/admin")
def admin_page(request: Request, user: PageUser, db: Db) -> Response:
    need_role(user, "admin")
    return templates.TemplateResponse(request, "admin.html", {
        "user": user, "users": accounts.list_users(db), "tokens": accounts.list_tokens(db)})


@router.post("/admin/users/{username}/active")
def set_active(username: NameInPath, user: PageUser, db: Db, csrf_token: Annotated[str, Form()] = "",
               active: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    need_role(user, "admin")
    if username == user.username:
        raise HTTPException(400, "you cannot deactivate yourself")
    accounts.set_user_active(db, username, active == "1")
    logger.info("%s set user %s active=%s", user.username, username, active == "1")
    return RedirectResponse("/admin", status_code=303)


@router.post("/admin/tokens/{name}/revoke")
def revoke(name: NameInPath, user: PageUser, db: Db, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_form_csrf(user, csrf_token)
    need_role(user, "admin")
    accounts.revoke_service_token(db, name)
    logger.info("%s revoked service token %s", user.username, name)
    return RedirectResponse("/admin", status_code=303)
