"""OpenAI-compatible routes for causal LMs: /v1/models, /v1/completions, /v1/chat/completions.

Rules:
- Requests are validated by pydantic models; unknown OpenAI fields are
  ignored, unsupported values (``n`` > 1) are refused with 400.  Sampling
  fields are range-checked by :class:`SamplingParams` before anything is
  queued (400 with OpenAI's error object, ``param`` naming the field), and
  ``max_tokens`` plus the prompt must fit the model's context.
- Errors are OpenAI's error object (see :mod:`npusuite.platform.serving.errors`).
- Nothing parks a thread: generations are awaited on the event loop, and a
  client that disconnects cancels its generation, streaming or not.
- ``stream: true`` answers server-sent events, one ``data:`` JSON chunk per
  text piece, then ``data: [DONE]``; the chunk shapes are OpenAI's, so the
  ``openai`` client parses them.  A client that disconnects cancels its
  generation (its rows leave the running batch at the next step).  A
  generation that fails after the 200 header went out ends the stream with
  an OpenAI error object as its last ``data:`` chunk.
- Defaults follow OpenAI: temperature 1.0, top_p 1.0, max_tokens 16 for
  completions; chat uses ``max_completion_tokens`` or ``max_tokens`` (default 256).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from npusuite.platform.engine.errors import GenerationError, InvalidParameterError
from npusuite.platform.engine.generation_stream import GenerationStream
from npusuite.platform.engine.sampling import SamplingParams
from npusuite.platform.repository.names import NAME_PATTERN, check_name
from npusuite.platform.serving.client_wait import until_done_or_gone

router = APIRouter()


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: str = Field(pattern=NAME_PATTERN, max_length=128)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None
    n: int = 1

    def params(self, max_tokens: int) -> SamplingParams:
        if self.n != 1:
            raise InvalidParameterError("n", "only n=1 is supported")
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(max_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p,
                              stop=stops, seed=self.seed)


class CompletionRequest(_Common):
    prompt: str | list[str]
    max_tokens: int | None = Field(None, ge=1, le=4096)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    role: str
    content: str


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)


def _llm(request: Request, name: str):
    request.scope["npusuite_model"] = name  # for the request counter
    engine = request.app.state.manager.get(check_name("model name", name))
    if not engine.is_llm:
        raise InvalidParameterError("model", f"model {name!r} is not a causal LM")
    return engine


def _usage(stream: GenerationStream) -> dict:
    p, c = len(stream.prompt_ids), len(stream.completion_ids)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


async def _sse(chunks: AsyncIterator[dict], stream: GenerationStream) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
    except GenerationError as exc:  # a model error after the 200 header went out: say so in the stream
        error = {"error": {"message": f"generation failed: {exc}", "type": "server_error", "param": None,
                           "code": None}}
        yield b"data: " + json.dumps(error).encode() + b"\n\n"
    finally:
        stream.cancel()  # no-op when finished; frees the batch row when the client went away


def _check_error(event) -> None:
    if event.finish_reason == "error":
        raise GenerationError(event.error)


async def _result(request: Request, stream: GenerationStream) -> tuple[str, str]:
    return await until_done_or_gone(request, stream.result_async(), stream.cancel)


@router.get("/v1/models")
def list_models(request: Request) -> dict:
    data = [{"id": e.name, "object": "model", "created": 0, "owned_by": "npusuite", "root": e.ref}
            for e in request.app.state.manager.loaded() if e.is_llm]
    return {"object": "list", "data": data}


@router.post("/v1/completions")
async def completions(request: Request, body: CompletionRequest):
    engine = _llm(request, body.model)
    if isinstance(body.prompt, list) and len(body.prompt) != 1:
        raise InvalidParameterError("prompt", "prompt must be one string (or a list with exactly one)")
    prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
    stream = engine.generate(prompt, body.params(16 if body.max_tokens is None else body.max_tokens))
    cid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        async def chunks() -> AsyncIterator[dict]:
            async for ev in stream.aiter():
                _check_error(ev)
                if ev.text or ev.finish_reason:
                    yield {"id": cid, "object": "text_completion", "created": created, "model": body.model,
                           "choices": [{"index": 0, "text": ev.text, "logprobs": None,
                                        "finish_reason": _finish(ev.finish_reason) if ev.finish_reason else None}]}
        return StreamingResponse(_sse(chunks(), stream), media_type="text/event-stream")
    text, reason = await _result(request, stream)
    return {"id": cid, "object": "text_completion", "created": created, "model": body.model,
            "system_fingerprint": stream.model_ref,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": _finish(reason)}],
            "usage": _usage(stream)}


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, body: ChatRequest):
    engine = _llm(request, body.model)
    prompt = engine.runtime.chat_prompt([m.model_dump() for m in body.messages])
    max_tokens = body.max_completion_tokens or body.max_tokens or 256
    stream = engine.generate(prompt, body.params(max_tokens))
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        async def chunks() -> AsyncIterator[dict]:
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                    "system_fingerprint": stream.model_ref}
            yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]}
            async for ev in stream.aiter():
                _check_error(ev)
                if ev.text:
                    yield {**base, "choices": [{"index": 0, "delta": {"content": ev.text}, "finish_reason": None}]}
                if ev.finish_reason:
                    yield {**base, "choices": [{"index": 0, "delta": {},
                                                "finish_reason": _finish(ev.finish_reason)}]}
        return StreamingResponse(_sse(chunks(), stream), media_type="text/event-stream")
    text, reason = await _result(request, stream)
    return {"id": cid, "object": "chat.completion", "created": created, "model": body.model,
            "system_fingerprint": stream.model_ref,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": _finish(reason)}],
            "usage": _usage(stream)}
