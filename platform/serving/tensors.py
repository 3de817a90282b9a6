"""KServe v2 / Triton tensor encoding: JSON ``data`` and the binary-data extension.

Rules:
- A request body is JSON, optionally followed by raw tensor bytes when the
  ``Inference-Header-Content-Length`` header gives the JSON length (Triton's
  binary extension, which ``tritonclient.http`` uses by default).  Inputs with
  ``parameters.binary_data_size`` take their bytes from there, in order.
- Anything malformed raises :class:`TensorFormatError` or ``SchemaError``
  (HTTP 400) naming the input at fault; sizes are checked against shapes
  before reshaping.  Refused: JSON values that are not numbers of the
  datatype (``null``, strings, bools in a numeric tensor, 1000 in INT8),
  floating-point data that is not finite (NaN, Infinity, or a value that
  overflows FP16/FP32), a BYTES element whose length prefix runs past its
  data, binary data that no input claims.
- Responses are JSON; an output requested with ``binary_data: true`` is sent
  in binary after the JSON header, as Triton does.  JSON cannot carry NaN or
  Infinity: an output holding them, asked for as JSON, answers HTTP 422
  (:class:`NonFiniteOutputError`) naming the output and saying to ask for it
  in binary, which carries IEEE values as they are.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np

from npusuite.platform.errors import UserError
from npusuite.platform.records import load_json_object
from npusuite.platform.serving.oip_records import InferRequest, parse_infer_header

NP = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
      "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
      "FP32": np.float32, "FP64": np.float64}
V2 = {np.dtype(v).str: k for k, v in NP.items()}


class TensorFormatError(UserError):
    """The inference request body does not follow the KServe v2 tensor format."""


def datatype_of(arr: np.ndarray) -> str:
    if arr.dtype.kind in "OUS":
        return "BYTES"
    return V2.get(arr.dtype.str, "FP32")


def _bytes_tensor(raw: bytes, name: str) -> list[bytes]:
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise TensorFormatError(f"input {name!r}: truncated BYTES tensor (a length prefix is cut off)")
        (n,) = struct.unpack_from("<I", raw, i)
        if i + 4 + n > len(raw):
            raise TensorFormatError(f"input {name!r}: BYTES element of {n} bytes runs past the end of its data")
        out.append(raw[i + 4:i + 4 + n])
        i += 4 + n
    return out


def _json_bytes(data, name: str) -> np.ndarray:
    flat = np.array(data, dtype=object).reshape(-1)
    if not all(isinstance(d, str) for d in flat):
        raise TensorFormatError(f"input {name!r}: BYTES data must be strings")
    return np.array([d.encode() for d in flat], dtype=object)


def _json_numbers(data, name: str, dtype: str) -> np.ndarray:
    flat = np.array(data, dtype=object).reshape(-1)
    if dtype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise TensorFormatError(f"input {name!r}: BOOL data must be true/false")
        return flat.astype(np.bool_)
    # bool is an int in Python, None would become NaN: only real numbers enter a numeric tensor
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat):
        bad = next(v for v in flat if not isinstance(v, int | float) or isinstance(v, bool))
        raise TensorFormatError(f"input {name!r}: {dtype} data must be numbers, got {json.dumps(bad)[:40]}")
    want = np.dtype(NP[dtype])
    if want.kind in "iu":
        info = np.iinfo(want)
        if not all(isinstance(v, int) and info.min <= v <= info.max for v in flat):
            raise TensorFormatError(f"input {name!r}: {dtype} data must be integers in [{info.min}, {info.max}]")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(flat.tolist(), dtype=want)


def parse_request(body: bytes, header_length: str | None) -> tuple[InferRequest, dict[str, np.ndarray]]:
    """Return (the typed JSON header, named input arrays).  Raises TensorFormatError / SchemaError (HTTP 400)."""
    try:
        json_len = int(header_length) if header_length else len(body)
    except ValueError:
        raise TensorFormatError("Inference-Header-Content-Length is not an integer") from None
    if not 0 <= json_len <= len(body):
        raise TensorFormatError(f"Inference-Header-Content-Length {json_len} is outside the body of {len(body)} "
                                f"bytes")
    request = parse_infer_header(load_json_object(body[:json_len]))
    offset, binary = 0, body[json_len:]
    arrays = {}
    for spec in request.inputs:
        name, dtype, shape = spec.name, spec.datatype, spec.shape
        if dtype != "BYTES" and dtype not in NP:
            raise TensorFormatError(f"input {name!r}: unknown datatype {dtype!r}")
        if name in arrays:
            raise TensorFormatError(f"input {name!r} is given twice")
        count = math.prod(shape)
        size = spec.parameters.binary_data_size if spec.parameters else None
        try:
            if size is not None:
                raw = binary[offset:offset + size]
                if len(raw) != size:
                    raise TensorFormatError(f"input {name!r}: binary data shorter than binary_data_size")
                offset += size
                if dtype == "BYTES":
                    arr = np.array(_bytes_tensor(raw, name), dtype=object)
                else:
                    if size % np.dtype(NP[dtype]).itemsize:
                        raise TensorFormatError(f"input {name!r}: {size} bytes is not a whole number of {dtype}")
                    arr = np.frombuffer(raw, dtype=NP[dtype])
            else:
                if spec.data is None:
                    raise TensorFormatError(f"input {name!r}: no 'data' and no binary_data_size")
                arr = _json_bytes(spec.data, name) if dtype == "BYTES" else _json_numbers(spec.data, name, dtype)
            if arr.size != count:
                raise TensorFormatError(f"input {name!r}: {arr.size} values do not fill shape {shape}")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise TensorFormatError(f"input {name!r}: {dtype} data must be finite numbers within range "
                                        f"(no null, NaN or Infinity)")
            arrays[name] = arr.reshape(shape)
        except (ValueError, TypeError, OverflowError) as exc:
            raise TensorFormatError(f"input {name!r}: {exc}") from None
    if offset != len(binary):
        raise TensorFormatError(f"{len(binary) - offset} bytes of binary data follow the inputs that no input "
                                f"claims")
    return request, arrays


class NonFiniteOutputError(UserError):
    """A model output holds NaN/Infinity, which JSON cannot carry (HTTP 422; binary outputs carry them)."""


def encode_response(request: InferRequest, outputs: dict[str, np.ndarray], model: str,
                    version: str) -> tuple[bytes, int | None]:
    """JSON (+ binary) response body and the JSON length when binary parts follow.

    Raises NonFiniteOutputError when an output asked for as JSON holds NaN/Infinity."""
    requested = {o.name: o for o in request.outputs or []}
    unknown = sorted(set(requested) - set(outputs))
    if unknown:
        raise TensorFormatError(f"unknown output(s) {unknown}; the model answers {sorted(outputs)}")
    names = [n for n in outputs if not requested or n in requested]
    out_json, blobs = [], []
    for name in names:
        arr = np.asarray(outputs[name])
        entry = {"name": name, "datatype": datatype_of(arr), "shape": list(arr.shape)}
        params = requested[name].parameters if name in requested else None
        want_binary = bool(params and params.binary_data)
        if want_binary and entry["datatype"] != "BYTES":
            raw = np.ascontiguousarray(arr).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        elif entry["datatype"] == "BYTES":
            entry["data"] = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in arr.reshape(-1)]
        else:
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise NonFiniteOutputError(
                    f"output {name!r} holds NaN or Infinity, which JSON cannot carry; ask for it with "
                    f"\"parameters\": {{\"binary_data\": true}} to get the raw values")
            entry["data"] = arr.reshape(-1).tolist()
        out_json.append(entry)
    body = {"model_name": model, "model_version": version, "outputs": out_json}
    if request.id is not None:
        body["id"] = request.id
    text = json.dumps(body, allow_nan=False).encode()
    if not blobs:
        return text, None
    return text + b"".join(blobs), len(text)
