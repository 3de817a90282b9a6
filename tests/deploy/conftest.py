"""Fixtures for deploy/: the real helm (built once and cached), charts rendered once per session,
and the real CLI's parser for checking command lines.

helm comes from ``deploy/install-helm.sh`` (its Go module through the Go module proxy, cached
under the suite's cache folder, :class:`npusuite.platform.settings.PathSettings`); the first
session on a fresh machine builds it (minutes, once), every later one finds it at once.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import typer
import yaml

from npusuite.platform.cli import build_app
from npusuite.platform.settings import PathSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "npusuite"
SCHEMAS = DEPLOY / "helm" / "schemas"
#: The Kubernetes version the manifests are rendered for and validated against (kubernetes-validate
#: ships its schemas); the chart's kubeVersion floor is 1.27.
KUBE_VERSION = "1.30.0"
#: An example bootstrap: the chart requires one and guesses none.
BOOTSTRAP = "kafka-0.kafka:9092,kafka-1.kafka:9092"


class Manifests(list):
    """One rendering's documents (dicts), with the look-ups the tests need."""

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self if d["kind"] == kind]

    def one(self, kind: str, component: str) -> dict:
        (doc,) = [d for d in self.of_kind(kind) if d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
        return doc

    def pod_specs(self) -> list[dict]:
        return [d["spec"]["template"]["spec"] for d in self if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


class Chart:
    """The real helm on deploy/helm/npusuite."""

    dir = CHART
    schemas = SCHEMAS
    kube_version = KUBE_VERSION
    bootstrap = BOOTSTRAP

    def __init__(self, helm: Path) -> None:
        self.helm = helm
        self._rendered: dict[str, Manifests] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.helm), *args], capture_output=True, text=True, timeout=120)

    @staticmethod
    def values_args(variant: str | None) -> list[str]:
        """`-f values-VARIANT.yaml` (none: values.yaml alone) and the required Kafka bootstrap."""
        files = ["-f", str(CHART / f"values-{variant}.yaml")] if variant else []
        escaped = BOOTSTRAP.replace(",", "\\,")  # --set splits on unescaped commas
        return [*files, "--set", f"kafka.bootstrap={escaped}"]

    def lint(self, variant: str | None) -> subprocess.CompletedProcess:
        return self.run("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *self.values_args(variant))

    def template(self, variant: str | None, *extra: str) -> subprocess.CompletedProcess:
        return self.run("template", "npusuite", str(CHART), "--namespace", "npusuite", "--kube-version", KUBE_VERSION,
                        *self.values_args(variant), *extra)

    def rendered(self, variant: str) -> Manifests:
        """A values file's manifests, rendered once per session."""
        if variant not in self._rendered:
            proc = self.template(variant)
            assert proc.returncode == 0, proc.stderr
            self._rendered[variant] = Manifests(d for d in yaml.safe_load_all(proc.stdout) if d)
        return self._rendered[variant]


@pytest.fixture(scope="session")
def chart() -> Chart:
    cache = PathSettings().cache_dir()
    proc = subprocess.run([str(DEPLOY / "install-helm.sh"), str(cache)], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"deploy/install-helm.sh failed:\n{proc.stderr}")
    return Chart(Path(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="session")
def parse_cli():
    """Parse a command line (without the leading ``npusuite``) with the real CLI's parser, as the
    process would at start; raises the CLI's usage error (no such option, bad value, a required
    option missing).  Returns (command path, parsed parameters)."""
    root = typer.main.get_command(build_app())

    def parse(args: list[str]) -> tuple[list[str], dict]:
        cmd, i = root, 0
        while hasattr(cmd, "commands"):
            assert i < len(args) and args[i] in cmd.commands, f"no command {args[:i + 1]}"
            cmd, i = cmd.commands[args[i]], i + 1
        ctx = cmd.make_context(" ".join(args[:i]), list(args[i:]))
        return args[:i], ctx.params

    return parse
