"""`npusuite edge release ...` and `fleet` CLI: the documented commands work; bad input is one line, exit 2."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

from npusuite.edge.simulate import write_sim_model


def npusuite(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "npusuite.platform", *args], capture_output=True, text=True,
                         timeout=120)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def test_release_commands_and_key_layout(tmp_path):
    rel = tmp_path / "rel"
    npusuite("edge", "release", "init", str(rel))
    for role in ("root", "targets", "snapshot", "timestamp"):
        keys = list((rel / "keys" / role).glob("*.pem"))
        assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600
        assert stat.S_IMODE((rel / "keys" / role).stat().st_mode) == 0o700
    model = write_sim_model(tmp_path / "m", "line-a", "1.0.0")
    npusuite("edge", "release", "bundle", str(model), str(tmp_path / "b.tgz"), "--name", "line-a",
             "--version", "1.0.0")
    npusuite("edge", "release", "add", str(rel), "models/line-a.tgz", str(tmp_path / "b.tgz"), "--version", "1.0.0")
    before = json.loads(npusuite("edge", "release", "status", str(rel)).stdout)
    npusuite("edge", "release", "resign-timestamp", str(rel), "--expires-hours", "2")
    old_kid = before["targets"]["keyids"][0]
    npusuite("edge", "release", "rotate-key", str(rel), "targets")
    after = json.loads(npusuite("edge", "release", "status", str(rel)).stdout)
    assert after["timestamp"]["version"] > before["timestamp"]["version"] + 1
    assert after["root"]["version"] == before["root"]["version"] + 1
    assert after["targets"]["keyids"] != [old_kid] and not (rel / "keys" / "targets" / f"{old_kid}.pem").exists()
    assert after["targets_list"] == {"models/line-a.tgz": {"version": "1.0.0", "kind": "model"}}
    assert (rel / "repository" / "metadata" / "2.root.json").exists()


def test_bad_input_is_one_line(tmp_path):
    cases = [
        ("edge", "release", "status", str(tmp_path / "nope")),
        ("edge", "release", "add", str(tmp_path / "nope"), "t", "f", "--version", "1"),
        ("edge", "release", "bundle", str(tmp_path / "nope"), str(tmp_path / "o.tgz"), "--name", "a", "--version", "1"),
        ("edge", "agent", "--box", str(tmp_path / "box"), "--device-id", "d", "--source", str(tmp_path / "nope"),
         "--pipeline", "sim"),
    ]
    npusuite("edge", "release", "init", str(tmp_path / "rel"))
    cases += [
        ("edge", "release", "init", str(tmp_path / "rel")),
        ("edge", "release", "rotate-key", str(tmp_path / "rel"), "nobody"),
        ("edge", "release", "add", str(tmp_path / "rel"), "../evil", str(tmp_path / "rel" / "metadata" / "root.json"),
         "--version", "1.0"),
        ("edge", "release", "add", str(tmp_path / "rel"), "m.tgz", str(tmp_path / "rel" / "metadata" / "root.json"),
         "--version", "not-a-version"),
    ]
    for args in cases:
        out = npusuite(*args, ok=False)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("npusuite: error:"), (args, out.stderr)
