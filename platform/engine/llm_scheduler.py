"""Iteration-level scheduler for causal LMs (continuous batching).

Rules:
- ``submit`` never blocks: more than ``max_queue_size`` waiting requests
  raises :class:`EngineBusyError` (HTTP 503 + Retry-After).
- One worker thread owns the model.  Each iteration it (1) admits waiting
  requests up to ``max_running`` and prefills their prompts together (their
  first token), (2) runs ONE decode step for every request that was already
  running, and (3) merges the new KV rows into the running batch.  So a new
  request joins the running batch at the next step, never after the batch
  finishes, and joiners never stall the requests already running.
- A request finishes at EOS, at a stop sequence (text cut before it), at
  ``max_tokens``, or when cancelled; its rows leave the batch before the next
  step.
- Admission is checked at the door: prompt token ids must be in the
  vocabulary, ``prompt + max_tokens`` must fit the model's context
  (``lm.max_context``), and :meth:`LLMScheduler.submit_many` admits a group of
  prompts all or none (a refused group leaves nothing running).
- Failures are isolated per request: a row whose sampling fails (its
  generator, its distribution) fails alone; a prefill that raises is retried
  prompt by prompt; a decode step that raises is rolled back and each row is
  probed alone, so only the rows that fail by themselves get an error event
  (:class:`~npusuite.platform.engine.errors.GenerationError` from
  :meth:`GenerationStream.result`) and the others keep decoding.
- Prefix caching: the scheduler owns its model's prefix cache
  (:class:`~npusuite.platform.engine.prefix_cache.PrefixCache`, bounded by
  ``prefix_cache_max_bytes``, 0 = off) and hands it to the model, whose
  prefill reuses the KV of cached leading blocks.  Hits and misses:
  :meth:`LLMScheduler.prefix_cache_stats`.
- A model with a bounded decode batch (``lm.max_rows``, the static KV
  cache's slots) caps ``max_running``.
- Greedy rows take their token from one batched argmax per step (one device
  sync per step, not one per row); sampled rows are sampled one by one.
- :func:`plan_admission` is the pure scheduling policy.
- ``close(drain=True)``: stop accepting, finish every accepted request, stop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from npusuite.platform.engine.errors import EngineBusyError, EngineClosedError, InvalidParameterError
from npusuite.platform.engine.generation_stream import GenerationStream, TokenEvent
from npusuite.platform.engine.observer import EngineObserver, NullObserver
from npusuite.platform.engine.prefix_cache import PrefixCache, PrefixCacheConfig
from npusuite.platform.engine.sampling import (
    SamplingParams,
    make_generator,
    sample_row,
    stop_cut,
    token_logprobs,
)

logger = logging.getLogger(__name__)

__all__ = ["GenerationStream", "LLMConfig", "LLMScheduler", "TokenEvent", "plan_admission"]


ENTROPY_EVERY = 8  # one sampling step in 8 measures the next-token entropy (a softmax over the vocabulary)


def entropy_bits(logits) -> list[float]:
    """Shannon entropy in bits of each row's next-token distribution (the model's, before temperature or
    top-p)."""
    import torch

    with torch.no_grad():
        logp = torch.log_softmax(logits.float(), dim=-1)
        return (-(logp.exp() * logp).sum(dim=-1) / math.log(2)).tolist()


@dataclass(frozen=True)
class LLMConfig:
    #: requests decoded together in one step.
    max_running: int = 64
    max_queue_size: int = 256
    max_prompt_tokens: int = 1024
    #: prompts prefilled together when several join at once.
    max_prefill_batch: int = 16
    #: bound on the prefix cache's KV, in bytes (0: no prefix caching).
    prefix_cache_max_bytes: int = 64 * 2**20
    #: prefixes are shared in whole blocks of this many tokens.
    prefix_block_tokens: int = 16


@dataclass
class _Running:
    stream: GenerationStream
    generator: object = None  # made at the first sampling, so a failure there is this row's alone
    pending: int = -1  # sampled, not yet fed to the model
    emitted: int = 0  # characters of text already streamed
    last_token_s: float = 0.0
    done: bool = False
    failed: bool = False


def plan_admission(waiting: int, running: int, config: LLMConfig) -> int:
    """How many waiting requests join this iteration (pure policy)."""
    return max(0, min(waiting, config.max_running - running, config.max_prefill_batch))


@dataclass
class LLMScheduler:
    """Continuous batching over one :class:`~npusuite.platform.runtime.causal_lm.CausalLM`."""

    lm: object
    config: LLMConfig = field(default_factory=LLMConfig)
    name: str = "llm"
    observer: EngineObserver = field(default_factory=NullObserver)

    def __post_init__(self) -> None:
        rows = getattr(self.lm, "max_rows", None)
        if rows is not None and rows < self.config.max_running:
            self.config = replace(self.config, max_running=rows)
        if hasattr(self.lm, "prefix_cache"):
            # a fresh cache per scheduler: a cached KV is only valid for the weights that computed it
            self.lm.prefix_cache = PrefixCache(PrefixCacheConfig(
                self.config.prefix_cache_max_bytes, self.config.prefix_block_tokens)) \
                if self.config.prefix_cache_max_bytes > 0 else None
        self._waiting: deque[GenerationStream] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._running: list[_Running] = []
        self._state = None
        self._samplings = 0  # _sample_all calls: the token entropy is measured on one in ENTROPY_EVERY
        self._worker = threading.Thread(target=self._run, name=f"llm-{self.name}", daemon=True)
        self._worker.start()

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    def prefix_cache_stats(self) -> dict | None:
        """Blocks, bytes, looked-up and hit tokens of the prefix cache (None when off)."""
        cache = getattr(self.lm, "prefix_cache", None)
        return cache.stats() if cache is not None else None

    def check(self, prompt_ids: list[int], params: SamplingParams) -> None:
        """Refuse what must not reach a step: raises InvalidParameterError (prompt or max_tokens)."""
        if not prompt_ids:
            raise InvalidParameterError("prompt", "the prompt is empty")
        if len(prompt_ids) > self.config.max_prompt_tokens:
            raise InvalidParameterError("prompt", f"prompt has {len(prompt_ids)} tokens; the limit is "
                                                  f"{self.config.max_prompt_tokens}")
        vocab = getattr(self.lm, "vocab_size", None)
        if vocab is not None and not all(isinstance(t, int) and 0 <= t < vocab for t in prompt_ids):
            raise InvalidParameterError("prompt", f"prompt token ids must be integers in [0, {vocab})")
        context = getattr(self.lm, "max_context", None)
        if context is not None and len(prompt_ids) + params.max_tokens > context:
            raise InvalidParameterError(
                "max_tokens", f"max_tokens {params.max_tokens} + prompt {len(prompt_ids)} tokens is more than "
                              f"the model's context of {context} tokens")

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> GenerationStream:
        """Queue a generation.  Raises EngineBusyError, EngineClosedError, InvalidParameterError."""
        return self.submit_many([prompt_ids], params)[0]

    def submit_many(self, prompts: list[list[int]], params: SamplingParams) -> list[GenerationStream]:
        """Queue several generations, all or none.  Raises EngineBusyError, EngineClosedError,
        InvalidParameterError; when it raises, none of them was queued."""
        for ids in prompts:
            self.check(ids, params)
        ref = getattr(self.lm, "ref", self.name)
        streams = [GenerationStream(list(ids), params, ref) for ids in prompts]
        with self._cond:
            if self._closed:
                raise EngineClosedError(f"{self.name} is closed")
            if len(self._waiting) + len(streams) > self.config.max_queue_size:
                raise EngineBusyError(f"{self.name}: {len(self._waiting)} generations waiting, room for "
                                      f"{max(0, self.config.max_queue_size - len(self._waiting))}; "
                                      f"{len(streams)} asked", retry_after_s=1.0)
            self._waiting.extend(streams)
            self.observer.queue_depth(self.name, len(self._waiting))
            self._cond.notify()
        return streams

    def close(self, drain: bool = True, timeout_s: float | None = None) -> None:
        with self._cond:
            self._closed = True
            if not drain:
                while self._waiting:
                    self._waiting.popleft()._emit(TokenEvent("", "cancelled"))
                for r in self._running:
                    r.stream.cancel()
            self._cond.notify_all()
        self._worker.join(timeout_s)

    # ---- worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._running:
                    if self._closed:
                        return
                    self._cond.wait()
                n = plan_admission(len(self._waiting), len(self._running), self.config)
                joining = [self._waiting.popleft() for _ in range(n)]
                self.observer.queue_depth(self.name, len(self._waiting))
            try:
                self._step(joining)
            except Exception as exc:  # not attributable to a row: fail this step's requests, keep serving
                logger.exception("%s: step failed", self.name)
                for r in self._running:
                    self._fail(r.stream, exc)
                for s in joining:
                    self._fail(s, exc)
                self._running, self._state = [], None

    @staticmethod
    def _fail(stream: GenerationStream, exc: BaseException) -> None:
        if stream.finish_reason is None:
            stream._emit(TokenEvent("", "error", f"model error: {exc}"))

    def _step(self, joining: list[GenerationStream]) -> None:
        """One iteration: prefill the joiners, decode one token for every row already running, merge."""
        joining = [s for s in joining if not self._finish_if_cancelled(s)]
        computed = sum(len(s.prompt_ids) for s in joining) + len(self._running)
        new_rows, new_state = self._prefill(joining) if joining else ([], None)
        if self._running:
            # rows already running advance in the same iteration, so a stream of joiners never stalls them
            self._decode()
        if new_rows:
            self._state = self.lm.merge(self._state, new_state)
            self._running.extend(new_rows)
        self._drop_finished()
        self._observe_iteration(computed)

    def _observe_iteration(self, computed: int) -> None:
        """Tokens computed in this iteration; KV positions held by the running rows (prompt + completion)
        against ``max_running`` x the model's context (0 when the model does not say)."""
        self.observer.iteration(self.name, computed)
        used = sum(len(r.stream.prompt_ids) + len(r.stream.completion_ids) for r in self._running)
        context = getattr(self.lm, "max_context", None) or 0
        self.observer.kv_cache(self.name, used, self.config.max_running * context)

    def _prefill(self, joining: list[GenerationStream]) -> tuple[list[_Running], object]:
        """Prefill the joiners together; if that raises, one by one, failing only those that fail alone."""
        lm, t0 = self.lm, time.monotonic()
        try:
            logits, state = lm.prefill([s.prompt_ids for s in joining])
            rows = [_Running(s) for s in joining]
        except Exception as exc:
            if len(joining) == 1:
                logger.warning("%s: prefill of request %d failed: %s", self.name, joining[0].id, exc)
                self._fail(joining[0], exc)
                return [], None
            logger.warning("%s: prefill of %d prompts failed (%s); retrying one by one", self.name,
                           len(joining), exc)
            rows, state, parts = [], None, []
            for s in joining:
                sub_rows, sub_state = self._prefill([s])
                if sub_rows:
                    rows += sub_rows
                    parts.append(sub_state)
            for part in parts:
                state = part if state is None else lm.merge(state, part)
            return self._keep_sampled(rows, state)
        self.observer.batch(self.name, len(joining), [t0 - s.created_s for s in joining], time.monotonic() - t0)
        self._sample_all(rows, logits)
        return self._keep_sampled(rows, state)

    def _sample_all(self, rows: list[_Running], logits) -> None:
        """Sample and accept one token per row; greedy rows share one argmax (one device sync)."""
        greedy = logits.argmax(dim=-1).tolist() if any(r.stream.params.temperature == 0 for r in rows) else None
        self._samplings += 1
        if self.observer.wants_token_entropy and self._samplings % ENTROPY_EVERY == 1 and len(rows):
            self.observer.token_entropy(self.name, entropy_bits(logits))
        for i, (r, row_logits) in enumerate(zip(rows, logits, strict=True)):
            self._sample_and_accept(r, row_logits, greedy[i] if greedy is not None else None)

    def _keep_sampled(self, rows: list[_Running], state) -> tuple[list[_Running], object]:
        """Drop joiners whose first sampling failed (their state rows too)."""
        keep = [i for i, r in enumerate(rows) if not r.failed]
        if len(keep) == len(rows):
            return rows, state
        return [rows[i] for i in keep], (self.lm.select(state, keep) if keep and state is not None else None)

    def _decode(self) -> None:
        """One decode step for the running rows.  A step that raises is rolled back and each row is probed
        alone; rows that fail alone get an error, the rest decode again together."""
        import torch

        lm, t0 = self.lm, time.monotonic()
        fed = torch.tensor([r.pending for r in self._running], dtype=torch.long)
        mark = lm.checkpoint(self._state)
        try:
            logits, self._state = lm.decode(self._state, fed)
        except Exception as exc:
            lm.rollback(self._state, mark)
            bad = self._probe_rows(fed, exc)
            for i in bad:
                self._fail(self._running[i].stream, exc)
            keep = [i for i in range(len(self._running)) if i not in bad]
            self._running = [self._running[i] for i in keep]
            self._state = lm.select(self._state, keep) if self._state is not None else None
            if not self._running:
                return
            # the rest: once more together; a second failure is not theirs to isolate, so it fails the step
            fed = fed[keep]
            logits, self._state = lm.decode(self._state, fed)
        self.observer.batch(self.name, len(self._running), [], time.monotonic() - t0)
        self._sample_all(self._running, logits)

    def _probe_rows(self, fed, exc: Exception) -> list[int]:
        """Indices of running rows whose decode fails on its own (all of them when none does)."""
        rows = len(self._running)
        if rows == 1:
            return [0]
        logger.warning("%s: decode step of %d rows failed (%s); probing rows one by one", self.name, rows, exc)
        bad = []
        for i in range(rows):
            probe = self.lm.select(self.lm.copy_state(self._state), [i])
            try:
                self.lm.decode(probe, fed[i:i + 1])
            except Exception:
                bad.append(i)
        return bad or list(range(rows))

    def _sample_and_accept(self, r: _Running, logits, greedy: int | None = None) -> None:
        """Sample one token for ``r`` and accept it; a failure here is ``r``'s alone."""
        try:
            if r.generator is None and r.stream.params.temperature != 0:
                r.generator = make_generator(r.stream.params)
            if r.stream.params.temperature == 0 and greedy is not None:
                token = greedy
            else:
                token = sample_row(logits, r.stream.params, r.generator)
            if r.stream.params.logprobs is not None:  # only when asked: a log_softmax per row and token
                r.stream.logprobs.append(token_logprobs(logits, token, r.stream.params.logprobs))
        except Exception as exc:
            logger.warning("%s: sampling for request %d failed: %s", self.name, r.stream.id, exc)
            r.failed = r.done = True
            self._fail(r.stream, exc)
            return
        self._accept(r, token)

    def _drop_finished(self) -> None:
        keep = [i for i, r in enumerate(self._running) if not r.done and not self._finish_if_cancelled(r.stream)]
        if len(keep) != len(self._running):
            self._state = self.lm.select(self._state, keep) if self._state is not None else None
            self._running = [self._running[i] for i in keep]

    def _finish_if_cancelled(self, stream: GenerationStream) -> bool:
        if stream.cancelled.is_set() and stream.finish_reason is None:
            stream._emit(TokenEvent("", "cancelled"))
        return stream.cancelled.is_set()

    def _accept(self, r: _Running, token: int) -> None:
        """Record one sampled token for ``r``; stream the text that is now safe; finish when due."""
        s, now = r.stream, time.monotonic()
        if s.first_token_s is None:
            s.first_token_s = now
            self.observer.first_token(self.name, now - s.created_s)
        else:
            self.observer.inter_token(self.name, now - r.last_token_s)
        r.last_token_s = now
        self.observer.tokens(self.name, 1)
        finish = None
        if token == self.lm.eos_token_id and not s.params.ignore_eos:
            finish = "stop"
        else:
            s.completion_ids.append(token)
            r.pending = token
        text = self.lm.decode_ids(s.completion_ids)
        end, safe = stop_cut(text, s.params.stop)
        if end is not None:
            finish, safe = "stop", end
        elif finish is None and len(s.completion_ids) >= s.params.max_tokens:
            finish, safe = "length", len(text)
        elif finish is not None:
            safe = len(text)
        if safe > r.emitted or finish is not None:
            s._emit(TokenEvent(text[r.emitted:safe], finish))
            r.emitted = max(r.emitted, safe)
        r.done = finish is not None
