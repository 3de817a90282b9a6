"""The generated contract files: one JSON Schema per record-valued topic and file, and an AsyncAPI 3.0 document.

Rules:

* :func:`render` is pure and deterministic: the same catalogue gives the same
  bytes (keys sorted, no timestamps, ``\\n`` line ends, one trailing newline).
* Files: ``<topic>.schema.json`` (the value record), ``<topic>.headers.schema.json``
  (the headers record), ``<file>.schema.json`` (a JSONL line), ``asyncapi.yaml``
  (``asyncapi: 3.0.0``; channels with ``address`` = the topic's default name,
  messages whose ``payload``/``headers`` reference the schema files, the key
  as the message's Kafka binding, a ``send``/``receive`` operation for each
  topic the suite writes/reads).
* :func:`write` replaces the generated files in a folder and removes generated
  files that the catalogue no longer names; :func:`stale` lists what differs
  (changed, missing or left over), so a test and ``npusuite contracts check``
  can refuse an out-of-date ``docs/contracts``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from npusuite.platform.contracts import catalogue
from npusuite.platform.contracts.catalogue import SUITE, TopicSpec

logger = logging.getLogger(__name__)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.yaml"
#: The version of the wire formats as a whole (semantic: minor = compatible additions).
WIRE_FORMATS_VERSION = "1.2.0"
KAFKA_BINDING_VERSION = "0.5.0"
GENERATE_COMMAND = "npusuite contracts generate --out docs/contracts"


def _dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def record_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def value_file(spec: TopicSpec) -> str:
    return f"{spec.name}.schema.json"


def headers_file(spec: TopicSpec) -> str:
    return f"{spec.name}.headers.schema.json"


def _message(spec: TopicSpec) -> dict[str, Any]:
    if spec.value is not None:
        payload: dict[str, Any] = {"$ref": value_file(spec)}
        content_type = "application/json"
    else:
        payload = {"type": "string", "format": "binary", "description": spec.value_text}
        content_type = "application/octet-stream"
    message: dict[str, Any] = {
        "name": spec.slug, "title": spec.name, "summary": spec.summary, "contentType": content_type,
        "payload": payload,
        "bindings": {"kafka": {"key": {"type": "string", "description": spec.key},
                               "bindingVersion": KAFKA_BINDING_VERSION}},
    }
    if spec.headers is not None:
        message["headers"] = {"$ref": headers_file(spec)}
    return message


def _channel(spec: TopicSpec) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": spec.name, "title": spec.name, "summary": spec.summary,
        "description": f"Ordering: {spec.ordering}. Delivery: {spec.delivery}. "
                       f"Producers: {'; '.join(spec.producers)}. "
                       f"Consumers in the suite: {'; '.join(spec.consumers) or 'none'}.",
        "messages": {spec.slug: {"$ref": f"#/components/messages/{spec.slug}"}},
    }
    if spec.compacted:
        channel["bindings"] = {"kafka": {"topicConfiguration": {"cleanup.policy": ["compact"]},
                                         "bindingVersion": KAFKA_BINDING_VERSION}}
    return channel


def _operation(spec: TopicSpec, action: str, who: tuple[str, ...]) -> dict[str, Any]:
    return {"action": action, "channel": {"$ref": f"#/channels/{spec.slug}"},
            "summary": f"{'Sent' if action == 'send' else 'Received'} by {'; '.join(who)}.",
            "messages": [{"$ref": f"#/channels/{spec.slug}/messages/{spec.slug}"}]}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic in the catalogue."""
    channels, operations, messages = {}, {}, {}
    for spec in catalogue.TOPICS:
        channels[spec.slug] = _channel(spec)
        messages[spec.slug] = _message(spec)
        senders = tuple(p for p in spec.producers if p in SUITE)
        receivers = tuple(c for c in spec.consumers if c in SUITE)
        if senders:
            operations[f"send{spec.slug[0].upper()}{spec.slug[1:]}"] = _operation(spec, "send", senders)
        if receivers:
            operations[f"receive{spec.slug[0].upper()}{spec.slug[1:]}"] = _operation(spec, "receive", receivers)
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "npusuite wire formats", "version": WIRE_FORMATS_VERSION,
                 "description": "Kafka topics of the npusuite fraud scorer, review app and edge agent. Generated "
                                f"by `{GENERATE_COMMAND}` from npusuite.platform.contracts; see "
                                "docs/contracts.md for keys, ordering, exactly-once and evolution rules. Topic "
                                "names are the defaults; every one is configurable."},
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                              "description": "The broker of `npusuite kafka start` (any Kafka 3.x/4.x broker)."}},
        "channels": channels, "operations": operations, "components": {"messages": messages},
    }


def render() -> dict[str, str]:
    """File name -> content of every generated file."""
    out: dict[str, str] = {}
    for spec in catalogue.TOPICS:
        if spec.value is not None:
            out[value_file(spec)] = _dump_json(record_schema(spec.value))
        if spec.headers is not None:
            out[headers_file(spec)] = _dump_json(record_schema(spec.headers))
    for file_spec in catalogue.FILES:
        out[f"{file_spec.name}.schema.json"] = _dump_json(record_schema(file_spec.record))
    out[ASYNCAPI_FILE] = yaml.safe_dump(asyncapi_document(), sort_keys=True, allow_unicode=True, width=100,
                                        default_flow_style=False)
    return out


def _generated_names(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.name.endswith(".schema.json") or p.name == ASYNCAPI_FILE}


def stale(folder: Path) -> list[str]:
    """Generated files in ``folder`` that differ from :func:`render`, are missing, or are left over (sorted)."""
    expected = render()
    out = [name for name, text in expected.items()
           if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text]
    out += sorted(_generated_names(folder) - set(expected))
    return sorted(out)


def write(folder: Path) -> list[str]:
    """Write every generated file into ``folder`` (created); remove left-over ones.  Returns what changed."""
    changed = stale(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected = render()
    for name in _generated_names(folder) - set(expected):
        (folder / name).unlink()
    for name, text in expected.items():
        (folder / name).write_text(text, encoding="utf-8", newline="\n")
    logger.info("wrote %d contract files to %s (%d changed)", len(expected), folder, len(changed))
    return changed
