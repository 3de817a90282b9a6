"""Pure checks: password hashing, secrets, the login rate limiter, redirects."""

from __future__ import annotations

from npusuite.review import security
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


def test_rate_limiter_sliding_window():
    now = [1000.0]
    limiter = security.LoginRateLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after_s("alice|1.2.3.4") == 0
        limiter.failed("alice|1.2.3.4")
        now[0] += 10
    assert limiter.retry_after_s("alice|1.2.3.4") == 30  # the first failure leaves the window at t=1060
    assert limiter.retry_after_s("bob|1.2.3.4") == 0
    now[0] = 1060.0
    assert limiter.retry_after_s("alice|1.2.3.4") == 0
    limiter.failed("alice|1.2.3.4")
    limiter.succeeded("alice|1.2.3.4")
    assert limiter.retry_after_s("alice|1.2.3.4") == 0


def test_safe_next_refuses_other_sites():
    assert safe_next("/cases/3") == "/cases/3"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil", None, ""):
        assert safe_next(bad) == "/queue"
