"""Open Inference Protocol (KServe v2) routes and Triton's model-repository extension.

Rules:
- Health, metadata and infer follow the KServe v2 REST spec, so
  ``tritonclient.http`` works unchanged (JSON and the binary-data extension).
- Infer answers ``model_version`` = the version that actually ran the request
  (it may change between requests during a swap, never within one).
- Repository endpoints (index, load, unload) are management: they need the
  admin bearer token.  ``load`` answers 200 only once the version is serving;
  a failed load answers 4xx/5xx with the reason and the old version keeps serving.
- ``parameters.deadline_ms`` (or Triton's ``timeout`` in microseconds) bounds
  how long a request may wait in the queue; past it the answer is 504.
- A causal LM served here takes a BYTES input ``text`` and answers BYTES
  ``text`` (generation with ``parameters.max_tokens``, default 16).
"""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from npusuite.platform.engine.errors import ModelNotReadyError
from npusuite.platform.engine.sampling import SamplingParams
from npusuite.platform.errors import NotFoundError, UserError
from npusuite.platform.serving.auth import require_admin
from npusuite.platform.serving.tensors import encode_response, parse_request

logger = logging.getLogger(__name__)
router = APIRouter()


def _manager(request: Request):
    return request.app.state.manager


def _metadata(engine) -> dict:
    m = engine.version.manifest
    return {"name": engine.name, "versions": engine.repository.versions(engine.name) if engine.repository else [],
            "platform": {"torch": "pytorch_libtorch", "transformers": "pytorch_transformers"}.get(m.framework,
                                                                                                   m.framework),
            "inputs": [s.model_dump() for s in m.inputs], "outputs": [s.model_dump() for s in m.outputs],
            "parameters": {"kind": m.kind, "precision": m.precision, "version_serving": engine.version.version}}


def _engine_for(request: Request, name: str, version: str | None):
    engine = _manager(request).get(name)
    if version is not None and engine.version.version != version:
        raise NotFoundError(f"model {name!r} version {version!r} is not the one serving "
                            f"(serving {engine.version.version}); load it first")
    return engine


@router.get("/v2")
def server_metadata() -> dict:
    return {"name": "npusuite", "version": "0.1.0", "extensions": ["model_repository", "binary_tensor_data"]}


@router.get("/v2/health/live")
def live() -> dict:
    return {"live": True}


@router.get("/v2/health/ready")
def ready(request: Request) -> Response:
    ok = bool(_manager(request).loaded())
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
def model_metadata(request: Request, name: str, version: str | None = None) -> dict:
    return _metadata(_engine_for(request, name, version))


@router.get("/v2/models/{name}/config")
@router.get("/v2/models/{name}/versions/{version}/config")
def model_config(request: Request, name: str, version: str | None = None) -> dict:
    engine = _engine_for(request, name, version)
    cfg = request.app.state.manager.batcher
    return {"name": name, "max_batch_size": cfg.max_batch_size,
            "dynamic_batching": {"max_queue_delay_microseconds": int(cfg.max_queue_delay_ms * 1000)},
            **{k: v for k, v in _metadata(engine).items() if k in ("inputs", "outputs", "platform")}}


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
def model_ready(request: Request, name: str, version: str | None = None) -> Response:
    try:
        _engine_for(request, name, version)
        return JSONResponse({"name": name, "ready": True})
    except (ModelNotReadyError, NotFoundError):
        return JSONResponse({"name": name, "ready": False}, status_code=400)


@router.post("/v2/models/{name}/infer")
@router.post("/v2/models/{name}/versions/{version}/infer")
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    raw = await request.body()
    # The engine call blocks until the batch ran; keep it off the event loop.
    return await asyncio.to_thread(infer_sync, request.app.state, name, version, raw,
                                   request.headers.get("inference-header-content-length"))


def infer_sync(app_state, name: str, version: str | None, raw: bytes, header_length: str | None) -> Response:
    """Decode, run on the engine (batched), encode.  Raises UserError/engine errors for the app's handlers."""
    manager = app_state.manager
    engine = manager.get(name)
    if version is not None and engine.version.version != version:
        raise NotFoundError(f"model {name!r} version {version!r} is not serving (serving {engine.version.version})")
    header, arrays = parse_request(raw, header_length)
    if engine.is_llm:
        texts = arrays.get("text")
        if texts is None:
            raise UserError("a causal LM takes a BYTES input named 'text'")
        params = header.get("parameters") or {}
        sp = SamplingParams(max_tokens=int(params.get("max_tokens", 16)),
                            temperature=float(params.get("temperature", 0.0)))
        streams = [engine.generate(t.decode() if isinstance(t, bytes) else str(t), sp) for t in texts.reshape(-1)]
        outs = np.array([s.result(300)[0] for s in streams], dtype=object).reshape(texts.shape)
        model_ref = streams[0].model_ref if streams else engine.ref
        outputs = {"text": outs}
    else:
        params = header.get("parameters") or {}
        deadline_ms = params.get("deadline_ms")
        if deadline_ms is None and params.get("timeout") is not None:  # Triton: microseconds
            deadline_ms = float(params["timeout"]) / 1000
        if deadline_ms is not None and (not isinstance(deadline_ms, int | float) or deadline_ms <= 0):
            raise UserError("parameters.deadline_ms must be a positive number")
        result = engine.infer(arrays, deadline_ms=deadline_ms)
        outputs, model_ref = result.outputs, result.model
    served_version = model_ref.rpartition("@")[2]
    body, json_len = encode_response(header, outputs, name, served_version)
    headers = {"Inference-Header-Content-Length": str(json_len)} if json_len is not None else {}
    media = "application/octet-stream" if json_len is not None else "application/json"
    return Response(body, media_type=media, headers=headers)


# ---- repository extension (management) ----------------------------------------------------
@router.post("/v2/repository/index", dependencies=[Depends(require_admin)])
def repository_index(request: Request) -> list[dict]:
    return _manager(request).index()


@router.post("/v2/repository/models/{name}/load", dependencies=[Depends(require_admin)])
async def repository_load(request: Request, name: str) -> dict:
    raw = await request.body()
    version = None
    if raw.strip():
        try:
            body = json.loads(raw)
            version = (body.get("parameters") or {}).get("version")
        except (json.JSONDecodeError, AttributeError):
            raise UserError("load body must be JSON like {\"parameters\": {\"version\": \"2\"}}") from None
        if version is not None and not isinstance(version, str):
            version = str(version)
    loaded = await asyncio.to_thread(_manager(request).load, name, version)
    return {"name": name, "version": loaded.version, "state": "READY"}


@router.post("/v2/repository/models/{name}/unload", dependencies=[Depends(require_admin)])
def repository_unload(request: Request, name: str) -> dict:
    _manager(request).unload(name)
    return {"name": name, "state": "UNAVAILABLE"}
