"""Token choice and stop handling: pure functions of logits and text, tested without a model.

- ``temperature == 0`` is greedy (argmax); otherwise logits are divided by the
  temperature and sampled from the smallest set of tokens whose probability
  reaches ``top_p``, with a per-request ``torch.Generator`` (seeded when
  ``seed`` is given, so a seeded request is reproducible).
- :func:`stop_cut` finds where text must end because of a stop sequence, and
  how much of it is safe to stream now (a suffix that could still grow into a
  stop sequence is held back).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: keep generating past EOS until max_tokens (benchmarks: equal token counts across systems).
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")


def make_generator(params: SamplingParams) -> torch.Generator | None:
    if params.temperature == 0:
        return None
    gen = torch.Generator()
    if params.seed is not None:
        gen.manual_seed(params.seed)
    else:
        gen.seed()
    return gen


def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]) -> list[int]:
    """One token per row of ``logits`` [rows, vocab]."""
    greedy = logits.argmax(dim=-1).tolist()
    out = []
    for i, p in enumerate(params):
        if p.temperature == 0:
            out.append(greedy[i])
            continue
        probs = torch.softmax(logits[i].float().cpu() / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(0) - sorted_p < p.top_p  # always keeps the top token
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        out.append(int(torch.multinomial(probs, 1, generator=generators[i]).item()))
    return out


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
