"""Bearer-token check for management endpoints.

Rules: the token comes from the server's constructor (``--admin-token`` or
``NPUSUITE_ADMIN_TOKEN`` via settings); it is compared in constant time and
never logged.  With no token configured, management endpoints are refused
(403) rather than left open.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request


def require_admin(request: Request) -> None:
    token = request.app.state.admin_token
    if not token:
        raise HTTPException(403, "management endpoints are disabled: start the server with --admin-token "
                                 "or NPUSUITE_ADMIN_TOKEN")
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), token.encode()):
        raise HTTPException(401, "management endpoints need 'Authorization: Bearer <admin token>'",
                            headers={"WWW-Authenticate": "Bearer"})
