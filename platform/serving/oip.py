"""Open Inference Protocol (KServe v2) routes and Triton's model-repository extension.

Rules:
- Health, metadata and infer follow the KServe v2 REST spec, so
  ``tritonclient.http`` works unchanged (JSON and the binary-data extension).
- Infer answers ``model_version`` = the version that actually ran the request
  (it may change between requests during a swap, never within one).
  ``/v2/models/NAME/versions/V/...`` answers for every version the server
  serves (production plus the model's ``--version-policy``); another version
  is 404.  Unversioned paths are the ``production`` version.
- Metadata ``platform`` follows OIP's ``<project>_<format>`` naming: a torch
  module (an ``nn.Module`` class run eagerly from safetensors weights) is
  ``pytorch_safetensors``, a causal LM (Hugging Face layout) is
  ``transformers_safetensors``; neither is ``pytorch_libtorch`` (Triton's
  name for a TorchScript model run by libtorch), which these are not.
- Every answered infer is counted for the statistics extension (success or
  failure with its time) under the version that ran it.
- Repository endpoints (index, load, unload) are management: they need the
  admin bearer token.  ``load`` answers 200 only once the version is serving;
  a failed load answers 4xx/5xx with the reason and the old version keeps serving.
- ``parameters.deadline_ms`` (or Triton's ``timeout`` in microseconds) bounds
  how long a request may wait in the queue; past it the answer is 504.
- Model names and versions in paths (and in a load body) must match
  :data:`~npusuite.platform.repository.names.NAME_PATTERN`; others are 400.
- Infer never parks a thread: the request goes straight into the engine's
  bounded queue from the event loop (503 + Retry-After when it cannot be
  answered within its deadline) and is awaited there; a client that
  disconnects cancels it, and a cancelled queued request is never computed.
- A causal LM served here takes a BYTES input ``text`` and answers BYTES
  ``text``: ``parameters.max_tokens`` (default 16, capped by the model's
  context), ``temperature``, ``top_p``, ``seed``, validated before anything
  is queued (400 naming the field).  Several prompts are admitted all or
  none, and a client that disconnects stops all of its generations.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from npusuite.platform.engine.errors import ModelNotReadyError
from npusuite.platform.engine.sampling import SamplingParams
from npusuite.platform.errors import NotFoundError, SchemaError, UserError
from npusuite.platform.records import load_json_object, validation_reason
from npusuite.platform.repository.names import InvalidNameError, check_name
from npusuite.platform.serving.auth import require_admin
from npusuite.platform.serving.client_wait import until_done_or_gone
from npusuite.platform.serving.oip_records import InferParameters, InferRequest, inline_schema
from npusuite.platform.serving.tensors import encode_response, parse_request

logger = logging.getLogger(__name__)
router = APIRouter()
#: ``parameters.max_tokens`` of a causal LM when the request gives none.
DEFAULT_MAX_TOKENS = 16


def _manager(request: Request):
    return request.app.state.manager


#: OIP platform name by manifest framework (see module rules).
PLATFORMS = {"torch": "pytorch_safetensors", "transformers": "transformers_safetensors"}


def _metadata(request: Request, engine) -> dict:
    m = engine.version.manifest
    return {"name": engine.name, "versions": _manager(request).served_versions(engine.name),
            "platform": PLATFORMS.get(m.framework, m.framework),
            "inputs": [s.model_dump() for s in m.inputs], "outputs": [s.model_dump() for s in m.outputs],
            "parameters": {"kind": m.kind, "precision": m.precision, "version_serving": engine.version.version}}


def _engine_for(request: Request, name: str, version: str | None):
    check_name("model name", name)
    if version is not None:
        check_name("version", version)
    return _manager(request).get(name, version)


@router.get("/v2")
def server_metadata() -> dict:
    return {"name": "npusuite", "version": "0.1.0",
            "extensions": ["model_repository", "binary_tensor_data", "statistics"]}


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
    return _metadata(request, _engine_for(request, name, version))


@router.get("/v2/models/{name}/config")
@router.get("/v2/models/{name}/versions/{version}/config")
def model_config(request: Request, name: str, version: str | None = None) -> dict:
    engine = _engine_for(request, name, version)
    cfg = request.app.state.manager.batcher
    return {"name": name, "max_batch_size": cfg.max_batch_size,
            "dynamic_batching": {"max_queue_delay_microseconds": int(cfg.max_queue_delay_ms * 1000)},
            **{k: v for k, v in _metadata(request, engine).items() if k in ("inputs", "outputs", "platform")}}


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
def model_ready(request: Request, name: str, version: str | None = None) -> Response:
    try:
        _engine_for(request, name, version)
        return JSONResponse({"name": name, "ready": True})
    except (ModelNotReadyError, NotFoundError, InvalidNameError):
        return JSONResponse({"name": name, "ready": False}, status_code=400)


_INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": inline_schema(InferRequest)},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/v2/models/{name}/infer", openapi_extra=_INFER_BODY)
@router.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=_INFER_BODY)
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    """Decode, run on the engine (batched), encode.  Engine work is awaited on the event loop (no thread
    pool in front of the engine's bounded queue) and cancelled when the client disconnects."""
    engine = _engine_for(request, name, version)
    t0 = time.monotonic()
    counted_version = engine.version.version
    try:
        req, arrays = parse_request(await request.body(), request.headers.get("inference-header-content-length"))
        if engine.is_llm:
            outputs, model_ref = await _generate(request, engine, req, arrays)
        else:
            future, model_ref = engine.submit(arrays,
                                              deadline_ms=req.parameters.deadline() if req.parameters else None)
            outputs = await until_done_or_gone(request, asyncio.wrap_future(future), future.cancel)
    except Exception:
        _manager(request).statistics.request(name, counted_version, False, time.monotonic() - t0)
        raise
    served_version = model_ref.rpartition("@")[2]
    _manager(request).statistics.request(name, served_version, True, time.monotonic() - t0)
    body, json_len = encode_response(req, outputs, name, served_version)
    headers = {"Inference-Header-Content-Length": str(json_len)} if json_len is not None else {}
    media = "application/octet-stream" if json_len is not None else "application/json"
    return Response(body, media_type=media, headers=headers)


async def _generate(request: Request, engine, req: InferRequest, arrays: dict) -> tuple[dict, str]:
    """A causal LM over KServe: BYTES ``text`` in, BYTES ``text`` out; all prompts admitted or none."""
    texts = arrays.get("text")
    if texts is None or texts.dtype != object or len(arrays) != 1:
        raise UserError("a causal LM takes exactly one BYTES input named 'text'")
    try:
        prompts = [t.decode() for t in texts.reshape(-1)]
    except UnicodeDecodeError:
        raise UserError("input 'text': prompts must be UTF-8") from None
    p = req.parameters or InferParameters()
    params = SamplingParams(max_tokens=DEFAULT_MAX_TOKENS if p.max_tokens is None else p.max_tokens,
                            temperature=0.0 if p.temperature is None else p.temperature,
                            top_p=1.0 if p.top_p is None else p.top_p, seed=p.seed)
    if not prompts:
        return {"text": np.array([], dtype=object).reshape(texts.shape)}, engine.ref
    streams = engine.generate_many(prompts, params)

    def cancel_all() -> None:
        for s in streams:
            s.cancel()

    results = await until_done_or_gone(request, asyncio.gather(*(s.result_async() for s in streams)), cancel_all)
    outs = np.array([text for text, _reason in results], dtype=object).reshape(texts.shape)
    return {"text": outs}, streams[0].model_ref


# ---- repository extension (management) ----------------------------------------------------
@router.post("/v2/repository/index", dependencies=[Depends(require_admin)])
def repository_index(request: Request) -> list[dict]:
    return _manager(request).index()


class LoadParameters(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    version: str | int | None = None


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    parameters: LoadParameters | None = None


_LOAD_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": inline_schema(LoadRequest)}}}}


@router.post("/v2/repository/models/{name}/load", dependencies=[Depends(require_admin)], openapi_extra=_LOAD_BODY)
async def repository_load(request: Request, name: str) -> dict:
    check_name("model name", name)
    raw = await request.body()
    version = None
    if raw.strip():
        try:
            body = LoadRequest.model_validate(load_json_object(raw))
        except ValidationError as exc:
            raise SchemaError(f"load body must be like {{\"parameters\": {{\"version\": \"2\"}}}}: "
                              f"{validation_reason(exc, 'body')}") from None
        if body.parameters is not None and body.parameters.version is not None:
            version = check_name("version", str(body.parameters.version))
    # loading reads and hashes files: off the event loop (loads are rare and serialised per model)
    loaded = await asyncio.to_thread(_manager(request).load, name, version)
    return {"name": name, "version": loaded.version, "state": "READY"}


@router.post("/v2/repository/models/{name}/unload", dependencies=[Depends(require_admin)])
def repository_unload(request: Request, name: str) -> dict:
    _manager(request).unload(check_name("model name", name))
    return {"name": name, "state": "UNAVAILABLE"}
