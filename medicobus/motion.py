"""Whether the bus is moving, and whether it could have moved so far so fast: one
definition for the bus and the ground.

A parked bus's GPS speed wanders by a few tenths of a metre per second; walking pace is
above that jitter and below any driving, so a bus is moving from MOVING_SPEED_KMH up. A
médicobus is a motorhome: going from one fix to the next faster than MAX_PLAUSIBLE_KMH
means one of them is wrong (a receiver's start-up jump, a multipath fix 670 km away).
"""

from __future__ import annotations

import math
from datetime import datetime

from medicobus.geo import EARTH_RADIUS_M, distance_m

KMH_PER_MS = 3.6
MOVING_SPEED_KMH = 5.0
MAX_PLAUSIBLE_KMH = 160.0
UNSTATED_ERROR_M = 10.0  # what a fix that states no error is allowed
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180  # of latitude; of longitude at most


def moving(speed_ms: float | None, threshold_kmh: float = MOVING_SPEED_KMH) -> bool:
    """At `speed_ms` (metres per second, as GPS gives it), the bus is moving: at or above
    `threshold_kmh`. An unknown speed is not moving."""
    return speed_ms is not None and speed_ms * KMH_PER_MS >= threshold_kmh


def too_fast(a: tuple[float, float, float | None, datetime],
             b: tuple[float, float, float | None, datetime],
             max_kmh: float = MAX_PLAUSIBLE_KMH) -> bool:
    """Going from fix `a` to fix `b` (each lat, lon, error in metres or None, time) would
    take more than `max_kmh`, once each is allowed its own error. Two fixes at the same time
    (or in the wrong order) are too fast if they are apart at all: never a division by zero."""
    slack = (a[2] or UNSTATED_ERROR_M) + (b[2] or UNSTATED_ERROR_M)
    seconds = (b[3] - a[3]).total_seconds()
    reach = max(0.0, seconds) * max_kmh / KMH_PER_MS + slack  # the farthest it could go
    # The usual case without trigonometry: the way along the meridian, then along the
    # parallel (never longer than along the equator) is at least the great circle.
    if (abs(a[0] - b[0]) + abs(a[1] - b[1])) * METRES_PER_DEGREE <= reach:
        return False
    metres = max(0.0, distance_m(a[0], a[1], b[0], b[1]) - slack)
    if seconds <= 0:
        return metres > 0
    return metres / seconds * KMH_PER_MS > max_kmh
