"""Password hashing, secrets, the login limiter (on SQLite and PostgreSQL), redirects."""

from __future__ import annotations

from sqlalchemy import select, text

from npusuite.review import security
from npusuite.review.login_limiter import LoginLimiter
from npusuite.review.models import LoginFailure
from npusuite.review.web.deps import safe_next


def test_password_hash_round_trip():
    h = security.hash_password("correct horse")
    assert h.startswith("$argon2id$") and "correct horse" not in h
    assert security.verify_password(h, "correct horse")
    assert not security.verify_password(h, "wrong horse")
    assert not security.verify_password("not-a-hash", "correct horse")


def test_same_is_false_for_missing_values():
    assert security.same("abc", "abc")
    assert not security.same("abc", "abd")
    assert not security.same("", "")
    assert not security.same(None, "abc")


def test_login_limiter_sliding_window_is_shared_through_the_database(db):
    now = [1000.0]
    one, other = (LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0]) for _ in range(2))

    def call(method, key: str = "alice|1.2.3.4"):  # a session per call, as a request gets one
        with db.sessions() as s:
            return method(s, key)

    for limiter in (one, other, one):  # two processes' limiters on one database
        assert call(limiter.retry_after_s) == 0
        call(limiter.failed)
        now[0] += 10
    assert call(other.retry_after_s) == 30  # the first failure leaves the window at t=1060
    assert call(one.retry_after_s) == 30
    assert call(one.retry_after_s, "bob|1.2.3.4") == 0
    now[0] = 1060.0
    assert call(other.retry_after_s) == 0
    call(other.failed)  # also deletes the failure that left the window
    with db.sessions() as s:
        assert list(s.scalars(select(LoginFailure.at).order_by(LoginFailure.at))) == [1010, 1020, 1060]
        assert "alice" not in str(s.execute(text("SELECT key_sha256 FROM login_failures")).all())
    assert call(one.retry_after_s) == 10
    call(one.succeeded)
    assert call(other.retry_after_s) == 0


def test_safe_next_refuses_other_sites():
    assert safe_next("/cases/3") == "/cases/3"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil", None, ""):
        assert safe_next(bad) == "/queue"
