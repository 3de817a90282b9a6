"""The ``npusuite review`` commands as a user runs them (subprocesses)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from npusuite.platform.cli import main


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", "review", *args], input=stdin,
                          capture_output=True, text=True, timeout=180)


def _run_here(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str]:
    """The same entry point in this process (quicker for the error paths): (exit status, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the CLI sets up logging; give pytest's back
    try:
        with pytest.raises(SystemExit) as done:
            main(["review", *args])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return done.value.code, capsys.readouterr().err


def test_add_user_reads_password_from_stdin_and_stores_a_hash(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "r.db")
    ok = _run("add-user", "carol", "--role", "supervisor", "--db", db, stdin="carol-secret-9\n")
    assert ok.returncode == 0, ok.stderr
    assert "carol-secret-9" not in ok.stdout + ok.stderr
    token = _run("add-token", "line-1", "--db", db)
    assert token.returncode == 0 and len(token.stdout.strip()) >= 40
    code, err = _run_here(monkeypatch, capsys, "add-user", "carol", "--role", "analyst", "--db", db,
                          stdin="another-pass\n")
    assert code == 2 and err.strip().splitlines()[-1].startswith("npusuite: error: user 'carol'")
    code, err = _run_here(monkeypatch, capsys, "add-user", "dan", "--role", "boss", "--db", db, stdin="pass-word-1\n")
    assert code == 2 and "bad role" in err
    code, err = _run_here(monkeypatch, capsys, "add-user", "dan", "--role", "analyst", "--db", db, stdin="short\n")
    assert code == 2 and "too short" in err
    code, err = _run_here(monkeypatch, capsys, "add-user", "dan", "--role", "analyst", "--db", db, stdin="")
    assert code == 2 and "no password on stdin" in err
    assert _run_here(monkeypatch, capsys, "revoke-token", "line-1", "--db", db)[0] == 0
    code, err = _run_here(monkeypatch, capsys, "revoke-token", "nope", "--db", db)
    assert code == 2 and "no service token named 'nope'" in err
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE username='carol'")).scalar()
        token_rows = conn.execute(text("SELECT token_sha256, revoked FROM service_tokens")).all()
    engine.dispose()
    assert stored.startswith("$argon2id$") and "carol-secret-9" not in stored
    assert [r[1] for r in token_rows] == [1] and token.stdout.strip() not in str(token_rows)


def test_add_user_with_teams(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "r.db")
    code, _ = _run_here(monkeypatch, capsys, "add-user", "quinn", "--role", "analyst", "--team", "qc", "--db", db,
                        stdin="quinn-secret-1\n")
    assert code in (0, None)
    code, _ = _run_here(monkeypatch, capsys, "add-user", "sue", "--role", "supervisor", "--team", "fraud",
                        "--team", "qc:analyst", "--db", db, stdin="sue-secret-22\n")
    assert code in (0, None)
    code, _ = _run_here(monkeypatch, capsys, "add-user", "old", "--role", "analyst", "--db", db,
                        stdin="old-secret-333\n")
    assert code in (0, None)
    code, err = _run_here(monkeypatch, capsys, "add-user", "bad", "--role", "analyst", "--team", "payroll",
                          "--db", db, stdin="bad-secret-4444\n")
    assert code == 2 and "unknown team 'payroll'" in err
    code, err = _run_here(monkeypatch, capsys, "add-user", "bad", "--role", "analyst", "--team", "qc:boss",
                          "--db", db, stdin="bad-secret-4444\n")
    assert code == 2 and "unknown team role 'boss'" in err
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT u.username, t.team, t.role FROM user_teams t JOIN users u ON u.id = t.user_id "
                                 "ORDER BY u.username, t.team")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("old", "fraud", "analyst"), ("old", "qc", "analyst"),
                                        ("quinn", "qc", "analyst"), ("sue", "fraud", "supervisor"),
                                        ("sue", "qc", "analyst")]


def test_export_labels_command_and_bad_input(tmp_path):
    db = str(tmp_path / "r.db")
    out = _run("export-labels", "--out", str(tmp_path / "labels"), "--db", db)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "labels/fraud/labels.jsonl").read_text() == ""


def test_bad_database_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    code, err = _run_here(monkeypatch, capsys, "export-labels", "--out", str(tmp_path / "x"),
                          "--db", str(tmp_path / "no/such/r.db"))
    assert code == 2 and "database folder does not exist" in err and "Traceback" not in err
    code, err = _run_here(monkeypatch, capsys, "add-token", "t", "--db", "postgresql://nobody@127.0.0.1:1/x")
    assert code == 2 and "cannot open the review database" in err


def test_serve_on_a_busy_port_is_a_one_line_error(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        busy = _run("serve", "--db", str(tmp_path / "r.db"), "--port", str(port))
    assert busy.returncode == 2 and "choose another --port" in busy.stderr
    assert "Traceback" not in busy.stderr
