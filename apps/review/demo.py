"""Demo step: the review app, fed by the demo's fraud scorer (Kafka) and inspection line (HTTP).

It keeps its SQLite database under ``WORKDIR/review/`` and, the first time,
creates two users, ``analyst`` (analyst) and ``supervisor`` (supervisor), with
random passwords written to ``WORKDIR/review-demo-users`` (mode 0600; the
notes print the path, never a password), and a service token for ingest in
``WORKDIR/review-ingest-token`` (0600).  Later runs reuse them.  It publishes
``ctx.shared["review_url"]`` and ``ctx.shared["review_ingest_token"]`` for the
steps after it.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
from pathlib import Path

import httpx

from npusuite.platform.demo import DemoContext
from npusuite.platform.errors import UserError
from npusuite.platform.kafka.broker import free_port

logger = logging.getLogger(__name__)

USERS = (("analyst", "analyst"), ("supervisor", "supervisor"))


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _cli(ctx: DemoContext, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(ctx.cli(*args), cwd=ctx.workdir, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"demo: npusuite {' '.join(args[:2])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout


def _prepare_accounts(ctx: DemoContext, db: Path) -> str:
    users_file = ctx.workdir / "review-demo-users"
    token_file = ctx.workdir / "review-ingest-token"
    fresh_db = not db.exists()
    if fresh_db or not users_file.exists():
        lines = []
        for name, role in USERS:
            password = secrets.token_urlsafe(12)
            _cli(ctx, "review", "add-user", name, "--role", role, "--update", "--db", str(db), stdin=password + "\n")
            lines.append(f"{name}\t{role}\t{password}\n")
        _write_private(users_file, "".join(lines))
    if fresh_db or not token_file.exists():
        token = _cli(ctx, "review", "add-token", f"demo-{secrets.token_hex(4)}", "--db", str(db)).strip()
        _write_private(token_file, token + "\n")
    ctx.notes.append(f"review users in {users_file} (name, role, password)")
    return token_file.read_text().strip()


def step(ctx: DemoContext) -> None:
    folder = ctx.workdir / "review"
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "review.db"
    token = _prepare_accounts(ctx, db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    ctx.start("review", "review", "serve", "--db", str(db), "--port", str(port), "--bootstrap", ctx.bootstrap,
              url=url, ready=ready)
    ctx.shared["review_url"] = url
    ctx.expose_metrics("npusuite-review", f"{url}/metrics")
    ctx.shared["review_ingest_token"] = token
