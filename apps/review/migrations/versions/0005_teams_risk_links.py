"""Teams, risk on the model's scale, linked entities.

- ``user_teams`` (user, team, role): every existing user joins both teams
  (``fraud`` and ``qc``) with the team role of their role (analyst ->
  analyst; supervisor and admin -> supervisor), so nobody loses a queue.
- ``cases.team``: ``fraud`` for fraud cases, ``qc`` for inspection cases.
- ``cases.risk_band`` / ``risk_ratio`` / ``sla_tier`` and ``priority``:
  recomputed from each case's stored payload by ``npusuite.review.risk``
  (alerts stored before the scorer sent thresholds get the band of their
  decision and no ratio).  Due times are left as they were.
- ``case_links``: each case's account, card, device, IP network and
  merchant (fraud) or line, product and model (inspection), from its payload.

Downgrade drops the new table and columns (priorities stay recomputed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from npusuite.review.links import entities_of
from npusuite.review.risk import case_risk
from npusuite.review.teams import TEAM_OF_KIND, team_role_for

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_cases = sa.table("cases", sa.column("id", sa.Integer), sa.column("kind", sa.String), sa.column("team", sa.String),
                  sa.column("score", sa.Float), sa.column("model_decision", sa.String), sa.column("model", sa.String),
                  sa.column("payload", sa.JSON), sa.column("priority", sa.Float),
                  sa.column("risk_band", sa.String), sa.column("risk_ratio", sa.Float),
                  sa.column("sla_tier", sa.String))
_users = sa.table("users", sa.column("id", sa.Integer), sa.column("role", sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    user_teams = op.create_table(
        "user_teams",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("team", sa.String(16), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    links = op.create_table(
        "case_links",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )
    op.create_index("ix_case_links_entity_value", "case_links", ["entity", "value"])
    for user_id, role in conn.execute(sa.select(_users.c.id, _users.c.role)).all():
        for team in ("fraud", "qc"):
            conn.execute(user_teams.insert().values(user_id=user_id, team=team, role=team_role_for(role)))
    # Added NOT NULL with a placeholder default, then filled: SQLite can add such a column in place, whereas
    # changing nullability would rebuild the table, which the journal's foreign keys and triggers forbid.
    op.add_column("cases", sa.Column("team", sa.String(16), nullable=False, server_default="fraud"))
    op.add_column("cases", sa.Column("risk_band", sa.String(16), nullable=False, server_default="review"))
    op.add_column("cases", sa.Column("risk_ratio", sa.Float, nullable=True))
    op.add_column("cases", sa.Column("sla_tier", sa.String(16), nullable=False, server_default="normal"))
    rows = conn.execute(sa.select(_cases.c.id, _cases.c.kind, _cases.c.score, _cases.c.model_decision,
                                  _cases.c.model, _cases.c.payload)).all()
    for case_id, kind, score, decision, model, payload in rows:
        payload = payload or {}
        risk = case_risk(kind, score, decision, payload)
        conn.execute(_cases.update().where(_cases.c.id == case_id).values(
            team=TEAM_OF_KIND.get(kind, kind), risk_band=risk.band, risk_ratio=risk.ratio, sla_tier=risk.tier,
            priority=risk.priority))
        for entity, value in entities_of(kind, payload, model).items():
            conn.execute(links.insert().values(case_id=case_id, entity=entity, value=value))
    op.create_index("ix_cases_team_queue", "cases", ["team", "status", "assignee_id", "priority"])


def downgrade() -> None:
    op.drop_index("ix_cases_team_queue", "cases")
    for name in ("team", "risk_band", "risk_ratio", "sla_tier"):
        op.drop_column("cases", name)  # in place (SQLite >= 3.35): a rebuild would trip the journal's keys
    op.drop_index("ix_case_links_entity_value", "case_links")
    op.drop_table("case_links")
    op.drop_table("user_teams")
