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


def test_0005_puts_users_in_both_teams_and_maps_cases_onto_teams_risk_and_links(db):
    """Users and cases stored before teams, on SQLite and PostgreSQL."""
    import json

    from sqlalchemy import text

    _to(db.engine, "0004", "downgrade")
    alert = {"score": 0.166, "decision": "decline", "thresholds": {"review": 0.04, "decline": 0.08},
             "transaction": {"account_id": "a-1", "card_id": "c-1", "device_id": None, "ip": "192.168.4.7",
                             "merchant_id": "m-9"}}
    old_alert = {"score": 0.9, "decision": "review", "transaction": {"account_id": "a-1", "card_id": "c-2",
                                                                     "merchant_id": "m-9"}}
    record = {"line": "line-1", "product": None, "threshold": 0.5, "score": 0.8}
    rows = [("fraud", 0.166, "decline", alert), ("fraud", 0.9, "review", old_alert),
            ("inspection", 0.8, "ng", record)]
    with db.engine.begin() as conn:
        for name, role in (("ann", "analyst"), ("sam", "supervisor"), ("root", "admin")):
            conn.execute(text("INSERT INTO users (username, password_hash, role, active, created_at) "
                              "VALUES (:n, 'x', :r, true, '2026-03-02 12:00:00')"), {"n": name, "r": role})
        for i, (kind, score, decision, payload) in enumerate(rows, start=1):
            conn.execute(text(
                "INSERT INTO cases (id, kind, external_id, status, priority, score, model_decision, model, title, "
                "created_at, due_at, payload, source) VALUES (:id, :kind, :ext, 'open', 1, :score, :dec, 'm@1', 't', "
                "'2026-03-02 12:00:00', '2026-03-02 13:00:00', :payload, 'test')"),
                {"id": i, "kind": kind, "ext": f"x{i}", "score": score, "dec": decision,
                 "payload": json.dumps(payload)})
    _to(db.engine, "head")
    with db.engine.connect() as conn:
        teams = conn.execute(text("SELECT u.username, t.team, t.role FROM user_teams t "
                                  "JOIN users u ON u.id = t.user_id ORDER BY u.username, t.team")).all()
        cases = conn.execute(text("SELECT id, team, risk_band, risk_ratio, sla_tier, due_at FROM cases "
                                  "ORDER BY id")).all()
        links = conn.execute(text("SELECT case_id, entity, value FROM case_links ORDER BY case_id, entity")).all()
    assert [tuple(t) for t in teams] == [("ann", "fraud", "analyst"), ("ann", "qc", "analyst"),
                                         ("root", "fraud", "supervisor"), ("root", "qc", "supervisor"),
                                         ("sam", "fraud", "supervisor"), ("sam", "qc", "supervisor")]
    assert [(c.team, c.risk_band, c.sla_tier) for c in cases] == [("fraud", "decline", "high"),
                                                                  ("fraud", "review", "normal"),
                                                                  ("qc", "severe", "high")]
    assert abs(cases[0].risk_ratio - 0.166 / 0.08) < 1e-9 and cases[1].risk_ratio is None
    assert str(cases[0].due_at).startswith("2026-03-02 13:00")  # due times are left as they were
    assert [tuple(x) for x in links] == [(1, "account", "a-1"), (1, "card", "c-1"), (1, "ip_net", "192.168"),
                                         (1, "merchant", "m-9"), (2, "account", "a-1"), (2, "card", "c-2"),
                                         (2, "merchant", "m-9"), (3, "line", "line-1"), (3, "model", "m@1")]
    # Down and up again.
    _to(db.engine, "0004", "downgrade")
    _to(db.engine, "head")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM case_links")).scalar() == len(links)
        assert MigrationContext.configure(conn).get_current_revision() == "0005"
