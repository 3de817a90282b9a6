"""docs/contracts is what the records generate; the AsyncAPI document has the shape AsyncAPI 3.0 requires."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from npusuite.platform.cli import main
from npusuite.platform.contracts import catalogue, generate

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "contracts"


def test_docs_contracts_is_up_to_date(tmp_path):
    generate.write(tmp_path)
    stale = generate.stale(DOCS)
    assert not stale, f"docs/contracts is stale ({', '.join(stale)}): run `{generate.GENERATE_COMMAND}`"
    for name in generate.render():
        assert (tmp_path / name).read_bytes() == (DOCS / name).read_bytes()


def test_rendering_is_deterministic():
    assert generate.render() == generate.render()
    assert all(text.endswith("\n") and "\r" not in text for text in generate.render().values())


def test_check_refuses_a_stale_folder_in_one_line_with_exit_2(tmp_path, capsys):
    generate.write(tmp_path)
    (tmp_path / "fraud-scores.schema.json").write_text("{}\n")
    (tmp_path / "gone.schema.json").write_text("{}\n")
    with pytest.raises(SystemExit) as exc:
        main(["contracts", "check", "--dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("npusuite: error:") and "\n" not in err
    assert "fraud-scores.schema.json" in err and "gone.schema.json" in err and "contracts generate" in err
    with pytest.raises(SystemExit) as exc:
        main(["contracts", "generate", "--out", str(tmp_path)])
    assert exc.value.code == 0 and not (tmp_path / "gone.schema.json").exists()
    assert generate.stale(tmp_path) == []


def test_asyncapi_document_structure():
    doc = yaml.safe_load(generate.render()[generate.ASYNCAPI_FILE])
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] and doc["info"]["version"]
    channels, messages = doc["channels"], doc["components"]["messages"]
    assert {c["address"] for c in channels.values()} == {t.name for t in catalogue.TOPICS}
    files = set(generate.render())
    for cid, channel in channels.items():
        for ref in channel["messages"].values():
            name = ref["$ref"].removeprefix("#/components/messages/")
            message = messages[name]
            assert message["bindings"]["kafka"]["key"]["type"] == "string"
            payload = message["payload"]
            assert payload.get("$ref") in files or payload.get("format") == "binary", cid
            if "headers" in message:
                assert message["headers"]["$ref"] in files
    for oid, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), oid
        cid = op["channel"]["$ref"].removeprefix("#/channels/")
        assert cid in channels
        for ref in op["messages"]:  # an operation's messages must be its channel's
            assert ref["$ref"].startswith(f"#/channels/{cid}/messages/")
    actions = {(op["action"], op["channel"]["$ref"]) for op in doc["operations"].values()}
    assert ("send", "#/channels/fraudScores") in actions and ("receive", "#/channels/fraudAlerts") in actions
    assert ("receive", "#/channels/transactions") in actions and ("send", "#/channels/inspectionResults") in actions


def test_schemas_carry_the_records_rules():
    import json

    score = json.loads(generate.render()["fraud-scores.schema.json"])
    assert score["properties"]["score"]["maximum"] == 1.0
    assert "reason_codes" in score["properties"] and "reason_codes" not in score["required"]
    dlq = json.loads(generate.render()["transactions-dlq.headers.schema.json"])
    assert set(dlq["properties"]) == {"npusuite.dlq.reason", "npusuite.dlq.source"}
