"""A GPS fix as the bus sees it, and the interface every GPS source offers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Fix:
    """One reading from a GPS source.

    `mode` follows gpsd: 0 or 1 no fix, 2 a 2D fix, 3 a 3D fix. Without a fix `lat`/`lon`
    are NaN. `speed` in m/s, `heading` in degrees from true north, `acc` the horizontal
    error in metres (95 %), each None when the receiver does not say.
    """

    ts: datetime
    lat: float
    lon: float
    mode: int = 3
    speed: float | None = None
    heading: float | None = None
    acc: float | None = None

    @property
    def has_fix(self) -> bool:
        return self.mode >= 2 and math.isfinite(self.lat) and math.isfinite(self.lon)


class GpsSource(Protocol):
    def read(self) -> Fix | None:
        """The latest reading, or None when the source has nothing to say right now
        (receiver unplugged, gpsd down or hung). Never raises: a source rides through."""
        ...

    def close(self) -> None: ...
