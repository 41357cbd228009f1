"""What a bus puts in its outbox over a stretch of its day, made from the simulated tournée
of Monday 23 November 2026 (onboard/telemetry/simulated.py: the real roads' shape, speeds,
stops and a GPS dropout): positions, arrival and departure events and equipment readings,
in the order the bus makes them, each with an id that says what it is.

The same call gives the same messages in every process, so the bus process (tests/
field_bus.py) feeds them and the test knows exactly what the ground must end up storing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cache
from typing import Literal

from ground.fleet import day_plan, load_fleet
from medicobus import contract
from onboard.telemetry.simulated import Drive, Tournee
from tests.harness import FLEET, MONDAY_8AM, VEHICLE

DEPOT = (48.5236, 0.5472)  # Mortagne-au-Perche
MIDNIGHT = MONDAY_8AM.replace(hour=0)
Message = contract.Position | contract.VisitEvent | contract.Reading
READING_EVERY_S = 5  # house battery and fridge all day, the engine while it runs


@cache
def tournee() -> Tournee:
    plan = day_plan(load_fleet(FLEET), VEHICLE, MONDAY_8AM.date())
    return Tournee.build(plan, DEPOT, start_delay_s=600, seed=3)


def drive_hour() -> tuple[datetime, datetime]:
    """An hour around the first departure: parked at Nocé, then the drive to Bellême and
    the arrival there."""
    stop = tournee().stops[0]
    start = stop.depart - timedelta(minutes=20)
    return start, start + timedelta(hours=1)


def whole_day() -> tuple[datetime, datetime]:
    return MIDNIGHT, MIDNIGHT + timedelta(days=1)


def messages(start: datetime, end: datetime, moving_every_s: int,
             parked_every_s: int) -> list[Message]:
    """Everything the bus puts from `start` to `end`, oldest first: a position every
    `moving_every_s` while driving and every `parked_every_s` while parked (none while the
    GPS has no fix), the events of the stops, and readings."""
    made: list[tuple[datetime, int, Message]] = []
    for n, message in enumerate([*_positions(start, end, moving_every_s, parked_every_s),
                                 *_events(start, end), *_readings(start, end)]):
        made.append((message.ts, n, message))
    return [m for _, _, m in sorted(made, key=lambda t: (t[0], t[1]))]


def live_position(n: int, after: datetime) -> contract.Position:
    """Where the bus is now, parked at the depot after the day: the n-th live fix."""
    fix = tournee().fix_at(after + timedelta(seconds=n))
    return _with_id(fix.position(VEHICLE), f"live{n:08d}")


def _with_id(position: contract.Position, message_id: str) -> contract.Position:
    return position.model_copy(update={"id": message_id})


def _positions(start: datetime, end: datetime, moving_every_s: int,
               parked_every_s: int) -> Iterator[Message]:
    t, n = start, 0
    while t < end:
        driving = isinstance(tournee().phase_at(t), Drive)
        fix = tournee().fix_at(t)
        if fix.has_fix:
            yield _with_id(fix.position(VEHICLE), f"pos{n:08d}")
            n += 1
        t += timedelta(seconds=moving_every_s if driving else parked_every_s)


def _events(start: datetime, end: datetime) -> Iterator[Message]:
    n = 0
    for stop in tournee().stops:
        crossings: list[tuple[Literal["arrival", "departure"], datetime]] = [
            ("arrival", stop.arrive), ("departure", stop.depart)]
        for event, ts in crossings:
            if start <= ts < end:
                yield contract.VisitEvent(id=f"evt{n:08d}", vehicle=VEHICLE, ts=ts,
                                          event=event, visit=stop.visit, stop=stop.stop,
                                          lat=stop.lat, lon=stop.lon)
                n += 1


def _readings(start: datetime, end: datetime) -> Iterator[Message]:
    n, t = 0, start
    while t < end:
        hours = (t - MIDNIGHT).total_seconds() / 3600
        values: dict[str, dict[str, float | None]] = {
            "battery": {"soc_pct": round(90 - hours, 1), "voltage_v": 12.6},
            "fridge": {"temp_c": round(4.5 + (hours % 3) / 10, 2)}}
        if isinstance(tournee().phase_at(t), Drive):
            values["engine"] = {"coolant_c": 88.0, "rpm": 1800.0}
        for sensor, quantities in values.items():
            yield contract.Reading(id=f"rdg{n:08d}", vehicle=VEHICLE, ts=t, sensor=sensor,
                                   values=quantities)
            n += 1
        t += timedelta(seconds=READING_EVERY_S)

