"""Users, web sessions and service tokens: the database side of auth.

Rules:

- Usernames are 1-64 characters of letters, digits, ``._-``; passwords at
  least 8 characters.  Roles are analyst < supervisor < admin (each role can do
  what the ones before it can).  Users belong to teams (``fraud``, ``qc`` or
  both) with a role per team (:mod:`npusuite.review.teams`); without teams
  given, a new user joins both with the team role of their role.
- :func:`authenticate` takes the same time whether or not the user exists (a
  dummy hash is verified), so a login answer does not reveal user names.
- A web session is a random id in an HttpOnly cookie; the database keeps its
  SHA-256 digest, its CSRF token and its expiry.  Expired sessions resolve to
  None and are deleted.
- Service tokens are printed once when created and kept only as digests.
  :func:`check_service_token` also accepts the environment's token, if set.

Raises :class:`~npusuite.platform.errors.UserError` for bad names, roles and
passwords, and for duplicates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from npusuite.platform.errors import NotFoundError, UserError
from npusuite.review import security
from npusuite.review import teams as team_rules
from npusuite.review.models import ROLES, ServiceToken, User, UserTeam, WebSession, utcnow

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DUMMY_HASH = security.hash_password("not-a-real-password-0")


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise UserError(f"bad {what} {name!r}: use 1-64 letters, digits, '.', '_' or '-'")


def _memberships(role: str, teams: Iterable[str | tuple[str, str]] | None) -> dict[str, str]:
    """{team: team role} from ``fraud``, ``fraud:supervisor`` or (team, role) items; None: both teams."""
    if teams is None:
        return {t: team_rules.team_role_for(role) for t in team_rules.TEAMS}
    out: dict[str, str] = {}
    for item in teams:
        try:
            team, team_role = (team_rules.parse_team(item, role) if isinstance(item, str)
                               else team_rules.parse_team(f"{item[0]}:{item[1]}", role))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        out[team] = team_role
    if not out and role != "admin":
        raise UserError("a user needs at least one team: --team fraud and/or --team qc")
    return out


def create_user(db: Session, username: str, password: str, role: str, *, update: bool = False,
                teams: Iterable[str | tuple[str, str]] | None = None) -> User:
    """Create USERNAME, or with update=True set the password and role of an existing one.

    TEAMS: ``fraud``, ``qc``, ``fraud:supervisor``... (None: a new user joins both teams, an updated one
    keeps theirs)."""
    _check_name(username, "user name")
    if role not in ROLES:
        raise UserError(f"bad role {role!r}: choose one of {', '.join(ROLES)}")
    wanted = _memberships(role, teams) if teams is not None else None
    if len(password) < security.MIN_PASSWORD_CHARS:
        raise UserError(f"password too short: at least {security.MIN_PASSWORD_CHARS} characters")
    user = db.scalar(select(User).where(User.username == username))
    if user is not None and not update:
        raise UserError(f"user {username!r} already exists (pass --update to change the password or role)")
    if user is None:
        user = User(username=username, role=role, password_hash=security.hash_password(password), active=True)
        user.memberships = [UserTeam(team=t, role=r) for t, r in (wanted or _memberships(role, None)).items()]
        db.add(user)
    else:
        user.role = role
        if wanted is not None:
            user.memberships = [UserTeam(team=t, role=r) for t, r in wanted.items()]
        user.password_hash = security.hash_password(password)
        db.execute(delete(WebSession).where(WebSession.user_id == user.id))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise UserError(f"user {username!r} already exists") from None
    logger.info("user %s saved with role %s", username, role)
    return user


def authenticate(db: Session, username: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        security.verify_password(_DUMMY_HASH, password)
        return None
    return user if security.verify_password(user.password_hash, password) else None


@dataclass(frozen=True)
class SessionInfo:
    user_id: int
    username: str
    role: str
    csrf_token: str
    #: {team: team role}; see npusuite.review.teams (an admin acts as supervisor in every team).
    teams: Mapping[str, str] = field(default_factory=dict)

    def role_in(self, team: str) -> str | None:
        return team_rules.role_in(self.teams, self.role, team)

    def supervises(self, team: str) -> bool:
        return team_rules.supervises(self.teams, self.role, team)

    @property
    def team_list(self) -> list[str]:
        return team_rules.teams_of(self.teams, self.role)

    @property
    def supervised(self) -> list[str]:
        return [t for t in self.team_list if self.supervises(t)]

    @classmethod
    def of(cls, user: User, csrf_token: str) -> SessionInfo:
        return cls(user.id, user.username, user.role, csrf_token, user.team_roles())


def open_session(db: Session, user: User, ttl_s: float) -> tuple[str, SessionInfo]:
    """Returns (cookie value, session).  Only the digest of the cookie value is stored."""
    sid = security.new_secret()
    row = WebSession(id_sha256=security.digest(sid), user_id=user.id, csrf_token=security.new_secret(),
                     created_at=utcnow(), expires_at=utcnow() + timedelta(seconds=ttl_s))
    db.add(row)
    db.commit()
    return sid, SessionInfo.of(user, row.csrf_token)


def resolve_session(db: Session, sid: str | None) -> SessionInfo | None:
    if not sid:
        return None
    row = db.get(WebSession, security.digest(sid))
    if row is None:
        return None
    if row.expires_at <= utcnow() or not row.user.active:
        db.delete(row)
        db.commit()
        return None
    return SessionInfo.of(row.user, row.csrf_token)


def close_session(db: Session, sid: str | None) -> None:
    if sid:
        db.execute(delete(WebSession).where(WebSession.id_sha256 == security.digest(sid)))
        db.commit()


def add_service_token(db: Session, name: str) -> str:
    """Create a token called NAME and return it; it is never shown again."""
    _check_name(name, "token name")
    token = security.new_secret()
    db.add(ServiceToken(name=name, token_sha256=security.digest(token), created_at=utcnow(), revoked=False))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise UserError(f"a service token named {name!r} already exists") from None
    logger.info("service token %s created", name)
    return token


def check_service_token(db: Session, token: str | None, env_token: str | None) -> str | None:
    """The caller's name (``token:NAME`` or ``token:env``) for a valid token, else None."""
    if not token:
        return None
    if security.same(token, env_token):
        return "token:env"
    row = db.scalar(select(ServiceToken).where(ServiceToken.token_sha256 == security.digest(token)))
    if row is None or row.revoked:
        return None
    return f"token:{row.name}"


def revoke_service_token(db: Session, name: str) -> None:
    """Raises NotFoundError when no token is called NAME."""
    row = db.scalar(select(ServiceToken).where(ServiceToken.name == name))
    if row is None:
        raise NotFoundError(f"no service token named {name!r}")
    row.revoked = True
    db.commit()
    logger.info("service token %s revoked", name)


def set_user_active(db: Session, username: str, active: bool) -> None:
    """Deactivating also ends the user's sessions.  Raises NotFoundError for an unknown user."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    user.active = active
    if not active:
        db.execute(delete(WebSession).where(WebSession.user_id == user.id))
    db.commit()
    logger.info("user %s %s", username, "activated" if active else "deactivated")


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.username)))


def list_tokens(db: Session) -> list[ServiceToken]:
    return list(db.scalars(select(ServiceToken).order_by(ServiceToken.name)))
