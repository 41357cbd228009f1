"""A GPS fix as the bus sees it, and the interface every GPS source offers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from medicobus import contract


@dataclass(frozen=True)
class Fix:
    """One reading from a GPS source.

    `ts` is the receiver's own time of the fix (GPS time, never the Pi's clock). `mode`
    follows gpsd: 0 or 1 no fix, 2 a 2D fix, 3 a 3D fix. Without a fix `lat`/`lon` are NaN.
    `speed` in m/s, `heading` in degrees from true north, `acc` the horizontal error in
    metres (95 %), each None when the receiver does not say. `simulated`: the receiver says
    the fix is invented (a demo mode, a simulator), not measured.
    """

    ts: datetime
    lat: float
    lon: float
    mode: int = 3
    speed: float | None = None
    heading: float | None = None
    acc: float | None = None
    simulated: bool = False

    @property
    def has_fix(self) -> bool:
        return self.mode >= 2 and math.isfinite(self.lat) and math.isfinite(self.lon)

    def position(self, vehicle: str) -> contract.Position:
        """The Position message for this fix, rounded as it crosses the air. Raises
        pydantic's ValidationError for what the contract refuses."""
        return contract.Position(
            vehicle=vehicle, ts=self.ts, lat=round(self.lat, 6), lon=round(self.lon, 6),
            speed=_rounded(self.speed, 1), heading=_rounded(self.heading, 0),
            acc=_rounded(self.acc, 0),
        )  # fmt: skip


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class GpsSource(Protocol):
    def read(self) -> Fix | None:
        """The latest reading, or None when the source has nothing to say right now
        (receiver unplugged, gpsd down or hung). Never raises: a source rides through."""
        ...

    def close(self) -> None: ...
