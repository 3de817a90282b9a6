"""The alembic migrations and the ORM classes describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from npusuite.review.db import migrate
from npusuite.review.models import Base


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrate_is_repeatable(db):
    migrate(db.engine)
    migrate(db.engine)
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0005"


def _to(engine, revision: str, direction: str = "upgrade") -> None:
    from alembic import command

    from npusuite.review.db import alembic_config

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def test_0004_maps_old_labels_and_reasons_onto_the_vocabulary(db):
    """Cases stored with the old fraud/defect types and reason phrases, on SQLite and PostgreSQL."""
    from sqlalchemy import text

    _to(db.engine, "0003", "downgrade")
    old = {"stolen_card": "cloned_card", "merchant_collusion": "merchant_bust_out", "money_mule": "other",
           "card_testing": "card_testing", "made_up": "other", None: None}
    old_defects = {"missing_part": "missing", "crack": "crack", "smudge": "other"}
    reasons = {"amount 14x account median (912.00 EUR)": "amount_spike", "new device and new IP network": "new_device",
               "llm_unavailable": "llm_unavailable", "LLM verdict: fraud (83%)": "llm_verdict_fraud",
               "2,431 km from previous card-present payment at 1,215 km/h (impossible travel)": "impossible_travel",
               "velocity": "other"}
    rows = [("fraud", k) for k in old] + [("inspection", k) for k in old_defects]
    with db.engine.begin() as conn:
        for i, (kind, typology) in enumerate(rows, start=1):
            conn.execute(text(
                "INSERT INTO cases (id, kind, external_id, status, priority, score, model_decision, model, typology, "
                "title, created_at, due_at, payload, source) VALUES (:id, :kind, :ext, 'closed', 1, 0.9, 'review', "
                "'m@1', :typ, 't', '2026-03-02 12:00:00', '2026-03-02 13:00:00', '{}', 'test')"),
                {"id": i, "kind": kind, "ext": f"x{i}", "typ": typology})
        for position, phrase in enumerate(reasons):
            conn.execute(text("INSERT INTO case_reasons (case_id, position, reason) VALUES (1, :p, :r)"),
                         {"p": position, "r": phrase})
    _to(db.engine, "head")
    with db.engine.connect() as conn:
        got = dict(conn.execute(text("SELECT id, typology FROM cases ORDER BY id")).all())
        codes = dict(conn.execute(text("SELECT reason, code FROM case_reasons WHERE case_id = 1")).all())
        journal = conn.execute(text("SELECT case_id, old_value, new_value, actor FROM journal WHERE field = 'typology' "
                                    "ORDER BY case_id")).all()
    expected = [*old.values(), *old_defects.values()]
    assert [got[i] for i in range(1, len(rows) + 1)] == expected
    assert codes == reasons
    changed = [(i, typ, new) for i, ((_, typ), new) in enumerate(zip(rows, expected, strict=True), start=1)
               if typ != new]
    assert [(c, o, n) for c, o, n, _ in journal] == changed
    assert {actor for *_, actor in journal} == {"migration 0004"}
    # Down and up again: the code column goes and comes back, filled the same way.
    _to(db.engine, "0003", "downgrade")
    _to(db.engine, "head")
    with db.engine.connect() as conn:
        assert dict(conn.execute(text("SELECT reason, code FROM case_reasons WHERE case_id = 1")).all()) == reasons
        assert MigrationContext.configure(conn).get_current_revision() == "0005"
