"""Shadow scoring on the real broker (issue 13 part 5's "Done when"): ``fraud run --shadow challenger`` writes exactly
one champion and one challenger score per transaction, the champion's are what it scores without a challenger,
both are computed from the same account state, then ``fraud compare`` reports the figures (JSON + PNG) and
``models promote --require-comparison`` accepts the challenger only once a passed comparison is attached."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from npusuite.fraud.fast_model import FastModel
from npusuite.fraud.features import StreamFeaturizer
from npusuite.fraud.schema import parse_transaction
from npusuite.fraud.service.shadow import decide
from npusuite.platform.repository import ModelRepository

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def labelled_stream() -> tuple[list[dict], list[dict]]:
    """~2.5k time-ordered transactions of 100 accounts with 3% fraud, and their labels."""
    from npusuite.fraud.generator import GeneratorConfig, generate

    return generate(GeneratorConfig(accounts=100, days=8, seed=21, fraud_rate=0.03), progress=False)


def offline_probabilities(root, transactions: list[dict], version: str) -> tuple[np.ndarray, dict]:
    """One offline pass of the stream's features through ``fraud-fast@version``: (probabilities, card)."""
    mv = ModelRepository(root).resolve("fraud-fast", version)
    model = FastModel.load(mv.path, mv.ref)
    features = StreamFeaturizer()
    x = np.array([features.advance(parse_transaction(tx)).values for tx in transactions], dtype=np.float32)
    return model.predict(x), model.card


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", *args], capture_output=True, text=True)


# slow-marked to keep the default run short (`make test-all` runs it): ~14 s
@pytest.mark.slow
def test_shadow_run_writes_one_challenger_score_per_transaction_and_compare_reports_it(harness, labelled_stream,
                                                                                    tmp_path):
    transactions, labels = labelled_stream
    h = harness
    shutil.copytree(h.model_root, tmp_path / "models")  # attach and promote in a copy; other tests keep version 1
    h.model_root = root = tmp_path / "models"
    ModelRepository(root).promote("fraud-fast", "2", "challenger")
    shadow_topic = f"shadow-{h.suffix}"
    h.create_topics(partitions=4)
    scorer = h.start("s0", "fraud-fast", "--shadow", "challenger", "--shadow-topic", shadow_topic,
                     "--metrics-port", "0")
    h.produce([(tx["account_id"].encode(), json.dumps(tx).encode()) for tx in transactions])
    champion = [json.loads(r.value) for r in h.read_committed(h.topics.scores, expect=len(transactions))]
    shadow = [json.loads(r.value) for r in h.read_committed(shadow_topic, expect=len(transactions), quiet_s=1)]
    assert scorer.terminate() == 0, h.logs()

    ids = [tx["transaction_id"] for tx in transactions]
    for side in (champion, shadow):  # exactly one of each per transaction
        counts = Counter(s["transaction_id"] for s in side)
        assert set(counts) == set(ids) and set(counts.values()) == {1}, h.logs()
    assert {s["model"] for s in champion} == {"fraud-fast@1"}
    assert {s["model"] for s in shadow} == {"fraud-fast@2"}
    assert all(s["reasons"] == [] and s["latency_ms"] >= 0 for s in shadow)

    # Both versions saw the same account state before each transaction (one offline pass of the stream), and
    # the champion's scores and decisions are what it gives alone: the challenger changed nothing.
    live = {"1": {s["transaction_id"]: s for s in champion}, "2": {s["transaction_id"]: s for s in shadow}}
    for version in ("1", "2"):
        p, card = offline_probabilities(root, transactions, version)
        got = np.array([live[version][t]["score"] for t in ids])
        assert np.abs(got - p).max() < 1e-5, f"fraud-fast@{version} scored other features than an offline pass"
        t = card["thresholds"]
        clear = (np.abs(p - t["review"]) > 1e-5) & (np.abs(p - t["decline"]) > 1e-5)
        want = [decide(float(q), t["review"], t["decline"]) for q in p]
        assert all(live[version][i]["decision"] == w for i, w, c in zip(ids, want, clear, strict=True) if c)

    labels_file = tmp_path / "labels.jsonl"
    labels_file.write_text("".join(json.dumps(lab) + "\n" for lab in labels))
    promote = ["models", "promote", "--root", str(root), "fraud-fast", "2", "--require-comparison"]
    refused = cli(*promote)
    assert refused.returncode == 2 and "fraud-fast@2 has no comparison" in refused.stderr, refused.stderr

    out = tmp_path / "cmp"
    done = cli("fraud", "compare", "--bootstrap", h.bootstrap, "--scores-topic", h.topics.scores, "--shadow-topic",
               shadow_topic, "--labels", str(labels_file), "--out", str(out), "--model-root", str(root),
               "--ap-tolerance", "1", "--recall-tolerance", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "compare.json").read_text())
    assert report["champion"] == "fraud-fast@1" and report["challenger"] == "fraud-fast@2"
    assert report["transactions"] == len(transactions) and report["fraud"] == sum(lab["is_fraud"] for lab in labels)
    assert sum(sum(row.values()) for row in report["agreement"].values()) == len(transactions)
    for figures in (report["champion_figures"], report["challenger_figures"]):
        assert 0 < figures["average_precision"] <= 1 and 0 <= figures["recall_at_budget"] <= 1
        assert figures["latency_ms_p99"] >= figures["latency_ms_p50"] > 0
    assert report["passed"] is True  # tolerance 1: the gate's acceptance path (its refusal: test_compare.py)
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")

    accepted = cli(*promote)
    assert accepted.returncode == 0, accepted.stderr
    assert ModelRepository(root).aliases("fraud-fast")["production"] == "2"
