"""The analysts' rules as an engine app: a rule-set version is compiled and tried before the switch.

A rule set is a repository version of kind ``data`` holding ``rules.json``
(``npusuite fraud rules add``), served by a platform
:class:`~npusuite.platform.engine.ModelEngine` that follows its alias (e.g.
``fraud-rules@production``), so promoting a new rule set hot-swaps it within
milliseconds (inotify) and a broken one is refused BEFORE the switch
(``SwapError``, logged ``... refused: ...``) while the old rules keep
scoring.  Worker ``"direct"``: the scorer evaluates the compiled rules on the
batch under an engine lease.

1. build: the version must be a ``data`` version; ``rules.json`` (at most
   :data:`~npusuite.fraud.rules.MAX_RULE_SET_BYTES`) is parsed and compiled:
   every rule must parse, name only documented features and transaction
   fields, and type-check (:func:`~npusuite.fraud.rules.parse_rule_set`);
2. warm: the compiled set is evaluated on one synthetic transaction and must
   give one boolean per rule.
"""

from __future__ import annotations

import logging

import numpy as np

from npusuite.fraud.features import AccountState, advance
from npusuite.fraud.rules import MAX_RULE_SET_BYTES, RULES_FILE, RuleSet, parse_rule_set
from npusuite.fraud.service.adapters import synthetic_transaction
from npusuite.platform.engine.adapter import AppAdapter, WorkerKind
from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.servable import DataServable

logger = logging.getLogger(__name__)


def read_rule_set(version: ModelVersion) -> RuleSet:
    """The version's ``rules.json`` compiled.  Raises UserError (RuleError) with one line."""
    path = version.path / RULES_FILE
    try:
        if path.stat().st_size > MAX_RULE_SET_BYTES:
            raise UserError(f"{version.ref}: {RULES_FILE} is over {MAX_RULE_SET_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{version.ref}: no readable {RULES_FILE}: {exc.strerror or exc}") from None
    return parse_rule_set(raw, ref=version.ref)


class FraudRulesAdapter(AppAdapter[RuleSet]):
    """See the module rules."""

    def worker(self, version: ModelVersion) -> WorkerKind:
        return "direct"

    def build(self, version: ModelVersion, runtime) -> RuleSet:
        if not isinstance(runtime, DataServable):
            raise UserError(f"{version.ref} is a {version.manifest.kind}, not a rule set (add one with "
                            f"`npusuite fraud rules add`)")
        return read_rule_set(version)

    def warm(self, app: RuleSet) -> None:
        tx = synthetic_transaction()
        hits = app.evaluate([tx], np.array([advance(AccountState(), tx).values], dtype=np.float32))
        if hits.shape != (1, len(app.rules)):
            raise UserError(f"{app.ref}: evaluation gave shape {hits.shape} for 1 transaction and "
                            f"{len(app.rules)} rules")
