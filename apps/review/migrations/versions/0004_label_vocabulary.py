"""One label vocabulary: reason codes on every reason row; typologies and defect types mapped onto
FraudTypology / DefectKind (npusuite.platform.contracts.labels).

Before this, the review app offered fraud types (stolen_card, merchant_collusion, money_mule) and a
defect type (missing_part) that no model was trained on, so export-labels wrote classes training
never learned.  Mapping of existing cases (one-way; each change is written to the journal):

- fraud ``stolen_card`` -> ``cloned_card``: a physical card in a fraudster's hands, used in person at
  shops the account never visited, is the generator's cloned-card pattern;
- fraud ``merchant_collusion`` -> ``merchant_bust_out``: a complicit merchant keying charges;
- fraud ``money_mule`` -> ``other``: mules receive and pass on funds, which none of the five
  typologies describes;
- inspection ``missing_part`` -> ``missing``;
- any other value outside the vocabulary -> ``other`` (fraud cases and inspection cases alike).

Reason rows get the code their phrase was written for (npusuite.review.reason_phrases), or ``other``
when the phrase is not recognisable.

Downgrade drops the code column; typologies stay mapped (the old names are not recoverable: two
old fraud types may now share a typology with cases that always had it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from npusuite.platform.contracts.labels import DefectKind, FraudTypology
from npusuite.review.reason_phrases import code_of_phrase

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Old names with a closest member; anything else outside the vocabulary becomes "other".
FRAUD_RENAMES = {"stolen_card": "cloned_card", "merchant_collusion": "merchant_bust_out", "money_mule": "other"}
DEFECT_RENAMES = {"missing_part": "missing"}
ACTOR = "migration 0004"

_cases = sa.table("cases", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                  sa.column("typology", sa.String))
_reasons = sa.table("case_reasons", sa.column("case_id", sa.Integer), sa.column("position", sa.Integer),
                    sa.column("reason", sa.String), sa.column("code", sa.String))
_journal = sa.table("journal", sa.column("case_id", sa.Integer), sa.column("at", sa.DateTime),
                    sa.column("actor", sa.String), sa.column("field", sa.String), sa.column("old_value", sa.String),
                    sa.column("new_value", sa.String), sa.column("comment", sa.Text))


def _mapped(kind: str, value: str) -> str:
    vocabulary, renames = ((FraudTypology, FRAUD_RENAMES) if kind == "fraud" else (DefectKind, DEFECT_RENAMES))
    if value in {m.value for m in vocabulary}:
        return value
    return renames.get(value, "other")


def upgrade() -> None:
    conn = op.get_bind()
    # Added nullable, filled, then made NOT NULL: existing rows need a value before the constraint holds.
    with op.batch_alter_table("case_reasons") as batch:
        batch.add_column(sa.Column("code", sa.String(32), nullable=True))
    rows = conn.execute(sa.select(_reasons.c.case_id, _reasons.c.position, _reasons.c.reason)).all()
    for case_id, position, reason in rows:
        conn.execute(_reasons.update()
                     .where(_reasons.c.case_id == case_id, _reasons.c.position == position)
                     .values(code=code_of_phrase(reason).value))
    with op.batch_alter_table("case_reasons") as batch:
        batch.alter_column("code", existing_type=sa.String(32), nullable=False)
        batch.create_index("ix_case_reasons_code", ["code"])

    now = datetime.now(UTC).replace(tzinfo=None)
    for case_id, kind, typology in conn.execute(
            sa.select(_cases.c.id, _cases.c.kind, _cases.c.typology).where(_cases.c.typology.is_not(None))).all():
        new = _mapped(kind, typology)
        if new == typology:
            continue
        conn.execute(_cases.update().where(_cases.c.id == case_id).values(typology=new))
        conn.execute(_journal.insert().values(case_id=case_id, at=now, actor=ACTOR, field="typology",
                                              old_value=typology, new_value=new,
                                              comment="mapped onto the shared label vocabulary"))


def downgrade() -> None:
    with op.batch_alter_table("case_reasons") as batch:
        batch.drop_index("ix_case_reasons_code")
        batch.drop_column("code")
