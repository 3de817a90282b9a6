"""Typed OpenAI request records, and the refusal of every feature the server does not implement.

Rules:
- Unknown fields are ignored (new OpenAI fields must not break old
  servers), but a KNOWN field whose value asks for something this server
  does not do is refused with 400 naming it (``param``), never silently
  ignored: ``n`` > 1, ``tools``/``tool_choice``/``functions``/
  ``function_call``/``parallel_tool_calls``, a ``response_format`` other than
  ``text``, ``logit_bias``, non-zero ``presence_penalty``/
  ``frequency_penalty``; for completions also ``echo``, ``best_of`` > 1 and
  ``suffix``.
- Ranges follow the OpenAI reference: ``temperature`` [0, 2], ``top_p``
  (0, 1], chat ``top_logprobs`` [0, 20] (only with ``logprobs: true``),
  completions ``logprobs`` [0, 5].  Sampling fields are checked again by
  :class:`SamplingParams` (400 naming the field).
- Defaults follow OpenAI: temperature 1.0, top_p 1.0, max_tokens 16 for
  completions; chat uses ``max_completion_tokens`` or ``max_tokens`` (default 256).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from npusuite.platform.engine.errors import InvalidParameterError
from npusuite.platform.engine.sampling import SamplingParams
from npusuite.platform.repository.names import NAME_PATTERN

COMPLETION_DEFAULT_MAX_TOKENS = 16
CHAT_DEFAULT_MAX_TOKENS = 256


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: str = Field(pattern=NAME_PATTERN, max_length=128)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    n: int = 1
    logit_bias: dict[str, Any] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def refuse_unsupported(self) -> None:
        if self.n != 1:
            raise InvalidParameterError("n", "only n=1 is supported")
        if self.logit_bias:
            raise InvalidParameterError("logit_bias", "logit_bias is not supported")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise InvalidParameterError(name, f"{name} is not supported (only 0)")
        if self.stream_options is not None and not self.stream:
            raise InvalidParameterError("stream_options", "stream_options is only allowed with stream: true")

    def sampling(self, max_tokens: int, logprobs: int | None) -> SamplingParams:
        self.refuse_unsupported()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(max_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p,
                              stop=stops, seed=self.seed, logprobs=logprobs)


class CompletionRequest(_Common):
    prompt: str | list[str]
    max_tokens: int | None = Field(None, ge=1, le=4096)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None

    def params(self) -> SamplingParams:
        if self.echo:
            raise InvalidParameterError("echo", "echo is not supported")
        if self.best_of not in (None, 1):
            raise InvalidParameterError("best_of", "only best_of=1 is supported")
        if self.suffix:
            raise InvalidParameterError("suffix", "suffix is not supported")
        return self.sampling(COMPLETION_DEFAULT_MAX_TOKENS if self.max_tokens is None else self.max_tokens,
                             self.logprobs)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    role: str
    content: str


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    parallel_tool_calls: bool | None = None

    def params(self) -> SamplingParams:
        for name in ("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls"):
            if getattr(self, name) is not None:
                raise InvalidParameterError(name, f"{name} is not supported: this server does no tool or "
                                                  f"function calling")
        if self.response_format is not None and self.response_format.type != "text":
            raise InvalidParameterError("response_format", f"response_format {self.response_format.type!r} is "
                                                           f"not supported (only 'text')")
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidParameterError("top_logprobs", "top_logprobs needs logprobs: true")
        max_tokens = self.max_completion_tokens or self.max_tokens or CHAT_DEFAULT_MAX_TOKENS
        return self.sampling(max_tokens, (self.top_logprobs or 0) if self.logprobs else None)
