"""One generation as its caller sees it: a stream of token events, awaited from a thread or an event loop.

Rules:
- The scheduler's worker is the only writer (:meth:`GenerationStream._emit`);
  the last event has ``finish_reason`` set ("stop", "length", "cancelled",
  "error") and no event follows it.
- Readers block (:meth:`GenerationStream.result`, iteration) or await
  (:meth:`GenerationStream.aiter`, :meth:`GenerationStream.result_async`);
  awaiting ties up no thread, so slow generations cannot starve a server's
  thread pool.  An "error" event raises :class:`GenerationError`.
- :meth:`GenerationStream.cancel` asks the scheduler to drop the row before
  its next step; done callbacks run exactly once, even when added late.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from npusuite.platform.engine.errors import GenerationError
from npusuite.platform.engine.sampling import SamplingParams, TokenLogprob

_ids = itertools.count(1)


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
        #: with ``params.logprobs``: one TokenLogprob per sampled token, appended before its text is emitted.
        self.logprobs: list[TokenLogprob] = []
        self.finish_reason: str | None = None
        self.cancelled = threading.Event()
        self._events: queue.Queue[TokenEvent] = queue.Queue()
        self._on_done: list = []
        self._wakers: list = []
        self._lock = threading.Lock()

    def __iter__(self):
        while True:
            event = self._events.get()
            yield event
            if event.finish_reason is not None:
                return

    async def aiter(self) -> AsyncIterator[TokenEvent]:
        """The events, awaited on the running event loop (no thread blocks on the stream)."""
        loop, wake = asyncio.get_running_loop(), asyncio.Event()
        self._wakers.append(lambda: loop.call_soon_threadsafe(wake.set))
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                await wake.wait()
                wake.clear()  # cleared before the next get_nowait, so no event is missed
                continue
            yield event
            if event.finish_reason is not None:
                return

    def result(self, timeout_s: float | None = None) -> tuple[str, str]:
        """Block until done; returns (text, finish_reason).  Raises GenerationError on a model error."""
        parts, deadline = [], None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = self._events.get(timeout=remaining)
            parts.append(event.text)
            if event.finish_reason == "error":
                raise GenerationError(event.error)
            if event.finish_reason is not None:
                return "".join(parts), event.finish_reason

    async def result_async(self) -> tuple[str, str]:
        """:meth:`result` on the event loop.  Raises GenerationError on a model error."""
        parts = []
        async for event in self.aiter():
            parts.append(event.text)
            if event.finish_reason == "error":
                raise GenerationError(event.error)
            if event.finish_reason is not None:
                return "".join(parts), event.finish_reason
        raise GenerationError("the generation ended without a final event")

    def cancel(self) -> None:
        self.cancelled.set()

    def add_done_callback(self, fn) -> None:
        """Call ``fn(stream)`` once the stream finished (at once when it already has)."""
        with self._lock:
            if self.finish_reason is None:
                self._on_done.append(fn)
                return
        fn(self)

    def _emit(self, event: TokenEvent) -> None:
        self._events.put(event)
        for wake in list(self._wakers):
            try:
                wake()
            except RuntimeError:  # its event loop is closed: that reader is gone
                pass
        if event.finish_reason is not None:
            with self._lock:
                self.finish_reason = event.finish_reason
                callbacks, self._on_done = self._on_done, []
            for fn in callbacks:
                fn(self)
