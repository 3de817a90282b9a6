"""The wire records: producers' output passes the consumers' parsers, old producers stay valid, hostile input
is a SchemaError or a bounded dead-letter header, and the binary formats match their encoders."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from npusuite.fraud.service import account_store, messages
from npusuite.platform.contracts import dead_letter
from npusuite.platform.contracts.account_state import VALUE_HEADER_FORMAT, ChangelogValueHeader
from npusuite.platform.contracts.alert import FraudAlert, build_alert, encode_alert, parse_fraud_alert
from npusuite.platform.contracts.dead_letter import DeadLetterHeaders
from npusuite.platform.contracts.inspection import build_inspection_result, parse_inspection_result
from npusuite.platform.contracts.score import SCORE_FIELDS, FraudScore, encode_score, score_fields
from npusuite.platform.contracts.transaction import parse_transaction
from npusuite.platform.errors import SchemaError
from npusuite.review import consumer

TX = {"transaction_id": "T1", "timestamp": "2026-03-02T00:01:16Z", "account_id": "A1", "card_id": "C1",
      "amount": 12.5, "currency": "EUR", "merchant_id": "M1", "merchant_category": "5411", "channel": "ecommerce",
      "country": "DE", "lat": None, "lon": None, "device_id": "D1", "ip": "10.1.2.3"}
SCORE = {"transaction_id": "T1", "score": 0.93, "decision": "decline", "reasons": ["amount 14x account median"],
         "model": "fraud-fast@3", "latency_ms": 1.5}


def raw(**changes) -> bytes:
    return json.dumps({**TX, **changes}).encode()


def test_a_score_without_reason_codes_from_an_older_producer_is_valid():
    assert FraudScore.model_validate(SCORE).reason_codes == []
    alert = parse_fraud_alert({**SCORE, "transaction": TX})
    assert alert.reason_codes == [] and alert.reasons == SCORE["reasons"]


def test_reason_codes_must_match_the_reasons_one_for_one():
    assert FraudScore.model_validate({**SCORE, "reason_codes": ["amount_spike"]}).reason_codes == ["amount_spike"]
    with pytest.raises(ValidationError, match="reason_codes has 2 entries for 1 reasons"):
        FraudScore.model_validate({**SCORE, "reason_codes": ["amount_spike", "new_device"]})
    with pytest.raises(SchemaError, match="reason_codes"):
        parse_fraud_alert({**SCORE, "reason_codes": ["x" * 65], "transaction": TX})


@pytest.mark.parametrize("bad", [{"score": float("nan")}, {"score": 1.5}, {"latency_ms": -1},
                                 {"reasons": [""]}, {"model": ""}, {"transaction_id": "x" * 129}])
def test_a_score_that_breaks_a_rule_is_refused(bad):
    with pytest.raises(ValidationError):
        FraudScore.model_validate({**SCORE, **bad})


@settings(max_examples=200, deadline=None)
@given(score=st.floats(0, 1), latency=st.floats(0, 1e9, allow_infinity=False),
       reasons=st.lists(st.text(min_size=1, max_size=40), max_size=4),
       decision=st.sampled_from(["approve", "review", "decline"]), llm=st.booleans())
def test_the_fast_score_encoder_writes_exactly_the_records_json(score, latency, reasons, decision, llm):
    codes = ["amount_spike"] * len(reasons) if llm else []
    fields = score_fields("T1", score, decision, reasons, codes, "fast@3+llm@2" if llm else "fast@3", latency)
    assert tuple(fields) == SCORE_FIELDS
    record = FraudScore.model_validate(fields)
    assert encode_score(fields) == record.model_dump_json().encode()
    assert FraudScore.model_validate_json(encode_score(fields)) == record


def test_the_scorer_alert_passes_the_review_apps_parser_and_keeps_the_last_twenty():
    recent = [raw(transaction_id=f"R{i}", is_fraud=True) for i in range(25)]
    fields = score_fields("T1", 0.9, "review", ["a", "b"], ["amount_spike", "new_device"], "fast@3", 1.0)
    value = messages.alert_value(fields, parse_transaction(raw()), recent, {"f": np.float32(1.5)}, None)
    alert = parse_fraud_alert(value)
    assert isinstance(alert, FraudAlert) and alert.reason_codes == ["amount_spike", "new_device"]
    assert [t.transaction_id for t in alert.account_recent] == [f"R{i}" for i in range(5, 25)]
    assert "is_fraud" not in value.decode()  # unknown fields of the incoming messages are not forwarded
    assert encode_alert(alert) == encode_alert(FraudAlert.model_validate_json(encode_alert(alert)))


def test_an_alert_with_a_non_finite_feature_is_never_built():
    fields = score_fields("T1", 0.9, "review", ["a"], [], "fast@3", 1.0)
    with pytest.raises(ValidationError):
        build_alert(fields, parse_transaction(raw()), [], {"f": math.inf}, None)


def test_dead_letter_headers_are_one_bounded_line_whatever_the_reason():
    headers = DeadLetterHeaders.of("bad \ud800\n" + "x" * 1000, "transactions", 3, 42, limit=300)
    wire = dict(messages.dlq_headers("bad \ud800\n" + "x" * 1000, "transactions", 3, 42))
    assert wire[dead_letter.REASON_HEADER] == headers.reason.encode() and len(headers.reason) == 300
    assert "\n" not in headers.reason and headers.reason.endswith("\u2026")
    assert DeadLetterHeaders.from_kafka(list(wire.items())).source == "transactions/3@42"
    with pytest.raises(ValidationError):
        DeadLetterHeaders.from_kafka([(dead_letter.REASON_HEADER, b"why")])


def test_both_dead_letter_queues_use_the_contracts_header_names():
    assert (consumer.DLQ_REASON_HEADER, consumer.DLQ_SOURCE_HEADER) == (dead_letter.REASON_HEADER,
                                                                         dead_letter.SOURCE_HEADER)
    assert (messages.DLQ_REASON_HEADER, messages.DLQ_SOURCE_HEADER) == (dead_letter.REASON_HEADER,
                                                                         dead_letter.SOURCE_HEADER)


def test_the_changelog_header_is_what_the_scorer_encodes():
    value = account_store.encode_value(7, "T\u00e91", b"snap", raw())
    header = ChangelogValueHeader.unpack(value)
    assert (header.seq, header.transaction_id_bytes, header.snapshot_bytes) == (7, 4, 4)  # bytes, not characters
    assert value.startswith(header.pack()) and account_store._HEADER.format == VALUE_HEADER_FORMAT
    with pytest.raises(ValueError):
        ChangelogValueHeader.unpack(b"short")


class _Frame:
    timestamp = 1772409676.5


class _Verdict:
    frame = _Frame()
    score, threshold, defective, boxes, model, product = 0.8, 0.5, True, [(1, 2, 10, 10)], "line-a@1", "bottle"


def _png(h: int, w: int) -> bytes:
    return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()


def test_one_inspection_builder_whose_output_the_review_app_accepts():
    rec = build_inspection_result(_Verdict(), record_id="box:1", line="line-a", image_png=_png(32, 32),
                                  heatmap_png=None, model="bundle@2")
    parsed = parse_inspection_result(rec.model_dump_json())
    assert parsed == rec and parsed.model == "bundle@2" and parsed.product == "bottle"
    assert parsed.timestamp.isoformat() == "2026-03-02T00:01:16.500000+00:00"


def test_an_inspection_whose_box_leaves_the_image_is_refused():
    rec = build_inspection_result(_Verdict(), record_id="box:1", line="line-a", image_png=_png(8, 8),
                                  heatmap_png=_png(8, 8))
    with pytest.raises(SchemaError, match="lies outside the 8x8 image"):
        parse_inspection_result(rec.model_dump(mode="json"))
    with pytest.raises(ValidationError):
        build_inspection_result(_Verdict(), record_id="box:1", line="x" * 65, image_png=_png(8, 8),
                                heatmap_png=None)


def test_an_edge_agent_whose_line_no_result_could_carry_is_refused_at_start(tmp_path):
    from npusuite.edge.runtime import AgentRuntime, RuntimeConfig
    from npusuite.platform.errors import UserError

    with pytest.raises(UserError, match="--line and --product must be 1-64 characters"):
        AgentRuntime(RuntimeConfig(box_dir=tmp_path, device_id="box-1", source="x", line="l" * 65), None, [])
