"""Secrets and the checks on them; pure functions, no I/O.

Rules:

- Passwords: argon2id (argon2-cffi defaults).  :func:`verify_password` never
  raises on a wrong password or a malformed hash; it returns False.
- Session ids, CSRF tokens and service tokens are 256-bit values from
  :mod:`secrets`.  Only their SHA-256 digest is stored (:func:`digest`), and
  they are compared in constant time.
- Failed logins are limited by :mod:`.login_limiter`, in the database, so
  that every process on it shares the count.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

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
