"""Whether the bus is moving: one definition for the bus and the ground.

A parked bus's GPS speed wanders by a few tenths of a metre per second; walking pace is
above that jitter and below any driving, so a bus is moving from MOVING_SPEED_KMH up.
"""

from __future__ import annotations

KMH_PER_MS = 3.6
MOVING_SPEED_KMH = 5.0


def moving(speed_ms: float | None, threshold_kmh: float = MOVING_SPEED_KMH) -> bool:
    """At `speed_ms` (metres per second, as GPS gives it), the bus is moving: at or above
    `threshold_kmh`. An unknown speed is not moving."""
    return speed_ms is not None and speed_ms * KMH_PER_MS >= threshold_kmh
