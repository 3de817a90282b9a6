"""Two people can never hold the same case: concurrent "next case" calls on SQLite and PostgreSQL.

Each taker is a thread with its own database session (its own connection),
released together by a barrier, and each loops "next case" until the queue is
empty.  Every case must be handed out exactly once, and its journal must name
exactly one taker.
"""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import select

from npusuite.review import cases
from npusuite.review.accounts import create_user
from npusuite.review.ingest import ingest_fraud_alert, parse_fraud_alert
from npusuite.review.models import Case, JournalEntry

N_CASES = 40
N_TAKERS = 6


def test_concurrent_next_case_never_hands_out_a_case_twice(db, mk):
    with db.sessions() as s:
        takers = [mk.as_session(create_user(s, f"user{i}", "password-x", "analyst")) for i in range(N_TAKERS)]
        for i in range(N_CASES):
            # Equal scores in pairs, so concurrent takers race for the very same top row.
            ingest_fraud_alert(s, parse_fraud_alert(mk.alert(f"tx-{i}", score=0.5 + (i // 2) / 100)), "t", db.cfg)
    barrier = threading.Barrier(N_TAKERS)
    got: dict[str, list[int]] = {t.username: [] for t in takers}
    errors: list[BaseException] = []

    def work(me) -> None:
        try:
            with db.sessions() as s:
                barrier.wait(timeout=60)
                while (taken := cases.next_case(s, me)) is not None:
                    got[me.username].append(taken.id)
        except BaseException as exc:  # surfaced below, with the thread's name
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,), name=t.username) for t in takers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    handed_out = Counter(cid for ids in got.values() for cid in ids)
    assert len(handed_out) == N_CASES
    assert max(handed_out.values()) == 1, [cid for cid, n in handed_out.items() if n > 1]
    with db.sessions() as s:
        holders = {c.id: c.assignee.username for c in s.scalars(select(Case)).unique()}
        takes = Counter(e.case_id for e in s.scalars(select(JournalEntry).where(JournalEntry.field == "assignee")))
    for user, ids in got.items():
        assert all(holders[cid] == user for cid in ids)
    assert set(takes.values()) == {1}


def test_two_concurrent_next_case_calls_on_one_case(db, mk):
    """The smallest race, repeated: one case, two takers at once; exactly one wins each round."""
    with db.sessions() as s:
        a = mk.as_session(create_user(s, "ann", "password-x", "analyst"))
        b = mk.as_session(create_user(s, "ben", "password-x", "analyst"))
    for round_no in range(8):
        with db.sessions() as s:
            ingest_fraud_alert(s, parse_fraud_alert(mk.alert(f"solo-{round_no}")), "t", db.cfg)
        barrier = threading.Barrier(2)
        results: dict[str, int | None] = {}

        def take(me, results=results, barrier=barrier) -> None:
            with db.sessions() as s:
                barrier.wait(timeout=60)
                taken = cases.next_case(s, me)
                results[me.username] = taken.id if taken else None

        threads = [threading.Thread(target=take, args=(me,)) for me in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        winners = [cid for cid in results.values() if cid is not None]
        assert len(results) == 2 and len(winners) == 1, results
