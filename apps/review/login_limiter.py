"""Failed-login limiting that every process on one review database shares.

Rules:

- Failures are counted per key (user name and client address) over a sliding
  window, in the ``login_failures`` table.  Every ``review serve`` process on
  the database (PostgreSQL when there are several) sees the same count.  At
  ``max_failures`` within ``window_s``, further tries are refused until the
  oldest counted failure leaves the window.  A success clears the key.
- Only each key's SHA-256 is stored: a user name typed into the wrong field
  may be a password.
- Times are wall-clock epoch seconds, since the processes share no other clock.
  Each failure also deletes every row that has left the window, so the table
  holds at most one window of failures.
- Counting takes no lock: two processes racing at the limit may each let one
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
    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock

    def retry_after_s(self, db: Session, key: str) -> float:
        """0 when a try is allowed now, else the seconds until it will be."""
        now = self._clock()
        times = db.scalars(select(LoginFailure.at)
                           .where(LoginFailure.key_sha256 == digest(key), LoginFailure.at > now - self.window_s)
                           .order_by(LoginFailure.at)).all()
        if len(times) < self.max_failures:
            return 0.0
        # The count drops below the limit when the max_failures-th newest failure leaves the window.
        return max(0.0, times[-self.max_failures] + self.window_s - now)

    def failed(self, db: Session, key: str) -> None:
        now = self._clock()
        db.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window_s))
        db.add(LoginFailure(key_sha256=digest(key), at=now))
        db.commit()

    def succeeded(self, db: Session, key: str) -> None:
        db.execute(delete(LoginFailure).where(LoginFailure.key_sha256 == digest(key)))
        db.commit()
