"""OpenAI ``logprobs`` objects from the engine's per-token log probabilities.

Rules:
- Chat: ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}``;
  completions: ``{"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}``.
- One entry per completion token (an EOS that ended the generation is not
  one).  A token's text is its own decoding, so pieces of one multi-byte
  character may show as U+FFFD; ``bytes`` holds the UTF-8 of that text.
- A log probability of -inf (a token the model rules out) is reported as
  -9999.0: JSON has no infinity.
"""

from __future__ import annotations

import math

from npusuite.platform.engine.generation_stream import GenerationStream
from npusuite.platform.engine.sampling import TokenLogprob

FLOOR = -9999.0


def _lp(value: float) -> float:
    return value if math.isfinite(value) else FLOOR


def _entries(stream: GenerationStream, start: int, end: int | None) -> list[TokenLogprob]:
    end = len(stream.completion_ids) if end is None else min(end, len(stream.completion_ids))
    return stream.logprobs[start:end]


def chat_logprobs(stream: GenerationStream, decode, start: int = 0, end: int | None = None) -> dict:
    def item(token: int, logprob: float) -> dict:
        text = decode([token])
        return {"token": text, "logprob": _lp(logprob), "bytes": list(text.encode())}

    content = [{**item(e.token, e.logprob), "top_logprobs": [item(t, lp) for t, lp in e.top]}
               for e in _entries(stream, start, end)]
    return {"content": content, "refusal": None}


def completion_logprobs(stream: GenerationStream, decode, start: int = 0, end: int | None = None,
                        offset: int = 0) -> dict:
    tokens, token_lps, tops, offsets = [], [], [], []
    for e in _entries(stream, start, end):
        text = decode([e.token])
        offsets.append(offset)
        offset += len(text)
        tokens.append(text)
        token_lps.append(_lp(e.logprob))
        tops.append({decode([t]): _lp(lp) for t, lp in e.top})
    return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}
