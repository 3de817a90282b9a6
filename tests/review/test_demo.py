"""The review demo step starts a working app: users and token in private files, alerts from Kafka."""

from __future__ import annotations

import json
import stat
import uuid

import httpx
import pytest
from kafka import KafkaProducer

from npusuite.platform.demo import DemoContext
from npusuite.review.consumer import wait_until
from npusuite.review.demo import step

pytestmark = pytest.mark.kafka


def test_demo_step(tmp_path, kafka_bootstrap, mk):
    ctx = DemoContext(tmp_path, kafka_bootstrap, "admin-token-for-test")
    try:
        step(ctx)
        url, token = ctx.shared["review_url"], ctx.shared["review_ingest_token"]
        users_file = tmp_path / "review-demo-users"
        assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "review-ingest-token").stat().st_mode) == 0o600
        name, role, password = users_file.read_text().splitlines()[0].split("\t")
        assert (name, role) == ("analyst", "analyst")
        assert not any(password in note for note in ctx.notes)
        assert str(users_file) in " ".join(ctx.notes)

        rec = mk.inspection()
        assert httpx.post(f"{url}/api/ingest/inspections", json=rec,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 201
        tx_id = f"tx-demo-{uuid.uuid4().hex[:8]}"
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send("fraud-alerts", key=b"acct-1", value=json.dumps(mk.alert(tx_id)).encode()).get(timeout=60)
        producer.close()

        client = mk.login(type("L", (), {"url": url, "passwords": {name: password}})(), name)
        assert wait_until(lambda: any(c["external_id"] == tx_id for c in client.get("/api/cases").json()["cases"]),
                          timeout_s=90)
    finally:
        ctx.stop_all()
    # A second start reuses the same users and token.
    ctx2 = DemoContext(tmp_path, kafka_bootstrap, "admin-token-for-test")
    try:
        step(ctx2)
        assert ctx2.shared["review_ingest_token"] == token
    finally:
        ctx2.stop_all()
