"""Time as the system sees it: real on the bus and the ground, accelerated in the demo.

Every component that asks "what time is it?" or waits takes a Clock, so the demo can run a
whole service day in minutes and tests can pin time without patching.
"""

from __future__ import annotations

import logging
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


log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class GpsSteppedClock:
    """`base` (the system's clock), stepped forward to GPS time when `base` is obviously
    behind it: a Raspberry Pi has no real-time clock, boots at the time it last saved (or
    older) and may run months behind until NTP answers, which a bus on rural roads may not
    reach for days. Everything stamped with a clock that far behind is set aside by the
    ground (ground/timebounds.py).

    `observe` is given the time of each fix the agent accepted (the receiver's own time).
    GPS more than `threshold_s` ahead of `base`: the clock says `base` plus that
    difference. Only forward: a receiver with the GPS week rollover bug dates its fixes
    years back, while a clock set by NTP is right; and within the threshold `base` is
    trusted again (NTP set it), so the step is dropped. A step is logged."""

    def __init__(self, base: Clock, threshold_s: float = 3600.0) -> None:
        self.base = base
        self.threshold = timedelta(seconds=threshold_s)
        self.step = timedelta(0)

    def now(self) -> datetime:
        return self.base.now() + self.step

    @property
    def speed(self) -> float:
        """How much faster than real time the base runs (the demo's clock): what paces the
        sensors' threads (onboard/telemetry/sensors/runner.py)."""
        return float(getattr(self.base, "speed", 1.0))

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def observe(self, gps_time: datetime) -> None:
        behind = gps_time - self.base.now()
        if behind <= self.threshold:
            if self.step:
                log.warning("the system clock agrees with GPS again: no longer stepped")
                self.step = timedelta(0)
        elif abs(behind - self.step) > self.threshold:  # a new step, not a fix's latency
            log.warning("the system clock is %s behind GPS time: stamping with GPS time",
                        behind)
            self.step = behind


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
