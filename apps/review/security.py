"""Secrets and the checks on them; pure functions and one in-memory limiter, no I/O.

Rules:

- Passwords: argon2id (argon2-cffi defaults).  :func:`verify_password` never
  raises on a wrong password or a malformed hash; it returns False.
- Session ids, CSRF tokens and service tokens are 256-bit values from
  :mod:`secrets`.  Only their SHA-256 digest is stored (:func:`digest`), and
  they are compared in constant time.
- :class:`LoginRateLimiter` counts *failed* logins per key (username and
  client address) in a sliding window; at the limit it refuses further tries
  until the oldest failure leaves the window.  A success clears the key.  It is
  per process: run one ``review serve`` process per database, or put a shared
  limiter in front.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

MIN_PASSWORD_CHARS = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality; False when either is missing or empty."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


class LoginRateLimiter:
    """Sliding-window count of failed logins per key; thread-safe."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window_s
        while q and q[0] <= horizon:
            q.popleft()
        return q

    def retry_after_s(self, key: str) -> float:
        """0 when a try is allowed now, else the seconds until it will be."""
        with self._lock:
            q = self._recent(key)
            if len(q) < self.max_failures:
                return 0.0
            return max(0.0, q[0] + self.window_s - self._clock())

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self._clock())

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
