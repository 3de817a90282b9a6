"""KServe v2 / Triton tensor encoding: JSON ``data`` and the binary-data extension.

Rules:
- A request body is JSON, optionally followed by raw tensor bytes when the
  ``Inference-Header-Content-Length`` header gives the JSON length (Triton's
  binary extension, which ``tritonclient.http`` uses by default).  Inputs with
  ``parameters.binary_data_size`` take their bytes from there, in order.
- Anything malformed raises :class:`TensorFormatError` (HTTP 400) naming the
  input at fault; sizes are checked against shapes before reshaping.
- Responses are JSON; an output requested with ``binary_data: true`` is sent
  in binary after the JSON header, as Triton does.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from npusuite.platform.errors import UserError

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


def _bytes_tensor(raw: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise TensorFormatError("truncated BYTES tensor")
        (n,) = struct.unpack_from("<I", raw, i)
        out.append(raw[i + 4:i + 4 + n])
        i += 4 + n
    return out


def parse_request(body: bytes, header_length: str | None) -> tuple[dict, dict[str, np.ndarray]]:
    """Return (the JSON header, named input arrays).  Raises TensorFormatError."""
    try:
        json_len = int(header_length) if header_length else len(body)
    except ValueError:
        raise TensorFormatError("Inference-Header-Content-Length is not an integer") from None
    try:
        header = json.loads(body[:json_len])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TensorFormatError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise TensorFormatError("request needs a non-empty 'inputs' list")
    offset, binary = 0, body[json_len:]
    arrays = {}
    for spec in header["inputs"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TensorFormatError("each input needs a 'name'")
        name, dtype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
        if dtype != "BYTES" and dtype not in NP:
            raise TensorFormatError(f"input {name!r}: unknown datatype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise TensorFormatError(f"input {name!r}: 'shape' must be a list of non-negative integers")
        count = int(np.prod(shape)) if shape else 1
        size = (spec.get("parameters") or {}).get("binary_data_size")
        try:
            if size is not None:
                raw = binary[offset:offset + int(size)]
                if len(raw) != int(size):
                    raise TensorFormatError(f"input {name!r}: binary data shorter than binary_data_size")
                offset += int(size)
                if dtype == "BYTES":
                    arr = np.array(_bytes_tensor(raw), dtype=object)
                else:
                    arr = np.frombuffer(raw, dtype=NP[dtype])
            else:
                data = spec.get("data")
                if data is None:
                    raise TensorFormatError(f"input {name!r}: no 'data' and no binary_data_size")
                if dtype == "BYTES":
                    flat = np.array(data, dtype=object).reshape(-1)
                    arr = np.array([d.encode() if isinstance(d, str) else d for d in flat], dtype=object)
                else:
                    arr = np.asarray(data, dtype=NP[dtype]).reshape(-1)
            if arr.size != count:
                raise TensorFormatError(f"input {name!r}: {arr.size} values do not fill shape {shape}")
            arrays[name] = arr.reshape(shape)
        except (ValueError, TypeError) as exc:
            raise TensorFormatError(f"input {name!r}: {exc}") from None
    return header, arrays


def encode_response(header: dict, outputs: dict[str, np.ndarray], model: str, version: str) -> tuple[bytes, int | None]:
    """JSON (+ binary) response body and the JSON length when binary parts follow."""
    requested = {o.get("name"): o for o in header.get("outputs") or [] if isinstance(o, dict)}
    names = [n for n in outputs if not requested or n in requested]
    out_json, blobs = [], []
    for name in names:
        arr = np.asarray(outputs[name])
        entry = {"name": name, "datatype": datatype_of(arr), "shape": list(arr.shape)}
        want_binary = (requested.get(name, {}).get("parameters") or {}).get("binary_data", False)
        if want_binary and entry["datatype"] != "BYTES":
            raw = np.ascontiguousarray(arr).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        elif entry["datatype"] == "BYTES":
            entry["data"] = [x.decode() if isinstance(x, bytes) else str(x) for x in arr.reshape(-1)]
        else:
            entry["data"] = arr.reshape(-1).tolist()
        out_json.append(entry)
    body = {"model_name": model, "model_version": version, "outputs": out_json}
    if "id" in header:
        body["id"] = header["id"]
    text = json.dumps(body).encode()
    if not blobs:
        return text, None
    return text + b"".join(blobs), len(text)
