"""The novelty tier's app adapter: what a novelty-model version must be before the engine switches to it.

Runs inside the platform engine's load (see :mod:`npusuite.platform.engine.adapter`),
like :class:`~.adapters.FraudFastAdapter`: an exception here refuses the version
(``SwapError``) and the serving version keeps scoring.  Worker ``"direct"``:
the scorer runs the model on the batch's feature rows under an engine lease
(one forward pass per batch, no hand-off to a batcher thread).

1. build: the module must be a :class:`~npusuite.fraud.novelty.NoveltyAE`
   taking this code's feature count; the card's ``features`` must equal
   :data:`~npusuite.fraud.features.FEATURE_NAMES` (names and order); its
   ``calibration`` and ``combination`` must resolve
   (:meth:`~npusuite.fraud.novelty_rule.NoveltyConfig.from_card`); a model
   with a sequence detector must read the history the states keep (at most
   :data:`~npusuite.fraud.features.HISTORY_ROWS` rows), carry its
   calibration errors, and its card the forest's own quantiles;
2. warm: one synthetic transaction on a blank account, and (with a sequence
   detector) the same transaction after it, give a finite novelty.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from npusuite.fraud.features import FEATURE_NAMES, HISTORY_ROWS, AccountState, advance, history_block
from npusuite.fraud.novelty import NoveltyAE, NoveltyModel
from npusuite.fraud.novelty_rule import NoveltyConfig
from npusuite.fraud.service.adapters import card_of, synthetic_transaction
from npusuite.platform.engine.adapter import AppAdapter, WorkerKind, require_tensor
from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.protocols import Runtime

logger = logging.getLogger(__name__)


class FraudNoveltyAdapter(AppAdapter[NoveltyModel]):
    """See the module rules."""

    def worker(self, version: ModelVersion) -> WorkerKind:
        return "direct"

    def build(self, version: ModelVersion, runtime: Runtime) -> NoveltyModel:
        module = require_tensor(runtime, version).module
        if not isinstance(module, NoveltyAE):
            raise UserError(f"{version.ref} is a {type(module).__name__}, not a fraud novelty model "
                            f"(fraud-novelty-ae)")
        card = card_of(version)
        trained_on = card.get("features")
        if trained_on is None or list(trained_on) != list(FEATURE_NAMES) or module.mean.numel() != len(FEATURE_NAMES):
            raise UserError(f"{version.ref} was trained on another feature set than this code's "
                            f"{len(FEATURE_NAMES)} features: retrain it with `npusuite fraud train-novelty`")
        try:
            config = NoveltyConfig.from_card(card)
        except ValueError as exc:
            raise UserError(f"{version.ref}: {exc} (train it with `npusuite fraud train-novelty`)") from None
        if module.sequence is not None:
            if not 0 < module.history <= HISTORY_ROWS:
                raise UserError(f"{version.ref} reads {module.history} previous transactions; the account states "
                                f"keep {HISTORY_ROWS}")
            if not module.sequence.calibration.numel() or "forest_quantiles" not in card.get("calibration", {}):
                raise UserError(f"{version.ref} has a sequence detector without its calibration: retrain it with "
                                f"`npusuite fraud train-novelty --sequence`")
        return NoveltyModel(module, version.ref, card, config)

    def warm(self, app: NoveltyModel) -> None:
        tx = synthetic_transaction()
        state = AccountState()
        rows, before = [advance(state, tx).values], [b"", state.history]
        rows.append(advance(state, tx).values)
        x = np.array(rows if app.history else rows[:1], dtype=np.float32)
        history = history_block(before) if app.history else None
        scores = app.score(x, history, explain_all=True)
        if not all(math.isfinite(v) for v in [*scores.novelty.tolist(), *scores.groups.ravel().tolist()]):
            raise UserError(f"{app.ref} gives a non-finite novelty on a plain purchase")
