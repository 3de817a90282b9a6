"""The fast model's training reference for drift monitoring: binned features and scores in the card.

``profile(x, scores, names)`` is written into the model card at training time
(``card["reference_profile"]``): per feature, quantile bin edges over the
training rows and the share of rows in each bin; the same for the fast
model's probabilities.  The live scorer compares its sliding window with it
(:mod:`npusuite.platform.observability.drift`).  A card without it (a model
trained before) gets no PSI series; the scorer logs that once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from npusuite.platform.observability.drift import BinnedReference, DriftWindow

KEY = "reference_profile"
SCORE = "score"


def profile(x: np.ndarray, scores: np.ndarray, names: Sequence[str], bins: int = 10) -> dict:
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] != len(names):
        raise ValueError(f"{x.shape[1]} feature columns for {len(names)} names")
    return {"bins": bins, "rows": int(x.shape[0]),
            "features": {n: BinnedReference.fit(x[:, j], bins).to_json() for j, n in enumerate(names)},
            SCORE: BinnedReference.fit(np.asarray(scores), bins).to_json()}


#: One feature row in this many is counted in the PSI window (every k-th row of the stream): 47 features x 500
#: rows cost ~3 ms a batch on a loaded core, 125 rows under 1 ms.  Scores are all counted (one column).
FEATURE_SAMPLE_EVERY = 4


def windows(card: Mapping, window: int) -> tuple[DriftWindow, DriftWindow] | None:
    """(features window, score window) from a card's profile, or None when the card has none."""
    prof = card.get(KEY)
    if not prof:
        return None
    names = list(card.get("features") or prof["features"])
    feats = {n: BinnedReference.from_json(prof["features"][n]) for n in names}
    return (DriftWindow(feats, window, sample_every=FEATURE_SAMPLE_EVERY),
            DriftWindow({SCORE: BinnedReference.from_json(prof[SCORE])}, window))
