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

    def call(method, user: str = "alice", address: str = "1.2.3.4"):  # a session per call, as a request gets one
        with db.sessions() as s:
            return method(s, user, address)

    for limiter in (one, other, one):  # two processes' limiters on one database
        assert call(limiter.retry_after_s) == 0
        call(limiter.failed)
        now[0] += 10
    assert call(other.retry_after_s) == 30  # the first failure leaves the window at t=1060
    assert call(one.retry_after_s) == 30
    assert call(one.retry_after_s, "bob") == 0
    now[0] = 1060.0
    assert call(other.retry_after_s) == 0
    call(other.failed)  # also deletes the failures that left the window
    with db.sessions() as s:
        times = list(s.scalars(select(LoginFailure.at).order_by(LoginFailure.at)))
        assert times == [1010] * 3 + [1020] * 3 + [1060] * 3  # pair, address and user rows
        assert "alice" not in str(s.execute(text("SELECT key_sha256 FROM login_failures")).all())
    assert call(one.retry_after_s) == 10
    call(one.succeeded)
    assert call(other.retry_after_s) == 0


def test_password_spraying_from_one_address_is_slowed(db):
    """Issue 12 defect 11a: one password tried on many users from one address was never limited."""
    now = [1000.0]
    limiter = LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0], max_per_address=5, max_per_user=4)
    with db.sessions() as s:
        for i in range(5):  # five users, one failure each: no pair reaches its limit of 3
            assert limiter.retry_after_s(s, f"user{i}", "6.6.6.6") == 0
            limiter.failed(s, f"user{i}", "6.6.6.6")
            now[0] += 1
        assert limiter.retry_after_s(s, "user9", "6.6.6.6") == 55  # the first failure leaves at t=1060
        assert limiter.retry_after_s(s, "user9", "7.7.7.7") == 0  # another address is not held up
        limiter.succeeded(s, "user0", "6.6.6.6")  # an account of one's own does not reset the address
        assert limiter.retry_after_s(s, "user9", "6.6.6.6") > 0


def test_guessing_one_user_from_many_addresses_is_slowed(db):
    now = [1000.0]
    limiter = LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0], max_per_address=5, max_per_user=4)
    with db.sessions() as s:
        for i in range(4):  # four addresses, one failure each
            limiter.failed(s, "Alice", f"10.0.0.{i}")
        assert limiter.retry_after_s(s, "alice", "10.0.0.99") == 60
        assert limiter.retry_after_s(s, "bob", "10.0.0.99") == 0
        limiter.succeeded(s, "alice", "10.0.0.1")  # the user got in: their count starts again
        assert limiter.retry_after_s(s, "alice", "10.0.0.99") == 0


def test_safe_next_refuses_other_sites():
    assert safe_next("/cases/3") == "/cases/3"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil", None, ""):
        assert safe_next(bad) == "/queue"
