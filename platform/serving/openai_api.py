"""OpenAI-compatible routes for causal LMs: /v1/models[/{id}], /v1/completions, /v1/chat/completions.

Rules:
- Requests are :mod:`.openai_records`: unknown fields are ignored, known
  but unsupported features are refused with 400 naming them.  Sampling
  fields are range-checked by :class:`SamplingParams` before anything is
  queued (400 with OpenAI's error object, ``param`` naming the field), and
  ``max_tokens`` plus the prompt must fit the model's context.
- Errors are OpenAI's error object (see :mod:`npusuite.platform.serving.errors`).
- Nothing parks a thread: generations are awaited on the event loop, and a
  client that disconnects cancels its generation, streaming or not.
- ``stream: true`` answers server-sent events, one ``data:`` JSON chunk per
  text piece, then ``data: [DONE]``; the chunk shapes are OpenAI's, so the
  ``openai`` client parses them.  With ``stream_options.include_usage`` every
  chunk carries ``"usage": null`` and one last chunk before ``[DONE]`` has
  empty ``choices`` and the ``usage``.  A generation that fails after the
  200 header went out ends the stream with an OpenAI error object as its
  last ``data:`` chunk.
- ``logprobs`` (chat: ``logprobs``/``top_logprobs``; completions: ``logprobs``)
  come from the engine per generated token (:mod:`.openai_logprobs`); a
  streamed chunk carries those of the tokens sampled since the previous chunk.
- ``created`` of a model is its manifest's creation time; of a completion,
  the time it was made (Unix seconds).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from npusuite.platform.engine.errors import GenerationError, InvalidParameterError
from npusuite.platform.engine.generation_stream import GenerationStream
from npusuite.platform.errors import NotFoundError
from npusuite.platform.repository.names import check_name
from npusuite.platform.serving.client_wait import until_done_or_gone
from npusuite.platform.serving.openai_logprobs import chat_logprobs, completion_logprobs
from npusuite.platform.serving.openai_records import ChatRequest, CompletionRequest

router = APIRouter()


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


def _created(engine) -> int:
    """The model version's creation time (manifest ``created``, ISO 8601) in Unix seconds."""
    try:
        return int(datetime.fromisoformat(engine.version.manifest.created.replace("Z", "+00:00")).timestamp())
    except (ValueError, AttributeError):
        return 0


def _model(engine) -> dict:
    return {"id": engine.name, "object": "model", "created": _created(engine), "owned_by": "npusuite",
            "root": engine.ref}


@router.get("/v1/models")
def list_models(request: Request) -> dict:
    return {"object": "list", "data": [_model(e) for e in request.app.state.manager.loaded() if e.is_llm]}


@router.get("/v1/models/{model}")
def retrieve_model(request: Request, model: str) -> dict:
    try:
        return _model(_llm(request, model))
    except InvalidParameterError:  # loaded, but not a causal LM: not a model of this API
        raise NotFoundError(f"the model {model!r} does not exist") from None


class _Chunks:
    """Shared pieces of one streamed answer: the usage chunk and each chunk's share of the logprobs."""

    def __init__(self, body, stream: GenerationStream, base: dict):
        self.body, self.stream, self.base, self.sent = body, stream, base, 0

    def chunk(self, choice: dict) -> dict:
        return {**self.base, "choices": [choice], **({"usage": None} if self.body.include_usage else {})}

    def new_logprobs(self, fmt, decode) -> dict | None:
        if self.stream.params.logprobs is None:
            return None
        end = len(self.stream.completion_ids)
        start, self.sent = self.sent, max(self.sent, end)
        return fmt(self.stream, decode, start, end)

    def usage(self) -> list[dict]:
        return [{**self.base, "choices": [], "usage": _usage(self.stream)}] if self.body.include_usage else []


@router.post("/v1/completions")
async def completions(request: Request, body: CompletionRequest):
    engine = _llm(request, body.model)
    if isinstance(body.prompt, list) and len(body.prompt) != 1:
        raise InvalidParameterError("prompt", "prompt must be one string (or a list with exactly one)")
    prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
    params = body.params()
    decode = engine.runtime.decode_ids
    stream = engine.generate(prompt, params)
    cid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    base = {"id": cid, "object": "text_completion", "created": created, "model": body.model,
            "system_fingerprint": stream.model_ref}
    if body.stream:
        out = _Chunks(body, stream, base)

        async def chunks() -> AsyncIterator[dict]:
            offset = 0
            async for ev in stream.aiter():
                _check_error(ev)
                if ev.text or ev.finish_reason:
                    lps = out.new_logprobs(partial(completion_logprobs, offset=offset), decode)
                    offset += len(ev.text)
                    yield out.chunk({"index": 0, "text": ev.text, "logprobs": lps,
                                     "finish_reason": _finish(ev.finish_reason) if ev.finish_reason else None})
            for chunk in out.usage():
                yield chunk
        return StreamingResponse(_sse(chunks(), stream), media_type="text/event-stream")
    text, reason = await _result(request, stream)
    lps = completion_logprobs(stream, decode) if params.logprobs is not None else None
    return {**base, "choices": [{"index": 0, "text": text, "logprobs": lps, "finish_reason": _finish(reason)}],
            "usage": _usage(stream)}


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, body: ChatRequest):
    engine = _llm(request, body.model)
    params = body.params()
    decode = engine.runtime.decode_ids
    stream = engine.generate(engine.runtime.chat_prompt([m.model_dump() for m in body.messages]), params)
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        out = _Chunks(body, stream, {"id": cid, "object": "chat.completion.chunk", "created": created,
                                     "model": body.model, "system_fingerprint": stream.model_ref})

        async def chunks() -> AsyncIterator[dict]:
            yield out.chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                             "finish_reason": None})
            async for ev in stream.aiter():
                _check_error(ev)
                if ev.text:
                    yield out.chunk({"index": 0, "delta": {"content": ev.text},
                                     "logprobs": out.new_logprobs(chat_logprobs, decode), "finish_reason": None})
                if ev.finish_reason:
                    yield out.chunk({"index": 0, "delta": {}, "logprobs": out.new_logprobs(chat_logprobs, decode),
                                     "finish_reason": _finish(ev.finish_reason)})
            for chunk in out.usage():
                yield chunk
        return StreamingResponse(_sse(chunks(), stream), media_type="text/event-stream")
    text, reason = await _result(request, stream)
    lps = chat_logprobs(stream, decode) if params.logprobs is not None else None
    return {"id": cid, "object": "chat.completion", "created": created, "model": body.model,
            "system_fingerprint": stream.model_ref,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": lps,
                         "finish_reason": _finish(reason)}],
            "usage": _usage(stream)}
