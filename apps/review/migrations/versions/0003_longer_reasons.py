"""Reasons up to 256 characters: the fraud scorer's reasons are phrases, some longer than 64.

Before this, an alert with such a reason was dead-lettered by the alert consumer and never became a
case.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a column in place (alembic copies the table); PostgreSQL alters it.
    with op.batch_alter_table("case_reasons") as batch:
        batch.alter_column("reason", type_=sa.String(256), existing_type=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("case_reasons") as batch:
        batch.alter_column("reason", type_=sa.String(64), existing_type=sa.String(256), existing_nullable=False)
