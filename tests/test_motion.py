"""One definition of "moving", shared by the bus and the ground."""

from __future__ import annotations

from medicobus.motion import MOVING_SPEED_KMH, moving


def test_moving_from_walking_pace_up() -> None:
    assert MOVING_SPEED_KMH == 5.0
    assert moving(1.4)  # 5.04 km/h
    assert not moving(1.38)  # 4.97 km/h: a parked bus's GPS jitter stays below
    assert not moving(0.0)
    assert not moving(None)  # no speed in the fix: not known to move


def test_a_threshold_of_ones_own() -> None:
    assert moving(2.0, threshold_kmh=7.2)
    assert not moving(1.9, threshold_kmh=7.2)
