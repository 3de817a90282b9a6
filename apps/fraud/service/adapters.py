"""The fraud scorer's app adapters: what a fast-model or LLM version must be before the engine switches to it.

Both run inside the platform engine's load (see
:mod:`npusuite.platform.engine.adapter`): an exception here refuses the
version (``SwapError``) and the serving version keeps scoring, so a promoted
model that does not fit this code never reaches ``score_batch``.

:class:`FraudFastAdapter` (worker ``"direct"``):

1. build: the version's card (``card.json`` in the folder, else the
   manifest's ``model_card``); its thresholds through
   :meth:`ScorerConfig.from_card` (a card without thresholds is refused);
   the feature set: the card's ``features`` must equal this code's
   :data:`~npusuite.fraud.features.FEATURE_NAMES`, names and order (a card
   without the list is a legacy card, trained on the default set), and the
   module's input width must be that many features;
2. warm: score one synthetic transaction on a blank account end to end
   (features, forward pass, reason codes); a non-finite probability refuses it.

No batcher: a wave is already a batch (one Kafka poll), and the scorer's
p99 budget (< 80 ms) cannot afford a hand-off to a batcher thread and back;
the scorer runs the app under an engine lease.

:class:`FraudVerdictAdapter` (worker ``"batcher"``): the LLM verdict model
behind the engine's :class:`~npusuite.platform.engine.batcher.DynamicBatcher`
(bounded queue, deadlines); each batch is one ``label_probabilities`` call.
Warm-up asks for one verdict on a synthetic prompt.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from npusuite.fraud.bundle import CARD, read_card
from npusuite.fraud.fast_model import FastModel, FastModule
from npusuite.fraud.features import FEATURE_NAMES, AccountState, advance
from npusuite.fraud.schema import Transaction
from npusuite.fraud.scorer import ScorerConfig, TieredScorer
from npusuite.platform.engine.adapter import AppAdapter, WorkerKind, require_generative, require_tensor
from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.protocols import GenerativeRuntime, Runtime

logger = logging.getLogger(__name__)


def card_of(version: ModelVersion) -> dict:
    """A fraud version's model card: ``card.json`` in its folder, else the manifest's ``model_card``."""
    if (version.path / CARD).is_file():
        return read_card(version.path, version.ref)
    return dict((version.manifest.metadata or {}).get("model_card") or {})


def synthetic_transaction() -> Transaction:
    """One plausible card-present purchase, for warm-ups (never published)."""
    return Transaction(transaction_id="warmup-0", timestamp=datetime(2024, 1, 1, 12, tzinfo=UTC),
                       account_id="warmup-account", card_id="warmup-card", amount=42.0, currency="EUR",
                       merchant_id="warmup-merchant", merchant_category="5411", channel="card_present",
                       country="DE")


@dataclass(frozen=True)
class FastApp:
    """A fast-model version as the scorer uses it: the model, its card and its thresholds."""

    model: FastModel
    config: ScorerConfig

    @property
    def ref(self) -> str:
        return self.model.ref

    @property
    def card(self) -> dict:
        return self.model.card


class FraudFastAdapter(AppAdapter[FastApp]):
    """See the module rules.  ``threshold_overrides``: the CLI's ``--grey-low`` etc. (None = the card's)."""

    def __init__(self, **threshold_overrides: float | None) -> None:
        self.overrides = threshold_overrides

    def worker(self, version: ModelVersion) -> WorkerKind:
        return "direct"

    def build(self, version: ModelVersion, runtime: Runtime) -> FastApp:
        module = require_tensor(runtime, version).module
        if not isinstance(module, FastModule):
            raise UserError(f"{version.ref} is a {type(module).__name__}, not a fraud fast model "
                            "(fraud-mlp or fraud-gbm)")
        card = card_of(version)
        try:
            config = ScorerConfig.from_card(card, **self.overrides)
        except ValueError as exc:
            raise UserError(f"{version.ref}: {exc} (train it with `npusuite fraud train`)") from None
        width = int(module.mean.numel())
        if width != len(FEATURE_NAMES):
            raise UserError(f"{version.ref} takes {width} features, this code computes {len(FEATURE_NAMES)}: "
                            f"retrain it with `npusuite fraud train`")
        model = FastModel(module, version.ref, card)
        TieredScorer(model, None, config)  # refuses a card listing another feature set (names or order)
        return FastApp(model, config)

    def warm(self, app: FastApp) -> None:
        tx = synthetic_transaction()
        probs, _ = app.model.contributions(np.array([advance(AccountState(), tx).values], dtype=np.float32))
        if not all(math.isfinite(p) for p in np.asarray(probs).tolist()):
            raise UserError(f"{app.ref} gives a non-finite probability on a plain purchase")
        TieredScorer(app.model, None, app.config).score_batch([(tx, AccountState())])


class FraudVerdictAdapter(AppAdapter[GenerativeRuntime]):
    """See the module rules: prompts (an object array ``prompt``) in, ``p_fraud`` out."""

    def worker(self, version: ModelVersion) -> WorkerKind:
        return "batcher"

    def build(self, version: ModelVersion, runtime: Runtime) -> GenerativeRuntime:
        return require_generative(runtime, version)

    def warm(self, app: GenerativeRuntime) -> None:
        from npusuite.fraud.llm_verdict import prompt_for

        tx = synthetic_transaction()
        prompt = prompt_for(tx, advance(AccountState(), tx))
        p = float(self.predict(app, {"prompt": np.array([prompt], dtype=object)})["p_fraud"][0])
        if not math.isfinite(p):
            raise UserError("the verdict model gives a non-finite probability")

    def predict(self, app: GenerativeRuntime, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from npusuite.fraud.llm_verdict import LABELS

        probs = app.label_probabilities(list(inputs["prompt"]), list(LABELS))[:, 0]
        return {"p_fraud": probs.double().numpy()}
