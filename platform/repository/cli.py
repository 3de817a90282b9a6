"""``npusuite models``: add, list, show, promote and roll back versions in a model repository."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

app = typer.Typer(no_args_is_help=True, help=(
    "Manage the model repository ROOT/<name>/<version>/: every version has a manifest with the sha256 of "
    "each file; aliases (production, canary, ...) are switched atomically. A running "
    "`npusuite platform serve` follows the production alias and hot-swaps.\n\n"
    "Example: npusuite models add --root ./models tiny-llm ./tiny && npusuite models list --root ./models"))

ROOT = typer.Option(..., "--root", help="The model repository folder.")


def _repo(root: Path):
    from npusuite.platform.repository import ModelRepository

    return ModelRepository(root)


def existing_repository(root: Path):
    """The repository at ``root`` for a command that reads it (list, serve): a missing folder is the one
    error every such command gives (``NotFoundError``, exit 2), never an empty listing."""
    from npusuite.platform.errors import NotFoundError

    if not root.is_dir():
        raise NotFoundError(f"model repository {root} does not exist (create it with `npusuite models add`)")
    return _repo(root)


@app.command("add")
def add(name: str = typer.Argument(..., help="Model name (letters, digits, . _ -)."),
        src_dir: Path = typer.Argument(..., help="Folder made by save_module or make-tiny-llm (or any HF causal LM)."),
        root: Path = ROOT,
        version: str | None = typer.Option(None, "--version", help="Version label (default: next integer)."),
        precision: str | None = typer.Option(None, "--precision", help="fp32 (default), bf16 or int8 "
                                                                        "(weight-only, applied at load)."),
        metadata: str | None = typer.Option(None, "--metadata", help="JSON object stored in the manifest.")) -> None:
    """Copy a model folder in as a new immutable version (the first one becomes production)."""
    meta = None
    if metadata:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise UserError(f"--metadata is not JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise UserError("--metadata must be a JSON object")
    mv = _repo(root).add(name, src_dir, version, precision=precision, metadata=meta)
    typer.echo(f"added {mv.ref} ({mv.manifest.kind}, {mv.manifest.precision})")


@app.command("list")
def list_(root: Path = ROOT) -> None:
    """Every model with its versions and aliases."""
    repo = existing_repository(root)
    names = repo.models()
    if not names:
        typer.echo(f"no models in {root}")
    for name in names:
        aliases = repo.aliases(name)
        tags = {v: [a for a, t in aliases.items() if t == v] for v in repo.versions(name)}
        versions = ", ".join(f"{v}" + (f" [{', '.join(a)}]" if a else "") for v, a in tags.items())
        typer.echo(f"{name}: {versions}")


@app.command("show")
def show(ref: str = typer.Argument(..., help="name, name@version or name@alias."), root: Path = ROOT,
         verify: bool = typer.Option(True, "--verify/--no-verify", help="Check every file's sha256.")) -> None:
    """Print a version's manifest (and verify its checksums)."""
    mv = existing_repository(root).resolve_ref(ref, verify=verify)
    typer.echo(json.dumps(mv.manifest.model_dump(), indent=2))
    if verify:
        typer.echo(f"# {mv.ref}: all {len(mv.manifest.files)} files match their sha256", err=True)


@app.command("promote")
def promote(name: str, version: str, root: Path = ROOT,
            alias: str = typer.Option("production", "--alias", help="Alias to move (production, canary...)."),
            require_comparison: bool = typer.Option(False, "--require-comparison", help=(
                "Refuse unless VERSION has a PASSED champion/challenger comparison against the version the alias "
                "points at now (written by `npusuite fraud compare --model-root ROOT`); a comparison against "
                "an earlier champion does not count.")),
            ) -> None:
    """Point an alias at a version (verified first).

    Example: npusuite models promote --root models fraud-fast 2 --require-comparison"""
    repo = _repo(root)
    repo.resolve(name, version)  # refuse corrupt versions before anyone follows the alias
    if require_comparison:
        from npusuite.platform.repository.comparison import require_passed_comparison

        verdict = require_passed_comparison(repo, name, version, alias)
        typer.echo(f"comparison with {verdict.champion} passed: {verdict.reason}")
    previous = repo.promote(name, version, alias)
    typer.echo(f"{name}@{alias}: {previous or '-'} -> {version}")


@app.command("rollback")
def rollback(name: str, root: Path = ROOT, alias: str = typer.Option("production", "--alias")) -> None:
    """Return an alias to the version it pointed at before."""
    target = existing_repository(root).rollback(name, alias)
    typer.echo(f"{name}@{alias} -> {target}")
