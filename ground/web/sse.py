"""One Server-Sent Events stream, for the commune pages and the fleet dashboard alike.

The board calls its listeners from the pipeline's thread; each stream registers a listener
that hops onto the event loop with `loop.call_soon_threadsafe` and wakes the stream's
queue. A burst of changes coalesces into one event, which then carries the fresh view;
without changes the stream still sends every `refresh_s` (times on the page move, and it
keeps proxies from closing an idle connection).

The views the streams send are made by `made_aside`: on one worker thread, one at a time.
One batch can wake hundreds of streams at once; made on the event loop, their views would
hold it for as long, and every other request waits for the loop (a commune page, the API);
made on the request threads' pool, hundreds of them would take its threads and fight for
the interpreter together.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi.responses import StreamingResponse

Listener = Callable[[frozenset[str]], None]
T = TypeVar("T")
# One per event loop (a limiter belongs to the loop it first waited in; tests run several).
_one_at_a_time: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = \
    weakref.WeakKeyDictionary()


async def made_aside(make: Callable[[], T]) -> T:
    """`make()` on the streams' worker thread (see above)."""
    loop = asyncio.get_running_loop()
    limiter = _one_at_a_time.get(loop)
    if limiter is None:
        limiter = _one_at_a_time[loop] = CapacityLimiter(1)
    return await anyio.to_thread.run_sync(make, limiter=limiter)


class Notifier(Protocol):
    """ground.board.Board, as streams use it."""

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...


@dataclass(frozen=True)
class Event:
    data: str
    name: str | None = None  # None: a plain message (with an id); else a named event
    last: bool = False  # the stream ends after this one


def _everything(_: frozenset[str]) -> bool:
    return True


async def stream(board: Notifier, next_event: Callable[[], Awaitable[Event | None]],
                 refresh_s: float,
                 concerns: Callable[[frozenset[str]], bool] = _everything) -> AsyncIterator[str]:
    """Send `next_event()` now, then again on each change that `concerns` this stream (it
    is called in the notifying thread, before the wake-up) or every `refresh_s`. A None
    event ends the stream; the subscription ends with it, however the client left."""
    loop = asyncio.get_running_loop()
    wake: asyncio.Queue[None] = asyncio.Queue()

    def _set() -> None:
        if wake.empty():  # coalesce: one pending wake-up is enough
            wake.put_nowait(None)

    def listener(codes: frozenset[str]) -> None:  # called from the pipeline's thread
        if concerns(codes):
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(_set)

    unsubscribe = board.subscribe(listener)
    try:
        yield "retry: 5000\n\n"
        n = 0
        while True:
            event = await next_event()
            if event is None:
                return
            if event.name is None:
                n += 1
                yield f"id: {n}\ndata: {event.data}\n\n"
            else:
                yield f"event: {event.name}\ndata: {event.data}\n\n"
            if event.last:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.get(), timeout=refresh_s)
            while not wake.empty():  # a burst that came in meanwhile: one event
                wake.get_nowait()
    finally:
        unsubscribe()


def response(events: AsyncIterator[str]) -> StreamingResponse:
    """The stream as an HTTP response: never cached, never buffered by a proxy (nginx)."""
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
