"""Typed records of a KServe v2 / OIP inference request, validated before any tensor is built.

Rules:
- The JSON header of ``POST /v2/models/{name}/infer`` must match
  :class:`InferRequest`: a non-empty ``inputs`` list of named tensors with a
  datatype and a shape of non-negative ints, optional ``outputs``, and
  ``parameters`` objects (never lists or strings).  A mismatch is a
  ``SchemaError`` (HTTP 400) naming the first bad field.
- Numbers are finite: NaN and Infinity are refused wherever a number is expected.
- Request-level ``parameters``: ``deadline_ms`` (or Triton's ``timeout`` in
  microseconds) bounds the queue wait; ``max_tokens``, ``temperature``,
  ``top_p``, ``seed`` drive a causal LM (their ranges are checked by
  :class:`~npusuite.platform.engine.sampling.SamplingParams`); unknown keys
  are kept and ignored, as the spec allows.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, StrictBool, ValidationError

from npusuite.platform.errors import SchemaError
from npusuite.platform.records import validation_reason

#: Dimensions of one tensor; deeper shapes are refused (no model of the suite takes more than 5).
MAX_RANK = 16


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class TensorParameters(_Record):
    binary_data_size: NonNegativeInt | None = None
    binary_data: StrictBool | None = None


class InferInput(_Record):
    name: str = Field(min_length=1, max_length=256)
    datatype: str = Field(max_length=16)
    shape: list[NonNegativeInt] = Field(max_length=MAX_RANK)
    parameters: TensorParameters | None = None
    data: Any = None


class RequestedOutput(_Record):
    name: str = Field(min_length=1, max_length=256)
    parameters: TensorParameters | None = None


class InferParameters(_Record):
    deadline_ms: PositiveFloat | None = None
    timeout: PositiveFloat | None = Field(None, description="Triton's queue timeout, in microseconds")
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None

    def deadline(self) -> float | None:
        if self.deadline_ms is not None:
            return self.deadline_ms
        return None if self.timeout is None else self.timeout / 1000


class InferRequest(_Record):
    id: str | None = Field(None, max_length=256)
    parameters: InferParameters | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


def parse_infer_header(data: dict) -> InferRequest:
    """Raises SchemaError naming the first bad field."""
    try:
        return InferRequest.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(validation_reason(exc, "request")) from None


def inline_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema with its ``$defs`` inlined, to embed in an OpenAPI operation."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)
