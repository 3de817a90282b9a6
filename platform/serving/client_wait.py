"""Waiting for engine work on the event loop, and giving it up when the client leaves.

Rules:
- Routes never park a thread on engine work: a tensor request's future and
  a generation's stream are awaited on the event loop, so slow models
  cannot exhaust a thread pool and starve other models' requests (the
  engine's bounded queues do the admission, answering 503 at once).
- While a request waits, its connection is watched: when the client
  disconnects, ``cancel`` runs at once (a queued tensor request is then
  never computed; a generation's rows leave the batch at the next step) and
  :class:`ClientDisconnected` is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

from npusuite.platform.serving.errors import ClientDisconnected

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    # the body has been read, so the next ASGI message is the disconnect (or nothing until it comes)
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


async def until_done_or_gone(request: Request, work: Awaitable[T], cancel: Callable[[], None]) -> T:
    """Await ``work``; if the client disconnects first, call ``cancel`` and raise ClientDisconnected.
    Any exception of ``work`` also calls ``cancel`` (so nothing it started keeps running) and propagates."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        cancel()
        task.cancel()
        task.add_done_callback(_consume)
        raise
    finally:
        watch.cancel()
    if not task.done():
        cancel()
        task.cancel()
        task.add_done_callback(_consume)  # nobody awaits it any more; do not log "never retrieved"
        raise ClientDisconnected("client disconnected; its work was cancelled")
    if task.exception() is not None:
        cancel()
    return task.result()
