"""The live state stays bounded whatever a bus sends: what is kept per visit and per sensor
expires, and is capped, while today's and the latest stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ground.state import (
    KEEP_VISITS,
    MAX_READINGS,
    MAX_VISITS,
    PRUNE_EVERY,
    LiveState,
)
from medicobus import contract

VEHICLE = "perche-1"
START = datetime(2026, 11, 1, 8, tzinfo=UTC)


def test_visits_expire_and_are_capped() -> None:
    state = LiveState()
    at = START
    for i in range(3 * PRUNE_EVERY):  # a visit every ten minutes for three weeks
        at = START + timedelta(minutes=10 * i)
        state.apply(contract.VisitEvent(vehicle=VEHICLE, ts=at, event="arrival",
                                        visit=f"visit-{i:05d}", stop="noce", lat=48.38,
                                        lon=0.68), at)  # fmt: skip
    arrivals = state.get(VEHICLE).arrivals
    assert len(arrivals) <= MAX_VISITS + PRUNE_EVERY
    assert min(arrivals.values()) >= at - KEEP_VISITS - timedelta(minutes=10 * PRUNE_EVERY)
    assert f"visit-{3 * PRUNE_EVERY - 1:05d}" in arrivals  # the latest is always kept


def test_quantities_a_bus_invents_are_capped_and_the_fridge_comes_back() -> None:
    state = LiveState()
    at = START
    for i in range(2 * PRUNE_EVERY):
        at = START + timedelta(seconds=i)
        state.apply(contract.Reading(vehicle=VEHICLE, ts=at, sensor=f"junk{i % 30}",
                                     values={f"q{i}_{k}": 1.0 for k in range(20)}), at)
        if i % 100 == 0:
            state.apply(contract.Reading(vehicle=VEHICLE, ts=at, sensor="fridge",
                                         values={"temp_c": 4.5}), at)
    readings = state.get(VEHICLE).readings
    # Pruned every PRUNE_EVERY messages to the newest MAX_READINGS, and what the messages
    # since have added: bounded. A flood can push out a quantity it outran...
    assert len(readings) <= MAX_READINGS + 20 * 21
    # ...which the sensor's next reading (the fridge's heartbeat: 30 s) brings back.
    state.apply(contract.Reading(vehicle=VEHICLE, ts=at, sensor="fridge",
                                 values={"temp_c": 5.0}), at)
    assert readings[("fridge", "temp_c")][1] == 5.0
