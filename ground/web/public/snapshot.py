"""The list of every commune, made at most once a second and served from memory.

At a thousand buses the list is thousands of communes, megabytes of JSON and half a
second of work, and every bus changes it every second: a client asking for it must not
pay that work, nor make the ground do it once per client. So the list is kept ready: a
request takes the last one made, and if it is older than `max_age_s`, one worker makes
the next in the background (stale-while-revalidate, as HTTP caches do). Only the first
request waits for it. Each commune's own page and API are made on demand, always fresh.

Making the list must not starve what else the ground does (ingest, the communes' own
pages and streams): a list whose making took `c` seconds of processor is kept for at
least `COST_FACTOR` × `c`, so the list costs at most a fifth of a core whatever the fleet
(at a thousand buses each sending every second, the list is then two to four seconds old).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
COST_FACTOR = 5.0


@dataclass(frozen=True)
class _Made(Generic[T]):
    value: T
    at: float  # time.monotonic() when it was made
    keep_s: float  # how long it is served before the next is made


class Snapshot(Generic[T]):
    def __init__(self, make: Callable[[], T], max_age_s: float = 1.0) -> None:
        self._make = make
        self.max_age_s = max_age_s
        self._made: _Made[T] | None = None
        self._lock = threading.Lock()
        self._making = False

    def get(self) -> T:
        made = self._made
        if made is None:
            with self._lock:  # the first request waits, and only one makes it
                if self._made is None:
                    self._made = self._made_now()
                return self._made.value
        if time.monotonic() - made.at > made.keep_s:
            self._refresh()
        return made.value

    def _refresh(self) -> None:
        with self._lock:
            if self._making:
                return
            self._making = True
        threading.Thread(target=self._remake, name="snapshot", daemon=True).start()

    def _remake(self) -> None:
        try:
            self._made = self._made_now()
        except Exception:  # the last list stays served; the next request tries again
            log.exception("the communes list could not be made")
        finally:
            with self._lock:
                self._making = False

    def _made_now(self) -> _Made[T]:
        spent = time.thread_time()  # the processor this thread used, not the time it waited
        value = self._make()
        spent = time.thread_time() - spent
        return _Made(value, time.monotonic(), max(self.max_age_s, COST_FACTOR * spent))
