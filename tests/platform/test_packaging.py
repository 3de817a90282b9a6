"""The repo's `platform/` folder must never shadow the standard library's `platform`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_in_root(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_stdlib_platform_wins_from_repo_root():
    proc = _run_in_root("import platform; print(platform.__file__); print(platform.system())")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert not first.startswith(str(ROOT)), f"`platform` resolved to the repo: {first}"
    assert proc.stdout.splitlines()[1] == "Linux"


def test_torch_and_uvicorn_import_from_repo_root():
    proc = _run_in_root("import platform, torch, uvicorn; print(platform.system(), torch.__version__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Linux ")


def test_npusuite_platform_is_the_repo_folder():
    import npusuite.platform.kafka as kafka_pkg

    assert Path(kafka_pkg.__file__).resolve().is_relative_to(ROOT / "platform")
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for name, folder in cfg["package-dir"].items():
        base = ROOT / folder
        if not base.is_dir():
            continue
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((name, *rel)))
        if (base / "__init__.py").exists() or name == "npusuite.platform":
            found.add(name)
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
