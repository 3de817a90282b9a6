"""The ``npusuite review`` commands as a user runs them (subprocesses)."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import create_engine, text


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", "review", *args], input=stdin,
                          capture_output=True, text=True, timeout=180)


def test_add_user_reads_password_from_stdin_and_stores_a_hash(tmp_path):
    db = str(tmp_path / "r.db")
    ok = _run("add-user", "carol", "--role", "supervisor", "--db", db, stdin="carol-secret-9\n")
    assert ok.returncode == 0, ok.stderr
    assert "carol-secret-9" not in ok.stdout + ok.stderr
    dup = _run("add-user", "carol", "--role", "analyst", "--db", db, stdin="another-pass\n")
    assert dup.returncode == 2 and dup.stderr.strip().splitlines()[-1].startswith("npusuite: error: user 'carol'")
    bad_role = _run("add-user", "dan", "--role", "boss", "--db", db, stdin="another-pass\n")
    assert bad_role.returncode == 2 and "bad role" in bad_role.stderr
    short = _run("add-user", "dan", "--role", "analyst", "--db", db, stdin="short\n")
    assert short.returncode == 2 and "too short" in short.stderr
    token = _run("add-token", "line-1", "--db", db)
    assert token.returncode == 0 and len(token.stdout.strip()) >= 40
    assert _run("revoke-token", "line-1", "--db", db).returncode == 0
    unknown = _run("revoke-token", "nope", "--db", db)
    assert unknown.returncode == 2 and "no service token named 'nope'" in unknown.stderr
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE username='carol'")).scalar()
        token_rows = conn.execute(text("SELECT token_sha256, revoked FROM service_tokens")).all()
    engine.dispose()
    assert stored.startswith("$argon2id$") and "carol-secret-9" not in stored
    assert [r[1] for r in token_rows] == [1] and token.stdout.strip() not in str(token_rows)


def test_export_labels_command_and_bad_input(tmp_path):
    db = str(tmp_path / "r.db")
    out = _run("export-labels", "--out", str(tmp_path / "labels"), "--db", db)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "labels/fraud/labels.jsonl").read_text() == ""
    missing_dir = _run("export-labels", "--out", str(tmp_path / "x"), "--db", str(tmp_path / "no/such/r.db"))
    assert missing_dir.returncode == 2 and "database folder does not exist" in missing_dir.stderr
    assert "Traceback" not in missing_dir.stderr


def test_serve_on_a_busy_port_is_a_one_line_error(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        busy = _run("serve", "--db", str(tmp_path / "r.db"), "--port", str(port))
    assert busy.returncode == 2 and "choose another --port" in busy.stderr
    assert "Traceback" not in busy.stderr
