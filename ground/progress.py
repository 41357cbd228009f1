"""The day's progress inferred from the positions, for the stops the bus's geofence did not
report: a stop reached, left, driven past or skipped.

The geofence on the bus (onboard/geofence.py) reports an arrival only inside the stop's
radius; a bus parked 200 m away on market day, a fix rejected or the GPS lost across the
arrival, a stop skipped without a cancellation leave the ground "heading to" a stop the bus
has passed, and every later stop chained on it. From the day's track (ground/state.py) the
ground infers, in the manner of a trip/stop report:

- *reached*: parked (not moving) within `NEAR_M` of the stop for `DWELL`, around its
  planned time; the arrival is dated when it stopped (or, after a gap in the positions,
  when it would have covered the last stretch at its last speed);
- *left*: moving `LEAVE_M` away from where it parked; dated when it started moving;
- *driven past*: within `PASS_M` of the stop without parking, then `PASS_M + 500 m` away;
- *skipped*: a later stop reached; or moving away from the stop (`AWAY_M` more than it was
  at its closest, never within `PASS_M`) while getting closer to the next one.

An arrival the bus reported wins over an inferred one. The work is incremental: the
inference is kept on the vehicle's state and each call reads only the positions that came
since the last (every page view asks for the forecast).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ground.state import VehicleState
from medicobus import contract
from medicobus.geo import distance_m
from medicobus.motion import moving

NEAR_M = 400.0  # a bus parked this close to its stop is there (a square, a car park nearby)
DWELL = timedelta(minutes=3)  # parked this long: longer than a junction or a level crossing
LEAVE_M = 300.0
PASS_M = 300.0
AWAY_M = 2000.0  # further from a stop it never came near, and nearer the next: skipped
AWAY_LAST_M = 5000.0  # the same for the day's last stop (no next one to get closer to)
EARLY = timedelta(minutes=90)  # a stop reached this long before its planned arrival counts
LATE = timedelta(hours=3)  # and this long after its planned departure
SILENT = timedelta(minutes=15)  # a parked bus reports every 10 min: still there until then

Point = tuple[datetime, float, float, float | None]
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Inferred:
    arrivals: dict[str, datetime]
    departures: dict[str, datetime]
    missed: frozenset[str]  # driven past or skipped


@dataclass
class _Progress:
    key: tuple[str, ...]
    seen: int = 0  # positions of the track read
    arrivals: dict[str, datetime] = field(default_factory=dict)
    departures: dict[str, datetime] = field(default_factory=dict)
    missed: set[str] = field(default_factory=set)
    next: int = 0  # the next visit to reach
    at: int | None = None  # the visit the bus is at (reached, not left)
    at_since: datetime | None = None  # since when
    spot: tuple[float, float] | None = None  # where it parked there
    started: datetime | None = None  # moving again since, at that stop
    dwell: tuple[int, datetime] | None = None  # parked near this visit since
    closest: dict[int, tuple[float, float | None]] = field(default_factory=dict)
    # visit -> (its least distance so far, the next visit's distance at that moment)
    last: Point | None = None


def infer(visits: Sequence[contract.PlannedVisit], state: VehicleState,
          now: datetime) -> Inferred:
    """What the positions say of the day's visits that the bus's events do not."""
    with _LOCK:  # pages ask from several threads; the inference is kept on the state
        return _infer(visits, state, now)


def _infer(visits: Sequence[contract.PlannedVisit], state: VehicleState,
           now: datetime) -> Inferred:
    key = tuple(v.visit for v in visits)
    p = state.progress
    if not isinstance(p, _Progress) or p.key != key:
        p = state.progress = _Progress(key)
    _sync(p, visits, state)
    new = min(state.moves - p.seen, len(state.track))
    points = list(state.track)[len(state.track) - new:] if new else []
    p.seen = state.moves
    for point in points:
        _step(p, visits, point)
        _sync(p, visits, state)
        p.last = point
    if p.dwell is not None and p.last is not None and not moving(p.last[3]) \
            and now - p.last[0] < SILENT and now - p.dwell[1] >= DWELL:
        _reach(p, p.dwell[0], p.dwell[1], p.last)  # parked since, and still no news
    return Inferred(dict(p.arrivals), dict(p.departures), frozenset(p.missed))


def _sync(p: _Progress, visits: Sequence[contract.PlannedVisit], state: VehicleState) -> None:
    """The bus's own events first: its latest arrival is where it is, or has been."""
    reported = [i for i, v in enumerate(visits) if v.visit in state.arrivals]
    if reported and reported[-1] >= p.next:
        i = reported[-1]
        p.missed.update(v.visit for v in visits[p.next:i] if v.visit not in state.arrivals
                        and v.visit not in p.arrivals)  # fmt: skip
        p.next, p.at, p.dwell, p.started = i + 1, i, None, None
        p.spot, p.at_since = None, state.arrivals[visits[i].visit]
    if p.at is not None and visits[p.at].visit in state.departures:
        p.at = None


def _step(p: _Progress, visits: Sequence[contract.PlannedVisit], point: Point) -> None:
    ts, lat, lon, speed = point
    parked = not moving(speed)
    if p.at is not None and (p.at_since is None or ts >= p.at_since):
        # (A position from before the arrival, read after the event: not a departure.)
        v = visits[p.at]
        if p.spot is None and parked:  # reported arrived: where it parks is where it stops
            p.spot = (lat, lon)
        far = distance_m(*p.spot, lat, lon) > LEAVE_M if p.spot else \
            distance_m(v.lat, v.lon, lat, lon) > NEAR_M + LEAVE_M
        if far:
            p.departures.setdefault(v.visit, p.started or ts)
            p.at, p.started = None, None
        elif parked:
            p.started = None
        elif p.started is None:
            p.started = ts
    for j in (p.next, p.next + 1):
        if j >= len(visits) or j < p.next:
            continue
        v = visits[j]
        if not v.arrive - EARLY <= ts <= v.depart + LATE:
            continue
        d = distance_m(v.lat, v.lon, lat, lon)
        following = visits[j + 1] if j + 1 < len(visits) else None
        d_next = distance_m(following.lat, following.lon, lat, lon) if following else None
        closest = p.closest.get(j)
        if closest is None or d < closest[0]:
            p.closest[j] = closest = (d, d_next)
        if d <= NEAR_M and parked and p.at is None:
            if p.dwell is None or p.dwell[0] != j:
                p.dwell = (j, _stopped_at(p.last, point))
            elif ts - p.dwell[1] >= DWELL:
                _reach(p, j, p.dwell[1], point)
                return
            continue
        if p.dwell is not None and p.dwell[0] == j:
            p.dwell = None
        if j != p.next or parked:
            continue
        passed = closest[0] <= PASS_M and d > PASS_M + 500
        away = closest[0] > PASS_M and (
            d - closest[0] >= AWAY_LAST_M if d_next is None or closest[1] is None
            else d - closest[0] >= AWAY_M and d_next < closest[1] - AWAY_M / 2)
        if passed or away:
            p.missed.add(v.visit)
            p.next = j + 1


def _reach(p: _Progress, j: int, since: datetime, point: Point) -> None:
    visits_skipped = range(p.next, j)
    p.missed.update(p.key[i] for i in visits_skipped if p.key[i] not in p.arrivals)
    p.arrivals.setdefault(p.key[j], since)
    p.next, p.at, p.dwell, p.started = j + 1, j, None, None
    p.spot, p.at_since = (point[1], point[2]), since


def _stopped_at(last: Point | None, point: Point) -> datetime:
    """When the bus stopped where `point` finds it parked: at `point`, or, after a gap in
    the positions (GPS lost), when it would have covered the way from the last one at the
    speed it had."""
    if last is None or not moving(last[3]) or last[3] is None:
        return point[0]
    way = distance_m(last[1], last[2], point[1], point[2])
    return min(point[0], last[0] + timedelta(seconds=way / last[3]))
