"""``npusuite fraud rules``: analysts add rules without retraining; each rule set is a repository version.

A rule set is checked (parsed, names and types, limits; :mod:`npusuite.fraud.rules`)
BEFORE it is stored: a broken one never becomes a version, and the command
exits 2 with the reason on one line.  A stored rule set is a ``data`` version
(``rules.json`` + manifest) of NAME; ``--promote`` (or ``npusuite models
promote``) moves the alias that live scorers (``fraud run --rules NAME``)
follow, so the new rules take effect within milliseconds.  A scorer refuses,
again before its switch, any version that does not compile with its own code.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import typer

from npusuite.platform.errors import NotFoundError, UserError

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help=(
    "Analysts' rules: conditions over the documented features, stored and versioned like models, "
    "hot-swapped in live scorers through an alias.\n\n"
    "A rules file:\n\n"
    '  {"rules": [{"name": "atm-abroad", "when": "channel == \\"atm\\" and cnt_1h > 5 and new_country", '
    '"action": "review"}]}\n\n'
    "Identifiers: the features in docs/fraud-api.md in their unit (counts, amounts, km, ratios, 0/1 flags) and "
    "amount, hour, channel, country, currency, merchant_category, merchant_id.  Operators: == != < <= > >= + - "
    "* /, and, or, not, in [..].  Actions: review, decline.\n\n"
    "  npusuite fraud rules check rules.json\n\n"
    "  npusuite fraud rules add rules.json --root models --promote\n\n"
    "  npusuite fraud run ... --rules fraud-rules"))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such rules file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None


@app.command()
def check(file: Path = typer.Argument(..., help="Rules JSON file.")) -> None:
    """Parse and type-check a rules file without storing it (exit 2 with the reason when it is broken)."""
    from npusuite.fraud.rules import parse_rule_set

    rules = parse_rule_set(_read(file), ref=str(file))
    for r in rules.rules:
        typer.echo(f"{r.name}: {r.action} when {r.when}")
    typer.echo(f"{len(rules.rules)} rule(s) OK", err=True)


@app.command()
def add(
    file: Path = typer.Argument(..., help="Rules JSON file ({\"rules\": [{name, when, action}]})."),
    root: Path = typer.Option(..., "--root", help="Model repository to store the rule set in."),
    name: str = typer.Option("fraud-rules", "--name", help="Repository name of the rule sets."),
    promote: bool = typer.Option(False, "--promote", help=(
        "Point 'production' at the new version now (live scorers following it switch within milliseconds). "
        "The first version of NAME becomes production anyway.")),
    alias: str = typer.Option("production", "--alias", help="Alias to move with --promote."),
) -> None:
    """Check a rules file, then store it as a new version of NAME (and, with --promote, switch to it).

    Example: npusuite fraud rules add rules.json --root models --promote
    """
    from npusuite.fraud.rules import RULES_FILE, parse_rule_set, rule_set_document
    from npusuite.platform.repository import ModelRepository

    rules = parse_rule_set(_read(file), ref=str(file))  # refused here, before anything is stored
    repo = ModelRepository(root)
    with tempfile.TemporaryDirectory(prefix="rules-") as tmp:
        (Path(tmp) / RULES_FILE).write_text(rule_set_document(rules))
        version = repo.add(name, tmp, kind="data",
                           metadata={"rules": [r.name for r in rules.rules], "source": str(file)})
    previous = repo.promote(name, version.version, alias) if promote else None
    target = repo.aliases(name).get(alias)
    typer.echo(json.dumps({"version": version.ref, "rules": len(rules.rules), alias: target,
                           "previous": previous}))
