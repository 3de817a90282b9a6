"""Token choice and stop handling: pure functions of logits and text, tested without a model.

Rules:
- :class:`SamplingParams` is validated when it is built, so a bad value is
  refused at the door (HTTP 400 naming the field), never inside a scheduler
  step where it would hit other requests: ``max_tokens`` a positive int,
  ``temperature`` finite in [0, 2], ``top_p`` finite in (0, 1], ``seed`` an
  int in [0, 2**63 - 1] (what ``torch.Generator.manual_seed`` takes on every
  platform), stop sequences strings.  Violations raise
  :class:`InvalidParameterError` (a ``UserError`` and a ``ValueError``) whose
  ``param`` names the field.
- ``temperature == 0`` is greedy (argmax); otherwise logits are divided by the
  temperature and sampled from the smallest set of tokens whose probability
  reaches ``top_p``, with a per-request ``torch.Generator`` (seeded when
  ``seed`` is given, so a seeded request is reproducible).  Any positive
  temperature and top_p are safe: logits are shifted by their maximum before
  the division (no inf/nan for tiny temperatures) and the top token is always
  kept (no empty distribution for tiny top_p).
- ``logprobs`` (None, or how many alternatives per token, 0..20) asks for
  :func:`token_logprobs` per generated token: the chosen token's log
  probability and the ``logprobs`` most likely tokens, from the model's raw
  distribution (``log_softmax`` of the logits, before temperature and
  top_p, as OpenAI reports them).  Computed only when asked.
- :func:`stop_cut` finds where text must end because of a stop sequence, and
  how much of it is safe to stream now (a suffix that could still grow into a
  stop sequence is held back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from npusuite.platform.engine.errors import InvalidParameterError

MAX_TEMPERATURE = 2.0
MAX_SEED = 2**63 - 1
MAX_STOP_SEQUENCES = 16
#: most alternatives per token (OpenAI's top_logprobs limit).
MAX_LOGPROBS = 20


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: keep generating past EOS until max_tokens (benchmarks: equal token counts across systems).
    ignore_eos: bool = False
    #: None: no logprobs; k: the chosen token's logprob and the k most likely alternatives per token.
    logprobs: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise InvalidParameterError("max_tokens", f"max_tokens must be a positive integer, "
                                                      f"got {self.max_tokens!r}")
        if not _is_number(self.temperature) or not 0 <= self.temperature <= MAX_TEMPERATURE:
            raise InvalidParameterError("temperature", f"temperature must be a finite number in "
                                                       f"[0, {MAX_TEMPERATURE:g}], got {self.temperature!r}")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise InvalidParameterError("top_p", f"top_p must be a finite number in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED):
            raise InvalidParameterError("seed", f"seed must be an integer in [0, 2**63-1], got {self.seed!r}")
        if (not isinstance(self.stop, tuple) or len(self.stop) > MAX_STOP_SEQUENCES
                or not all(isinstance(s, str) for s in self.stop)):
            raise InvalidParameterError("stop", f"stop must be at most {MAX_STOP_SEQUENCES} strings")
        if self.logprobs is not None and (not _is_int(self.logprobs) or not 0 <= self.logprobs <= MAX_LOGPROBS):
            raise InvalidParameterError("logprobs", f"logprobs must be an integer in [0, {MAX_LOGPROBS}], "
                                                    f"got {self.logprobs!r}")


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log probability and the most likely alternatives ``[(token_id, logprob)]``."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def token_logprobs(logits: torch.Tensor, token: int, k: int) -> TokenLogprob:
    """Log probabilities from one row of logits [vocab]: the chosen ``token``'s and the top ``k``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    top = ()
    if k:
        values, ids = logp.topk(min(k, logp.shape[-1]))
        top = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(logp[token]), top)


def make_generator(params: SamplingParams) -> torch.Generator | None:
    if params.temperature == 0:
        return None
    gen = torch.Generator()
    if params.seed is not None:
        gen.manual_seed(params.seed)
    else:
        gen.seed()
    return gen


def sample_row(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from one row of logits [vocab].  Raises on a row whose logits are all non-finite."""
    if params.temperature == 0:
        return int(logits.argmax().item())
    row = logits.double().cpu()
    if not torch.isfinite(row).any():
        raise ValueError("the model produced no finite logits for this row")
    row = torch.nan_to_num(row, nan=-math.inf)
    # shift first: (x - max) / T is <= 0, so a tiny T gives -inf and 0, never inf - inf
    probs = torch.softmax((row - row.max()) / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < params.top_p
        keep[0] = True  # the top token always stays, however small top_p is
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=generator).item())


def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]) -> list[int]:
    """One token per row of ``logits`` [rows, vocab]."""
    greedy = logits.argmax(dim=-1).tolist()
    return [greedy[i] if p.temperature == 0 else sample_row(logits[i], p, generators[i])
            for i, p in enumerate(params)]


def stop_cut(text: str, stops: tuple[str, ...]) -> tuple[int | None, int]:
    """Return (end, safe): ``end`` is where the text stops (start of the first stop sequence) or None;
    ``safe`` is how many characters can be streamed now."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if hits:
        end = min(hits)
        return end, end
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    safe = len(text) - hold
    if safe > 0 and text[safe - 1] == "\ufffd":  # an incomplete UTF-8 sequence; wait for the next token
        safe -= 1
    return None, safe
