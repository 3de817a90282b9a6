"""The review app's one typed configuration.

Every knob has its unit in its name and is validated when the object is built.
The command line (``npusuite review serve``) builds it from flags; tests build
it directly.  Nothing here reads the environment: the database URL and the
environment-provided ingest token come from
:class:`npusuite.platform.settings.ReviewSettings` and are passed in.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from npusuite.platform.settings import PathSettings


def default_db_url() -> str:
    """``sqlite:///<data dir>/review/review.db`` (the folder is created)."""
    folder = PathSettings().data_dir() / "review"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'review.db'}"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


class ReviewConfig(BaseModel):
    """How the review app behaves.  Times carry their unit in the field name."""

    model_config = ConfigDict(frozen=True)

    db_url: str
    #: A bearer token accepted by the ingest API besides the stored service tokens (NPUSUITE_REVIEW_INGEST_TOKEN).
    env_ingest_token: str | None = Field(default=None, repr=False)
    #: Service level, per team and SLA tier (npusuite.review.risk): how long a case may stay open before it
    #: breaches.  Fraud: high = declines, normal = reviews; QC: high = severe rejects, normal = other rejects.
    sla_fraud_decline_min: float = Field(default=60.0, gt=0)
    sla_fraud_review_min: float = Field(default=240.0, gt=0)
    sla_qc_severe_min: float = Field(default=240.0, gt=0)
    sla_inspection_min: float = Field(default=480.0, gt=0)
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    #: Failed logins allowed per (username, client address) inside the window, then 429 until it passes.
    login_max_failures: int = Field(default=5, ge=1)
    #: Failed logins allowed from one client address across all user names (password spraying).
    login_max_failures_per_address: int = Field(default=20, ge=1)
    #: Failed logins allowed for one user name across all addresses (guessing spread over addresses).
    login_max_failures_per_user: int = Field(default=10, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    #: Set when served behind TLS, so browsers send the session cookie over HTTPS only.
    cookie_secure: bool = False
    #: Largest accepted ingest body (base64 images included).
    max_ingest_bytes: int = Field(default=16 * 1024 * 1024, gt=0)

    def sla_target_min(self, team: str, tier: str) -> float:
        """Minutes a case of TEAM on TIER (high/normal) may stay open."""
        if team == "fraud":
            return self.sla_fraud_decline_min if tier == "high" else self.sla_fraud_review_min
        return self.sla_qc_severe_min if tier == "high" else self.sla_inspection_min
