"""A simulated service day, for the demo and the tests: where the bus is at any time.

`Tournee.build(plan, depot)` lays out the day as a timeline of phases: parked at the depot,
then for each planned visit a drive to its stop and a wait there, then the drive home and
parked at the depot again. Each drive follows a winding road (a polyline with smooth lateral
offsets, about 1.3 x the straight distance) through two villages (40 km/h there and when
leaving or entering a commune, 80 km/h on open road). One leg has a ~45 s stop at a junction,
another a ~90 s GPS dropout (fixes with mode 0 and NaN position while the bus keeps going).

The bus leaves the depot to arrive `early_s` before the first planned arrival, plus
`start_delay_s` (a late start for the demo). At each stop it stays as long as planned; when it
arrived late it leaves late by as much (the queue takes the time it takes), so a late start
makes the morning late. It never leaves a stop before the planned departure.

A `Conditions` makes the day one of a real month (bench/eta_accuracy.py): the weather's and
the traffic's pace, a bus parked off its stop's coordinates, a stop skipped or driven past, a
session that overruns, the GPS lost across an arrival. With conditions, every leg follows the
road of that leg (the same road every week: the tournée repeats), not one of the day's seed.

Everything is deterministic for a seed: `fix_at(t)` is a pure function of `t`.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from medicobus.clock import Clock
from medicobus.contract import Plan, PlannedVisit
from medicobus.geo import bearing_deg, distance_m, offset
from onboard.telemetry.fix import Fix

OPEN_ROAD_MPS = 80 / 3.6
VILLAGE_MPS = 40 / 3.6
VILLAGE_HALF_LENGTH_M = 400.0  # slow zone each side of a village centre
COMMUNE_SLOW_M = 500.0  # slow zone leaving and entering a stop or the depot
WINDING_RATIO = 1.3
ROAD_STEP_M = 100.0
JUNCTION_STOP_S = 45.0
DROPOUT_S = 90.0
PARKED_JITTER_M = 3.0
DRIVING_JITTER_M = 1.5
PARKED_ACC_M = 7.0
DRIVING_ACC_M = 9.0

LatLon = tuple[float, float]


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("naive datetime: the simulation runs on aware UTC times")
    return t.astimezone(UTC)


@dataclass(frozen=True)
class Road:
    """A polyline with the cumulative distance at each of its points."""

    points: tuple[LatLon, ...]
    cumulative_m: tuple[float, ...]

    @classmethod
    def through(cls, points: Sequence[LatLon]) -> Road:
        cumulative = [0.0]
        for (lat1, lon1), (lat2, lon2) in zip(points, points[1:], strict=False):
            cumulative.append(cumulative[-1] + distance_m(lat1, lon1, lat2, lon2))
        return cls(tuple(points), tuple(cumulative))

    @property
    def length_m(self) -> float:
        return self.cumulative_m[-1]

    def at(self, d: float) -> tuple[LatLon, float]:
        """The point `d` metres along the road and the road's heading there."""
        d = min(max(d, 0.0), self.length_m)
        i = max(1, bisect.bisect_left(self.cumulative_m, d))
        i = min(i, len(self.points) - 1)
        (lat1, lon1), (lat2, lon2) = self.points[i - 1], self.points[i]
        span = self.cumulative_m[i] - self.cumulative_m[i - 1]
        f = (d - self.cumulative_m[i - 1]) / span if span > 0 else 0.0
        point = (lat1 + f * (lat2 - lat1), lon1 + f * (lon2 - lon1))
        return point, bearing_deg(lat1, lon1, lat2, lon2)


def winding_road(a: LatLon, b: LatLon, rng: random.Random, ratio: float = WINDING_RATIO) -> Road:
    """A road from a to b that winds so that its length is about `ratio` x the straight line:
    a few sine bends of random phase, faded to zero at both ends, scaled by bisection."""
    straight = distance_m(*a, *b)
    if straight < 2 * ROAD_STEP_M:
        return Road.through([a, b])
    n = max(2, int(straight / ROAD_STEP_M))
    bends = [(k, rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 1.0)) for k in (2, 3, 5)]
    bearing = math.radians(bearing_deg(*a, *b))
    north, east = math.cos(bearing), math.sin(bearing)  # along the straight line

    def shape(s: float) -> float:
        wave = sum(w * math.sin(k * math.pi * s + phase) for k, phase, w in bends)
        return math.sin(math.pi * s) * wave

    def road(amplitude: float) -> Road:
        points = []
        for i in range(n + 1):
            s = i / n
            along, side = s * straight, amplitude * shape(s)
            points.append(offset(*a, along * north - side * east, along * east + side * north))
        points[-1] = b
        return Road.through(points)

    low, high = 0.0, straight
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if road(mid).length_m < ratio * straight else (low, mid)
    return road((low + high) / 2)


@dataclass(frozen=True)
class Drive:
    """Driving along `road`: `knots` are (seconds since start, metres along), linear between."""

    start: datetime
    road: Road
    knots: tuple[tuple[float, float], ...]
    villages_m: tuple[float, ...] = ()
    junction_m: float | None = None

    @property
    def duration_s(self) -> float:
        return self.knots[-1][0]

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)

    def progress(self, t: datetime) -> tuple[float, float]:
        """(metres along the road, speed in m/s) at `t`."""
        s = (t - self.start).total_seconds()
        times = [k[0] for k in self.knots]
        i = min(max(1, bisect.bisect_right(times, s)), len(self.knots) - 1)
        (t1, d1), (t2, d2) = self.knots[i - 1], self.knots[i]
        if s >= t2:
            return d2, 0.0
        speed = (d2 - d1) / (t2 - t1) if t2 > t1 else 0.0
        return d1 + speed * max(0.0, s - t1), speed


@dataclass(frozen=True)
class Park:
    """Parked at `where` from `start` to `end` (None: forever)."""

    start: datetime
    end: datetime | None
    where: LatLon
    label: str


@dataclass(frozen=True)
class StopTimes:
    """When the simulated bus is at a planned visit's stop, against the plan."""

    visit: str
    stop: str
    lat: float
    lon: float
    radius_m: float
    planned_arrive: datetime
    planned_depart: datetime
    arrive: datetime
    depart: datetime
    closes: datetime | None = None  # the session's end, when the bus waited on after it

    @property
    def session_end(self) -> datetime:
        return self.closes or self.depart

    @property
    def late_s(self) -> float:
        return (self.arrive - self.planned_arrive).total_seconds()


def speed_profile(road: Road, slow_zones: Sequence[tuple[float, float]],
                  pause_at_m: float | None = None, pause_s: float = JUNCTION_STOP_S,
                  pace: float = 1.0) -> tuple[tuple[float, float], ...]:
    """(time, distance) knots driving `road` at village speed in `slow_zones` and open-road
    speed elsewhere (both times `pace`), with a `pause_s` stop at `pause_at_m` if given."""
    marks = {0.0, road.length_m}
    for lo, hi in slow_zones:
        marks.update(m for m in (lo, hi) if 0 < m < road.length_m)
    if pause_at_m is not None:
        marks.add(pause_at_m)
    ordered = sorted(marks)
    knots = [(0.0, 0.0)]
    for d1, d2 in zip(ordered, ordered[1:], strict=False):
        mid = (d1 + d2) / 2
        slow = any(lo <= mid <= hi for lo, hi in slow_zones)
        speed = (VILLAGE_MPS if slow else OPEN_ROAD_MPS) * pace
        knots.append((knots[-1][0] + (d2 - d1) / speed, d2))
        if pause_at_m is not None and d2 == pause_at_m:
            knots.append((knots[-1][0] + pause_s, d2))
    return tuple(knots)


def plan_drive(start: datetime, a: LatLon, b: LatLon, rng: random.Random,
               junction: bool = False, pace: float = 1.0,
               road_rng: random.Random | None = None) -> Drive:
    """A drive from a to b leaving at `start`, through two villages; `road_rng` lays out
    the road and its villages (the day's `rng` if not given)."""
    shape = road_rng or rng
    road = winding_road(a, b, shape)
    length = road.length_m
    villages = tuple(sorted(shape.uniform(0.2, 0.45) * length if i == 0
                            else shape.uniform(0.55, 0.8) * length for i in range(2)))
    zones = [(0.0, COMMUNE_SLOW_M), (length - COMMUNE_SLOW_M, length)]
    zones += [(v - VILLAGE_HALF_LENGTH_M, v + VILLAGE_HALF_LENGTH_M) for v in villages]
    junction_m = (villages[0] + villages[1]) / 2 if junction else None
    knots = speed_profile(road, zones, junction_m, pace=pace)
    return Drive(start, road, knots, villages, junction_m)


@dataclass(frozen=True)
class Conditions:
    """What makes one day of the tournée differ from its timetable."""

    pace: float = 1.0  # the day's speed factor (snow, fog: under 1)
    leg_pace: tuple[float, ...] = ()  # each leg's own factor (traffic, roadworks), times pace
    park_off_m: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # visit -> (north, east) metres from its stop's coordinates where the bus parks
    skipped: frozenset[str] = frozenset()  # visits not driven to: on to the next stop
    passed: frozenset[str] = frozenset()  # visits driven through without stopping
    overrun_s: Mapping[str, float] = field(default_factory=dict)  # visit -> stays longer
    # visit -> (seconds before its arrival, seconds after): the GPS lost meanwhile
    lost_at_arrival: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # A gap this long before the next stop (lunch) is waited out where the bus is, so as to
    # arrive there as it does at the first stop; None: on the road once the session ends.
    wait_out_s: float | None = 1800.0

    def leg(self, i: int) -> float:
        return self.pace * (self.leg_pace[i] if i < len(self.leg_pace) else 1.0)


@dataclass
class Tournee:
    """The simulated day: `phases` (Park and Drive, in order, back to back) and `stops`."""

    phases: list[Park | Drive]
    stops: list[StopTimes]
    dropouts: list[tuple[datetime, datetime]]
    seed: int
    _starts: list[datetime] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._starts = [p.start for p in self.phases]

    @classmethod
    def build(cls, plan: Plan, depot: LatLon, start_delay_s: float = 0.0, seed: int = 0,
              early_s: float = 300.0, conditions: Conditions | None = None) -> Tournee:
        c = conditions or Conditions(wait_out_s=None)  # the day as it always was
        everything = sorted(plan.visits, key=lambda v: v.arrive)
        visits = [v for v in everything if v.visit not in c.skipped]
        if not visits:
            raise ValueError("the plan has no visits")
        rng = random.Random(seed)
        n_legs = len(visits) + 1
        junction_leg = rng.randrange(n_legs)
        dropout_leg = (junction_leg + 1 + rng.randrange(n_legs - 1)) % n_legs

        def drive(i: int, start: datetime, a: tuple[str, LatLon], b: tuple[str, LatLon]
                  ) -> Drive:
            road = random.Random(f"road:{a[0]}>{b[0]}") if conditions else None
            return plan_drive(start, a[1], b[1], rng, junction_leg == i, c.leg(i), road)

        def parking(visit: PlannedVisit) -> tuple[str, LatLon]:
            north, east = c.park_off_m.get(visit.visit, (0.0, 0.0))
            return visit.stop, offset(visit.lat, visit.lon, north, east)

        legs: list[Drive] = []
        stops: list[StopTimes] = []
        position: tuple[str, LatLon] = ("depot", depot)
        first = drive(0, _utc(visits[0].arrive), position, parking(visits[0]))
        leave = _utc(visits[0].arrive) - timedelta(seconds=first.duration_s + early_s
                                                   - start_delay_s)
        phases: list[Park | Drive] = [Park(leave - timedelta(days=1), leave, depot, "depot")]
        dropouts: list[tuple[datetime, datetime]] = []
        for i, visit in enumerate(visits):
            target = parking(visit)
            through = visit.visit in c.passed
            leg = (replace(first, start=leave) if i == 0
                   else drive(i, leave, position, target))
            waited = _utc(visit.arrive) - timedelta(seconds=leg.duration_s + early_s)
            if i > 0 and stops and stops[-1].depart == leave and c.wait_out_s is not None \
                    and (waited - leave).total_seconds() >= c.wait_out_s:
                # Lunch before the afternoon's stop: on the road to be there on time.
                parked = phases[-1]
                assert isinstance(parked, Park)
                stops[-1] = replace(stops[-1], depart=waited, closes=leave)
                phases[-1] = replace(parked, end=waited)
                leave, leg = waited, replace(leg, start=waited)
            legs.append(leg)
            arrive = leg.end
            phases.append(leg)
            position = target
            if through:  # on without stopping: the next leg starts where this one ends
                leave = arrive
                continue
            late = max(0.0, (arrive - _utc(visit.arrive)).total_seconds())
            depart = max(_utc(visit.depart) + timedelta(seconds=late + c.overrun_s.get(
                visit.visit, 0.0)), arrive)
            stops.append(StopTimes(visit.visit, visit.stop, visit.lat, visit.lon, visit.radius_m,
                                   _utc(visit.arrive), _utc(visit.depart), arrive, depart))
            phases.append(Park(arrive, depart, target[1], visit.stop))
            if visit.visit in c.lost_at_arrival:
                before, after = c.lost_at_arrival[visit.visit]
                dropouts.append((arrive - timedelta(seconds=before),
                                 arrive + timedelta(seconds=after)))
            leave = depart
        home = drive(len(visits), leave, position, ("depot", depot))
        legs.append(home)
        phases += [home, Park(home.end, None, depot, "depot")]
        return cls(phases, stops, [_dropout(legs[dropout_leg], rng), *dropouts], seed)

    # -- where is the bus -----------------------------------------------------------------

    @property
    def start(self) -> datetime:
        """When the bus leaves the depot."""
        return self.phases[1].start

    @property
    def end(self) -> datetime:
        """When the bus is back at the depot."""
        return self.phases[-1].start

    @property
    def drives(self) -> list[Drive]:
        return [p for p in self.phases if isinstance(p, Drive)]

    def phase_at(self, t: datetime) -> Park | Drive:
        i = bisect.bisect_right(self._starts, _utc(t)) - 1
        return self.phases[max(0, i)]

    def in_dropout(self, t: datetime) -> bool:
        return any(a <= t < b for a, b in self.dropouts)

    def fix_at(self, t: datetime) -> Fix:
        t = _utc(t)
        if self.in_dropout(t):
            return Fix(ts=t, lat=math.nan, lon=math.nan, mode=0)
        phase = self.phase_at(t)
        noise = random.Random(f"{self.seed}:{math.floor(t.timestamp())}")
        if isinstance(phase, Park):
            lat, lon = _jitter(phase.where, noise, PARKED_JITTER_M)
            return Fix(ts=t, lat=lat, lon=lon, mode=3, speed=round(noise.uniform(0, 0.3), 2),
                       heading=None, acc=PARKED_ACC_M)
        along, speed = phase.progress(t)
        point, heading = phase.road.at(along)
        lat, lon = _jitter(point, noise, DRIVING_JITTER_M)
        return Fix(ts=t, lat=lat, lon=lon, mode=3, speed=round(speed, 2),
                   heading=round(heading, 1) if speed > 0 else None, acc=DRIVING_ACC_M)

    def fixes(self, start: datetime, end: datetime, step_s: float = 1.0) -> Iterator[Fix]:
        """fix_at every `step_s` from `start` (included) to `end` (excluded)."""
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        t, end = _utc(start), _utc(end)
        step = timedelta(seconds=step_s)
        while t < end:
            yield self.fix_at(t)
            t += step


def _dropout(drive: Drive, rng: random.Random) -> tuple[datetime, datetime]:
    """A DROPOUT_S gap in the middle part of `drive` (or all of it if shorter)."""
    room = max(0.0, drive.duration_s - DROPOUT_S)
    begin = drive.start + timedelta(seconds=room * rng.uniform(0.3, 0.7))
    return begin, min(drive.end, begin + timedelta(seconds=DROPOUT_S))


def _jitter(point: LatLon, noise: random.Random, metres: float) -> LatLon:
    return offset(point[0], point[1], noise.gauss(0, metres / 2), noise.gauss(0, metres / 2))


class SimulatedSource:
    """A GpsSource that reads the simulated tournée at the clock's time."""

    def __init__(self, tournee: Tournee, clock: Clock) -> None:
        self.tournee = tournee
        self.clock = clock

    def read(self) -> Fix | None:
        return self.tournee.fix_at(self.clock.now())

    def close(self) -> None:
        return None
