"""What every source on the bus shares: `read()` never raises, connections are counted.

Each source foresees the failures it knows (unplugged, silent, garbage) and rides through
them; anything else is a bug, which must cost one reading, not the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


def guarded_read(what: str, stats: dict[str, int], read: Callable[[], T | None],
                 on_error: Callable[[str], None]) -> T | None:
    """`read()`, counted in `stats["reads"]`; an unforeseen exception is counted in
    `stats["errors"]`, logged, handed to `on_error` (drop the connection, back off) and
    answered with None."""
    stats["reads"] += 1
    try:
        return read()
    except Exception as exc:
        stats["errors"] += 1
        log.debug("%s read failed", what, exc_info=True)
        on_error(f"unexpected {type(exc).__name__}: {exc}")
        return None


def count_connection(stats: dict[str, int]) -> None:
    """A source (re)connected to its device: every connection after the first is a
    reconnection, which is what an installer looks at."""
    stats["connects"] += 1
    if stats["connects"] > 1:
        stats["reconnects"] += 1
