"""Time as the system sees it: real on the bus and the ground, accelerated in the demo.

Every component that asks "what time is it?" or waits takes a Clock, so the demo can run a
whole service day in minutes and tests can pin time without patching.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait for `seconds` of this clock's time."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


# The zone a fleet's timetable and a kiosk's times are in unless configured otherwise.
DEFAULT_ZONE = "Europe/Paris"

ENV = "MEDICOBUS_DEMO_CLOCK"


class AcceleratedClock:
    """Starts at `start` and runs `speed` times faster than real time.

    Processes of the demo (the kiosk beside the bus's agent) share one such clock through
    the environment: `to_env()` in one, `from_env()` in the other, anchored on wall time.
    """

    def __init__(self, start: datetime, speed: float, origin: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start.astimezone(UTC)
        self.speed = speed
        self.origin = time.time() if origin is None else origin

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.origin) * self.speed)

    def to_env(self) -> str:
        return f"{self.start.isoformat()}|{self.speed}|{self.origin}"

    @classmethod
    def from_env(cls, value: str) -> AcceleratedClock:
        start, speed, origin = value.split("|")
        return cls(datetime.fromisoformat(start), float(speed), float(origin))

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.speed)


def clock_from_env(environ: Mapping[str, str]) -> Clock:
    """The demo's shared accelerated clock when the demo set one, else the system's."""
    value = environ.get(ENV)
    return AcceleratedClock.from_env(value) if value else SystemClock()
