"""Failed-login limiting that every process on one review database shares.

Rules:

- Each failed login is counted three ways over one sliding window, in the
  ``login_failures`` table: per (user name, client address), per client
  address across all user names, and per user name across all addresses.
  A try is refused while any of the three counts is at its limit
  (``max_failures``, ``max_per_address``, ``max_per_user``), until enough of
  its failures leave the window.  The pair limit is the tight one; the other
  two are looser and stop password spraying (one password tried on many users
  from one address) and a guessing run spread over many addresses.
- The per-user limit means anyone can hold a user's login off for one window
  by failing often enough; that is the price of stopping distributed
  guessing, and it ends with the window.  A success clears the pair's and
  the user's counts, never the address's (an attacker with an account of
  their own could otherwise reset it between sprays).
- Every ``review serve`` process on the database (PostgreSQL when there are
  several) sees the same counts.  Only each key's SHA-256 is stored: a user
  name typed into the wrong field may be a password.  Keys carry their kind
  (``pair|``, ``addr|``, ``user|``), so the three never collide.
- Times are wall-clock epoch seconds, since the processes share no other clock.
  Each failure also deletes every row that has left the window, so the table
  holds at most one window of failures.
- Counting takes no lock: two processes racing at a limit may each let one
  more try through.  Each write commits at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from npusuite.review.models import LoginFailure
from npusuite.review.security import digest


class LoginLimiter:
    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.time, *,
                 max_per_address: int | None = None, max_per_user: int | None = None) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_per_address = max_per_address
        self.max_per_user = max_per_user
        self._clock = clock

    @staticmethod
    def _keys(username: str, address: str) -> dict[str, str]:
        name = username.strip().lower()
        return {"pair": digest(f"pair|{name}|{address}"), "addr": digest(f"addr|{address}"),
                "user": digest(f"user|{name}")}

    def _limits(self) -> dict[str, int | None]:
        return {"pair": self.max_failures, "addr": self.max_per_address, "user": self.max_per_user}

    def retry_after_s(self, db: Session, username: str, address: str) -> float:
        """0 when a try is allowed now, else the seconds until it will be."""
        now = self._clock()
        keys = self._keys(username, address)
        rows = db.execute(select(LoginFailure.key_sha256, LoginFailure.at)
                          .where(LoginFailure.key_sha256.in_(keys.values()), LoginFailure.at > now - self.window_s)
                          .order_by(LoginFailure.at)).all()
        wait = 0.0
        for kind, limit in self._limits().items():
            times = [at for key, at in rows if key == keys[kind]]
            if limit is not None and len(times) >= limit:
                # The count drops below the limit when the limit-th newest failure leaves the window.
                wait = max(wait, times[-limit] + self.window_s - now)
        return wait

    def failed(self, db: Session, username: str, address: str) -> None:
        now = self._clock()
        db.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window_s))
        for key in self._keys(username, address).values():
            db.add(LoginFailure(key_sha256=key, at=now))
        db.commit()

    def succeeded(self, db: Session, username: str, address: str) -> None:
        keys = self._keys(username, address)
        db.execute(delete(LoginFailure).where(LoginFailure.key_sha256.in_([keys["pair"], keys["user"]])))
        db.commit()
