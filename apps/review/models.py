"""The review app's tables (SQLAlchemy 2 ORM).  The schema itself is created by
the alembic migrations in ``migrations/``; ``tests/review/test_migrations.py``
proves that these classes and the migrations agree.

Rules the tables carry:

- A case is unique by ``(kind, external_id)``: the transaction_id of a fraud
  alert or the id of an inspection.  That constraint is what makes ingest
  idempotent even when two deliveries race.
- ``journal`` is append-only: the migration installs triggers that refuse
  UPDATE and DELETE on it, on SQLite and on PostgreSQL.
- Passwords are stored only as argon2 hashes; session ids and service tokens
  only as SHA-256 digests (they are 256-bit random values, so a fast hash is
  enough and a stolen database holds nothing usable).
- All timestamps are naive UTC (``utcnow()``), the same on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("analyst", "supervisor", "admin")
KINDS = ("fraud", "inspection")
#: open: waiting in the queue; in_review: held by its assignee; escalated: waiting for a supervisor; closed: decided.
STATUSES = ("open", "in_review", "escalated", "closed")
OUTCOMES = ("confirmed_fraud", "legitimate", "confirmed_defect", "false_reject")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    memberships: Mapped[list[UserTeam]] = relationship(lazy="selectin", cascade="all, delete-orphan",
                                                       order_by="UserTeam.team")

    def team_roles(self) -> dict[str, str]:
        return {m.team: m.role for m in self.memberships}


class UserTeam(Base):
    """A user's membership of a team (``fraud``/``qc``) with the role there (``analyst``/``supervisor``)."""

    __tablename__ = "user_teams"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    team: Mapped[str] = mapped_column(String(16), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))


class WebSession(Base):
    __tablename__ = "web_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship(lazy="joined")


class LoginFailure(Base):
    """One failed login, for the limiter every process on this database shares (see login_limiter)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 of a key naming what was counted: "pair|user|address", "addr|address" or "user|user"
    #: (a user name typed in the wrong field may be a password).
    key_sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: Wall-clock epoch seconds: the processes sharing the table share no monotonic clock.
    at: Mapped[float] = mapped_column(Float, index=True)


class ServiceToken(Base):
    __tablename__ = "service_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("kind", "external_id", name="uq_cases_kind_external_id"),
        Index("ix_cases_queue", "status", "assignee_id", "priority"),
        Index("ix_cases_team_queue", "team", "status", "assignee_id", "priority"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: The team whose queue it is in (npusuite.review.teams.TEAM_OF_KIND).
    team: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: Higher is more urgent; "next case" takes the highest first (then the oldest).
    priority: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    #: The model's decision: approve/review/decline for fraud, ng for inspection.
    model_decision: Mapped[str] = mapped_column(String(16))
    #: The band on the model's own thresholds (npusuite.review.risk): approve/review/decline, pass/reject/severe.
    risk_band: Mapped[str] = mapped_column(String(16))
    #: score ÷ the threshold that triggers action; null when the alert carried no thresholds.
    risk_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: SLA tier (high/normal) the due time was set from.
    sla_tier: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(128), index=True)
    #: Fraud typology (from the alert or set by the analyst) or defect type (set by QC): a value of
    #: FraudTypology / DefectKind (npusuite.platform.contracts.labels), or null.
    typology: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(DateTime)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: The evidence as ingested: the whole fraud alert, or the inspection record without its images.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Who delivered it: ``kafka:fraud-alerts``, ``token:NAME`` or ``token:env``.
    source: Mapped[str] = mapped_column(String(80))

    assignee: Mapped[User | None] = relationship(lazy="joined")
    reasons: Mapped[list[CaseReason]] = relationship(lazy="selectin", cascade="all, delete-orphan",
                                                     order_by="CaseReason.position")


class CaseReason(Base):
    """One reason of a case, a row each so the queue can filter on it: the stable code (a
    :class:`~npusuite.platform.contracts.labels.ReasonCode` value, what the filter matches) and the
    phrase the model wrote (what the analyst reads)."""

    __tablename__ = "case_reasons"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(256), index=True)
    code: Mapped[str] = mapped_column(String(32), index=True)


class CaseLink(Base):
    """An entity a case shares with others (account, card, device, ip_net, merchant; line, product,
    model), a row each so linked cases are an indexed lookup (npusuite.review.links)."""

    __tablename__ = "case_links"
    __table_args__ = (Index("ix_case_links_entity_value", "entity", "value"),)

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class CaseImage(Base):
    """PNG bytes of an inspection case: ``image`` and optionally ``heatmap``."""

    __tablename__ = "case_images"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)


class JournalEntry(Base):
    """One change: who, when, which field, old value -> new value, and the comment given."""

    __tablename__ = "journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    new_value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
