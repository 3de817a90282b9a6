"""The one module that reads environment variables.

Every setting that may come from the environment is declared here as a field
of a pydantic-settings class, with its unit in the name.  Components receive
these objects (or plain values taken from them) through their constructors;
nothing else in the suite looks at ``os.environ``.  Settings are read when a
class is instantiated, never at import time.

Variables (all optional):

=============================  ==============================================
``KAFKA_BOOTSTRAP``            an existing cluster, ``host:port[,host:port]``
``NPUSUITE_HOME``              where local state lives (default: XDG dirs)
``NPUSUITE_ADMIN_TOKEN``       bearer token for management endpoints
``NPUSUITE_LOG_LEVEL``         DEBUG, INFO (default), WARNING, ...
``NPUSUITE_LOG_FORMAT``        ``text`` (default) or ``json``
``NPUSUITE_REVIEW_DB``          review app database URL (default: SQLite file)
``NPUSUITE_PROMETHEUS_URL``     where ``npusuite ops`` queries Prometheus
``NPUSUITE_REVIEW_INGEST_TOKEN``  extra bearer token accepted by review ingest
``NOTIFY_SOCKET``               set by systemd (``Type=notify``): sd_notify socket
``WATCHDOG_USEC``, ``WATCHDOG_PID``  set by systemd (``WatchdogSec=``): the watchdog
=============================  ==============================================
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PathSettings(BaseSettings):
    """Where the suite keeps caches and local state."""

    model_config = SettingsConfigDict(extra="ignore")
    home: Path | None = Field(default=None, validation_alias="NPUSUITE_HOME")
    xdg_cache_home: Path | None = Field(default=None, validation_alias="XDG_CACHE_HOME")
    xdg_data_home: Path | None = Field(default=None, validation_alias="XDG_DATA_HOME")

    def cache_dir(self) -> Path:
        if self.home:
            return self.home / "cache"
        return (self.xdg_cache_home or Path.home() / ".cache") / "npusuite"

    def data_dir(self) -> Path:
        if self.home:
            return self.home / "data"
        return (self.xdg_data_home or Path.home() / ".local" / "share") / "npusuite"


class KafkaSettings(BaseSettings):
    """How to reach Kafka.  ``bootstrap`` unset means: use the local broker."""

    model_config = SettingsConfigDict(extra="ignore")
    bootstrap: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "NPUSUITE_KAFKA_BOOTSTRAP")
    )


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NPUSUITE_LOG_", extra="ignore")
    level: str = "INFO"
    format: str = "text"


class AdminSettings(BaseSettings):
    """Secrets for management endpoints.  Never logged."""

    model_config = SettingsConfigDict(env_prefix="NPUSUITE_", extra="ignore")
    admin_token: str | None = Field(default=None, repr=False)


class ReviewSettings(BaseSettings):
    """The review app's database and its environment-provided ingest token.  The token is never logged."""

    model_config = SettingsConfigDict(env_prefix="NPUSUITE_REVIEW_", extra="ignore")
    db: str | None = None
    ingest_token: str | None = Field(default=None, repr=False)


class SystemdSettings(BaseSettings):
    """What systemd tells a ``Type=notify`` service (see ``npusuite.platform.sd_notify``); all unset
    outside systemd."""

    model_config = SettingsConfigDict(extra="ignore")
    notify_socket: str | None = Field(default=None, validation_alias="NOTIFY_SOCKET")
    watchdog_usec: int | None = Field(default=None, validation_alias="WATCHDOG_USEC")
    watchdog_pid: int | None = Field(default=None, validation_alias="WATCHDOG_PID")


class OpsSettings(BaseSettings):
    """Where ``npusuite ops`` reads metrics: ``NPUSUITE_PROMETHEUS_URL`` (default: a local Prometheus)."""

    model_config = SettingsConfigDict(env_prefix="NPUSUITE_", extra="ignore")
    prometheus_url: str = "http://127.0.0.1:9090"
