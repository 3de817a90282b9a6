"""Review app fixtures: real databases (SQLite files and a private PostgreSQL
server), a real HTTP server (uvicorn in a thread), and builders for alerts,
inspection records and PNG images.

The PostgreSQL server is started once per session from
``/usr/lib/postgresql/15/bin`` (``.ci/run`` installs it) in a temporary folder,
listening on 127.0.0.1 only; as root it runs as the ``postgres`` system user
(initdb refuses root).  Tests that need it are skipped, with the reason, only
when the binaries are absent.
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from npusuite.platform.kafka.broker import free_port
from npusuite.review.accounts import SessionInfo, add_service_token, create_user
from npusuite.review.config import ReviewConfig, sqlite_url
from npusuite.review.db import make_engine, migrate, session_factory

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: Screenshots for people to look at (git-ignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "review"


# ---------------------------------------------------------------- builders

def png_bytes(width: int = 32, height: int = 24, seed: int = 0, heat: bool = False) -> bytes:
    """A real, decodable RGB PNG (zlib + CRCs written by hand; no imaging library needed).

    heat=True draws a red blob on black around the first box of :func:`inspection_record`, like a heatmap."""
    def pixel(x: int, y: int) -> tuple[int, int, int]:
        if heat:
            d2 = ((x - 18) / 10) ** 2 + ((y - 12) / 6) ** 2
            v = max(0, int(255 * (1 - d2)))
            return (v, v // 4, 0)
        g = (x * 3 + y * 2 + seed) % 64 + 120
        return (g, g, g + 10)

    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def transaction(tx_id: str, account: str = "acct-1", minutes_ago: float = 0.0, amount: float = 42.5) -> dict:
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC) - timedelta(minutes=minutes_ago)
    return {"transaction_id": tx_id, "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "account_id": account,
            "card_id": "card-1", "amount": amount, "currency": "EUR", "merchant_id": "m-77",
            "merchant_category": "5411", "channel": "ecommerce", "country": "DE", "lat": None, "lon": None,
            "device_id": "dev-9", "ip": "10.0.0.1"}


def fraud_alert(tx_id: str | None = None, score: float = 0.9, decision: str = "decline",
                reasons: list[str] | None = None, model: str = "fraud-mlp@3", rationale: str | None = None,
                reason_codes: list[str] | None = None, thresholds: dict | None = None,
                merchant: str = "m-77", account: str = "acct-1", features: dict | None = None) -> dict:
    """An alert; without REASON_CODES it has none, and without THRESHOLDS none either, as from a scorer
    that predates them."""
    tx_id = tx_id or f"tx-{uuid.uuid4().hex[:12]}"
    recent = [transaction(f"{tx_id}-prev{i}", account=account, minutes_ago=60 * (3 - i), amount=10.0 + i)
              for i in range(3)]
    tx = {**transaction(tx_id, account=account, amount=912.0), "merchant_id": merchant}
    return {"transaction_id": tx_id, "score": score, "decision": decision,
            "reasons": reasons if reasons is not None else ["amount_spike", "new_device"], "model": model,
            "latency_ms": 3.2, "transaction": tx, "account_recent": recent,
            "features": features if features is not None else {"amount_z": 4.1, "tx_count_1h": 3.0},
            "llm_rationale": rationale, "fraud_type": None, "reason_codes": reason_codes or [],
            "thresholds": thresholds}


def inspection_record(rec_id: str | None = None, score: float = 0.8, threshold: float = 0.5,
                      heatmap: bool = True) -> dict:
    return {"id": rec_id or f"insp-{uuid.uuid4().hex[:12]}", "timestamp": "2026-03-02T12:00:00Z", "line": "line-1",
            "product": "bottle", "image_png_b64": base64.b64encode(png_bytes(64, 48)).decode(),
            "heatmap_png_b64": base64.b64encode(png_bytes(64, 48, heat=True)).decode() if heatmap else None,
            "score": score, "threshold": threshold, "defective": True, "boxes": [[8, 6, 20, 12]],
            "model": "inspect-student@2"}


def as_session(user) -> SessionInfo:
    return SessionInfo.of(user, "test-csrf")


# ---------------------------------------------------------------- databases

@dataclass
class Db:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    cfg: ReviewConfig


def _fresh_sqlite(folder: Path) -> Db:
    url = sqlite_url(folder / f"review-{uuid.uuid4().hex[:8]}.db")
    engine = make_engine(url)
    migrate(engine)
    return Db(url, engine, session_factory(engine), ReviewConfig(db_url=url))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a maintenance database on a private PostgreSQL 15 server."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (.ci/run installs postgresql-15)")
    base = Path(tempfile.mkdtemp(prefix="npusuite-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    wrap = ["runuser", "-u", "postgres", "--"] if as_root else []
    port = free_port()
    log = base / "server.log"
    subprocess.run([*wrap, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=180)
    subprocess.run([*wrap, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120", "-o",
                    f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
                    "start"], check=True, capture_output=True, timeout=180)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*wrap, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def _fresh_pg(server_url: str) -> Db:
    name = f"review_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate(engine)
    return Db(url, engine, session_factory(engine), ReviewConfig(db_url=url))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A freshly migrated database, on SQLite and on PostgreSQL."""
    made = _fresh_sqlite(tmp_path) if request.param == "sqlite" else _fresh_pg(request.getfixturevalue("pg_server"))
    yield made
    made.engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Db]:
    made = _fresh_sqlite(tmp_path)
    yield made
    made.engine.dispose()


# ---------------------------------------------------------------- a live server

@dataclass
class LiveApp:
    url: str
    db: Db
    token: str
    passwords: dict[str, str]


class _Server:
    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_live(made: Db, consumer=None) -> tuple[_Server, LiveApp]:
    from npusuite.review.web.app import create_app

    passwords = {"alice": "alice-pass-1", "bob": "bob-pass-22", "sue": "sue-pass-333", "ada": "ada-pass-4444",
                 "quinn": "quinn-pass-55", "fay": "fay-pass-666"}
    with made.sessions() as s:
        # alice, bob, sue and ada are in both teams (as users were before teams); quinn only in QC, fay only in fraud.
        create_user(s, "quinn", passwords["quinn"], "analyst", teams=["qc"])
        create_user(s, "fay", passwords["fay"], "analyst", teams=["fraud"])
        create_user(s, "alice", passwords["alice"], "analyst")
        create_user(s, "bob", passwords["bob"], "analyst")
        create_user(s, "sue", passwords["sue"], "supervisor")
        create_user(s, "ada", passwords["ada"], "admin")
        token = add_service_token(s, "tests")
    port = free_port()
    server = _Server(create_app(made.cfg, made.sessions, consumer), port)
    return server, LiveApp(f"http://127.0.0.1:{port}", made, token, passwords)


@pytest.fixture
def live(sqlite_db: Db) -> Iterator[LiveApp]:
    server, info = start_live(sqlite_db)
    with server:
        yield info


@pytest.fixture
def live_any(db: Db) -> Iterator[LiveApp]:
    """The live app on SQLite and on PostgreSQL."""
    server, info = start_live(db)
    with server:
        yield info


def login(live: LiveApp, username: str) -> httpx.Client:
    """A client holding a real session cookie, logged in through the login form."""
    client = httpx.Client(base_url=live.url, timeout=30, follow_redirects=False)
    page = client.get("/login")
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    resp = client.post("/login", data={"username": username, "password": live.passwords[username],
                                       "csrf_token": csrf, "next": "/queue"})
    assert resp.status_code == 303, resp.text
    client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf_token"]
    return client


def ingest(live: LiveApp, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{live.url}{path}", json=body, headers={"Authorization": f"Bearer {live.token}"}, timeout=30)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (skipped, with the reason, when it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def mk() -> SimpleNamespace:
    """The builders above, for tests (pytest's importlib mode does not let tests import conftest)."""
    return SimpleNamespace(png=png_bytes, tx=transaction, alert=fraud_alert, inspection=inspection_record,
                           as_session=as_session, login=login, ingest=ingest, start_live=start_live,
                           fresh_sqlite=_fresh_sqlite)
