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
  step.  A model error fails only the requests in that step.
- :func:`plan_admission` is the pure scheduling policy.
- ``close(drain=True)``: stop accepting, finish every accepted request, stop.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from npusuite.platform.engine.errors import EngineBusyError, EngineClosedError
from npusuite.platform.engine.observer import EngineObserver, NullObserver
from npusuite.platform.engine.sampling import SamplingParams, make_generator, sample, stop_cut

logger = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass(frozen=True)
class LLMConfig:
    #: requests decoded together in one step.
    max_running: int = 64
    max_queue_size: int = 256
    max_prompt_tokens: int = 1024
    #: prompts prefilled together when several join at once.
    max_prefill_batch: int = 16


@dataclass(frozen=True)
class TokenEvent:
    """One streamed piece of a generation.  The last event has ``finish_reason`` set."""

    text: str
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    error: str | None = None


class GenerationStream:
    """Handle of one generation: iterate for :class:`TokenEvent` s, or call :meth:`result`."""

    def __init__(self, prompt_ids: list[int], params: SamplingParams, model_ref: str):
        self.id = next(_ids)
        self.prompt_ids = prompt_ids
        self.params = params
        self.model_ref = model_ref
        self.created_s = time.monotonic()
        self.first_token_s: float | None = None
        self.completion_ids: list[int] = []
        self.finish_reason: str | None = None
        self.cancelled = threading.Event()
        self._events: queue.Queue[TokenEvent] = queue.Queue()
        self._on_done: list = []

    def __iter__(self):
        while True:
            event = self._events.get()
            yield event
            if event.finish_reason is not None:
                return

    def result(self, timeout_s: float | None = None) -> tuple[str, str]:
        """Block until done; returns (text, finish_reason).  Raises RuntimeError on a model error."""
        parts, deadline = [], None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = self._events.get(timeout=remaining)
            parts.append(event.text)
            if event.finish_reason == "error":
                raise RuntimeError(event.error)
            if event.finish_reason is not None:
                return "".join(parts), event.finish_reason

    def cancel(self) -> None:
        self.cancelled.set()

    def add_done_callback(self, fn) -> None:
        self._on_done.append(fn)

    def _emit(self, event: TokenEvent) -> None:
        self._events.put(event)
        if event.finish_reason is not None:
            self.finish_reason = event.finish_reason
            for fn in self._on_done:
                fn(self)


@dataclass
class _Running:
    stream: GenerationStream
    generator: object
    pending: int = -1  # sampled, not yet fed to the model
    emitted: int = 0  # characters of text already streamed
    last_token_s: float = 0.0
    done: bool = False


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
        self._waiting: deque[GenerationStream] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._running: list[_Running] = []
        self._state = None
        self._worker = threading.Thread(target=self._run, name=f"llm-{self.name}", daemon=True)
        self._worker.start()

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> GenerationStream:
        """Queue a generation.  Raises EngineBusyError, EngineClosedError, ValueError (prompt too long)."""
        if len(prompt_ids) > self.config.max_prompt_tokens:
            raise ValueError(f"prompt has {len(prompt_ids)} tokens; the limit is {self.config.max_prompt_tokens}")
        stream = GenerationStream(list(prompt_ids), params, getattr(self.lm, "ref", self.name))
        with self._cond:
            if self._closed:
                raise EngineClosedError(f"{self.name} is closed")
            if len(self._waiting) >= self.config.max_queue_size:
                raise EngineBusyError(f"{self.name}: {len(self._waiting)} generations waiting", retry_after_s=1.0)
            self._waiting.append(stream)
            self.observer.queue_depth(self.name, len(self._waiting))
            self._cond.notify()
        return stream

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
            except Exception as exc:  # fail the requests in this step, keep serving
                logger.exception("%s: step failed", self.name)
                for r in self._running:
                    r.stream._emit(TokenEvent("", "error", f"model error: {exc}"))
                for s in joining:
                    if s.finish_reason is None:
                        s._emit(TokenEvent("", "error", f"model error: {exc}"))
                self._running, self._state = [], None

    def _step(self, joining: list[GenerationStream]) -> None:
        """One iteration: prefill the joiners, decode one token for every row already running, merge."""
        import torch

        lm = self.lm
        joining = [s for s in joining if not self._finish_if_cancelled(s)]
        new_rows, new_state = [], None
        if joining:
            t0 = time.monotonic()
            logits, new_state = lm.prefill([s.prompt_ids for s in joining])
            new_rows = [_Running(s, make_generator(s.params)) for s in joining]
            tokens = sample(logits, [s.params for s in joining], [r.generator for r in new_rows])
            self.observer.batch(self.name, len(joining), [t0 - s.created_s for s in joining], time.monotonic() - t0)
            for r, tok in zip(new_rows, tokens, strict=True):
                self._accept(r, tok)
        if self._running:
            # rows already running advance in the same iteration, so a stream of joiners never stalls them
            t0 = time.monotonic()
            fed = torch.tensor([r.pending for r in self._running], dtype=torch.long)
            logits, self._state = lm.decode(self._state, fed)
            tokens = sample(logits, [r.stream.params for r in self._running], [r.generator for r in self._running])
            self.observer.batch(self.name, len(self._running), [], time.monotonic() - t0)
            for r, tok in zip(self._running, tokens, strict=True):
                self._accept(r, tok)
        if new_rows:
            self._state = lm.merge(self._state, new_state)
            self._running.extend(new_rows)
        keep = [i for i, r in enumerate(self._running) if not r.done and not self._finish_if_cancelled(r.stream)]
        if len(keep) != len(self._running):
            self._state = lm.select(self._state, keep) if self._state is not None else None
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
