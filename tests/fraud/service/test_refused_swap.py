"""Issue 13's done-when test for the fraud scorer: a promoted fast model that does not fit the scorer is refused
by the engine BEFORE the switch, while two real ``npusuite fraud run`` processes consume a live stream.

Two bad versions are promoted one after the other: one whose card has no thresholds, one trained (per its
card) on another feature set.  Each is refused by both scorers (logged as a refusal); they keep scoring with
version 1, neither exits, every transaction gets exactly one score and nothing is dead-lettered.
"""

from __future__ import annotations

import json
import shutil

import pytest

from npusuite.platform.repository import ModelRepository
from tests.fraud.service.test_stream import ScoreWatcher, assert_exactly_once, wait_until

pytestmark = pytest.mark.kafka


def _bad_version(repo: ModelRepository, work, kind: str) -> str:
    """Version 1's files with an edited card, added as a new (unpromoted) version; returns its number."""
    src = work / f"bad-{kind}"
    shutil.copytree(repo.resolve("fraud-fast", "1").path, src)
    (src / "manifest.json").unlink(missing_ok=True)
    card = json.loads((src / "card.json").read_text())
    if kind == "no-thresholds":
        del card["thresholds"]
    else:  # another feature set: same width, another order (a model trained on it reads columns wrongly)
        card["features"] = list(reversed(card["features"]))
    (src / "card.json").write_text(json.dumps(card))
    return repo.add("fraud-fast", src).version


def test_promoted_fast_model_that_does_not_fit_is_refused_and_two_scorers_keep_scoring(
        harness, stream_transactions, tmp_path):
    h = harness
    shutil.copytree(h.model_root, tmp_path / "models")  # promote in a copy; other tests keep version 1
    h.model_root = tmp_path / "models"
    repo = ModelRepository(h.model_root)
    bad = [_bad_version(repo, tmp_path, kind) for kind in ("no-thresholds", "other-features")]
    transactions = stream_transactions[:6000]
    first, second = transactions[:3000], transactions[3000:]
    h.create_topics(partitions=4)
    scorers = [h.start("s0"), h.start("s1")]
    h.produce([(tx["account_id"].encode(), json.dumps(tx).encode()) for tx in first])
    watcher = ScoreWatcher(h)
    try:
        watcher.wait_for(1)
        for version in bad:
            repo.promote("fraud-fast", version)  # while they consume
            for s in scorers:
                wait_until(lambda s=s, v=version: f"fraud-fast@production -> {v} refused" in s.log.read_text(),
                           f"{s.instance} to refuse fraud-fast@{version}", logs=h.logs)
        h.produce([(tx["account_id"].encode(), json.dumps(tx).encode()) for tx in second])
    finally:
        watcher.close()
    scores = [json.loads(r.value) for r in h.read_committed(h.topics.scores, expect=len(transactions))]
    assert_exactly_once(h, transactions, [], scores)  # also: the dead-letter topic is empty
    assert {s["model"] for s in scores} == {"fraud-fast@1"}
    for s in scorers:
        assert s.proc.poll() is None, f"{s.instance} exited\n{h.logs()}"
        assert "now serving fraud-fast@3" not in s.log.read_text()
        assert s.terminate() == 0, h.logs()
