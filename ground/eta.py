"""Predicting when the bus reaches, and leaves, each remaining stop of its day.

The baseline is the timetable plus the current deviation; what we know refines it
(ground/accuracy.py scores it, bench/eta_accuracy.py measures it on a simulated month):

- where the bus is in its day: the arrivals and departures it reported, and what its
  positions show when it said nothing (ground/progress.py: parked near a stop outside the
  fence, driven past, skipped), so the ETAs aim at the next stop, not at one it passed;
- at a stop, a session ends when the queue is done, not at a fixed time: the kiosk
  forecasts when the people waiting and still booked will have been seen (`ends_at` of
  its queue message) and the bus leaves after packing up, not before the announced end
  unless staff closed the session; without the kiosk's forecast, as late past the planned
  end as it usually leaves that stop (learned: the queue, lunch before the afternoon's
  drive), or later if it arrived late (the doctor sees everyone booked);
- driving to the next stop: the learned time of that leg × the share of it still to go,
  read off the leg's learned road where the bus is on it (ground/roads.py: its time
  profile, slow stretches in it), else by straight line; a leg never driven, the
  remaining road distance over the bus's recent average speed; a bus not on the road yet,
  no sooner than the drive from where it waits;
- further stops follow in a chain: arrival = previous departure + travel time, never
  before the earliest the bus usually reaches that stop (the planned time until learned
  otherwise). A late morning therefore makes a late afternoon unless the lunch break
  absorbs the delay, as it does in real life;
- travel times are learned from past days when the same leg was driven (the tournée
  repeats weekly), and scaled by today's pace (`Pace`, a Kalman filter over the legs
  driven today against history); a leg not driven yet takes the road distance (the
  straight line × the fleet's learned road factor) at the fleet's usual speed on the legs
  it drove, and in the first weeks, before any, at the timetable's own speed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ground import roads
from ground.progress import infer
from ground.roads import Road
from ground.state import VehicleState
from ground.views import VisitStatus
from medicobus import contract
from medicobus.geo import distance_m
from medicobus.motion import moving

ROAD_FACTOR = 1.35  # road distance over straight-line distance, on winding rural roads
TYPICAL_SPEED = 55 / 3.6  # m/s, a bus on departmental roads through villages
MIN_SPEED, MAX_SPEED = 20 / 3.6, 90 / 3.6
LATE_AFTER = timedelta(minutes=5)
SETTLING = timedelta(minutes=5)  # "arrivé" before "en consultation"
PACK_UP = timedelta(minutes=10)  # from the last patient to the bus on the road
EARLY_RANK = 0.15  # which of the past arrivals against the timetable is "the earliest"
SEEN_WAITING = timedelta(minutes=15)  # a parked bus reports every 10 min: still where it was


@dataclass(frozen=True)
class Forecast:
    visit: contract.PlannedVisit
    status: VisitStatus
    arrive: datetime  # actual if arrived, else predicted
    depart: datetime  # actual if departed, else predicted
    delay_min: int
    arrived_at: datetime | None = None
    departed_at: datetime | None = None
    inferred: bool = False  # reached, left or missed as the positions say, not the bus
    road_left_m: float | None = None  # the road still to drive to it, on its learned road


class TravelModel:
    """What past days teach: the travel time between two stops (the median of observed
    legs), the road each leg is driven on (ground/roads.py), and how early the bus reaches
    each stop when nothing holds it back. Legs not driven yet: the road's length (the
    straight line × the fleet's learned road factor) at the timetable's own speed."""

    def __init__(self) -> None:
        self._observed: dict[tuple[str, str], list[float]] = {}
        self._early: dict[tuple[str, str], list[float]] = {}
        self._overrun: dict[tuple[str, str], list[float]] = {}
        self._roads: dict[tuple[str, str], Road] = {}
        self._factors: dict[tuple[str, str], float] = {}  # each leg's road factor
        self._factor = ROAD_FACTOR  # the fleet's usual one
        self._driven: float | None = None  # the fleet's usual speed on the legs it drove
        self._planned = TYPICAL_SPEED  # the timetable's, until a leg is driven

    def learn(self, legs: Iterable[tuple[str, str, float]]) -> None:
        for origin, dest, seconds in legs:
            self._observed.setdefault((origin, dest), []).append(seconds)
        self._driven = self._driven_speed()

    def learn_roads(self, learned: roads.Learned) -> None:
        """The roads and road factors of the legs driven, and from these the fleet's usual
        road factor, for the legs not driven yet."""
        self._roads.update(learned.roads)
        self._factors.update(learned.factors)
        if self._factors:
            self._factor = statistics.median(self._factors.values())
        self._driven = self._driven_speed()

    def seed(self, timetable: Iterable[Sequence[contract.PlannedVisit]]) -> None:
        """The speed the timetable plans between stops (its days' consecutive visits), for
        the first weeks, before any leg is driven: the median of the gaps that are a drive
        (not a lunch too)."""
        speeds = [s for day in timetable for a, b in zip(day, day[1:], strict=False)
                  if (s := self._planned_speed(a, b)) is not None]
        if speeds:
            self._planned = statistics.median(speeds)

    def learn_arrivals(self, arrivals: Iterable[tuple[contract.PlannedVisit, datetime]]
                       ) -> None:
        """Past arrivals at their planned visits: how early the bus comes to each stop."""
        for v, arrived in arrivals:
            self._early.setdefault(_entry(v), []).append((arrived - v.arrive).total_seconds())

    def learn_departures(self, departures: Iterable[tuple[contract.PlannedVisit, datetime]]
                         ) -> None:
        """Past departures from their planned visits: how long past its planned end the bus
        leaves each stop (the queue, lunch before the afternoon's drive)."""
        for v, left in departures:
            self._overrun.setdefault(_entry(v), []).append((left - v.depart).total_seconds())

    def overrun(self, v: contract.PlannedVisit) -> timedelta:
        """How long past its planned end the bus always leaves `v`: the least of its past
        departures (a lunch waited out there every week counts; a queue that ran over one
        day does not: that is the kiosk's to forecast); none until two weeks say so."""
        seen = self._overrun.get(_entry(v), ())
        return timedelta(seconds=max(0.0, min(seen))) if len(seen) >= 2 else timedelta(0)

    def learned(self, a: contract.PlannedVisit, b: contract.PlannedVisit) -> timedelta | None:
        seen = self._observed.get((a.stop, b.stop))
        return timedelta(seconds=statistics.median(seen)) if seen else None

    def road(self, a: contract.PlannedVisit, b: contract.PlannedVisit) -> Road | None:
        return self._roads.get((a.stop, b.stop))

    def length_m(self, a: contract.PlannedVisit, b: contract.PlannedVisit) -> float:
        """The road from `a` to `b`: learned, else the straight line × its road factor."""
        road = self.road(a, b)
        return road.length_m if road is not None else self.road_m(_straight(a, b), a, b)

    def road_m(self, straight_m: float, a: contract.PlannedVisit | None,
               b: contract.PlannedVisit) -> float:
        """The road distance of a straight line on the way from `a` to `b`, by the leg's
        road factor, else the fleet's usual one."""
        leg = self._factors.get((a.stop, b.stop)) if a is not None else None
        return straight_m * (leg or self._factor)

    def speed(self, a: contract.PlannedVisit | None, b: contract.PlannedVisit) -> float:
        """The speed to drive from `a` to `b` at, before the leg is learned: the fleet's
        usual speed on the legs it drove; in the first weeks, the timetable's (for this
        leg if its gap is a drive, else its usual one). Planned gaps hold the planner's
        slack: reality replaces them as soon as it is known."""
        if self._driven is not None:
            return self._driven
        planned = self._planned_speed(a, b) if a is not None else None
        return planned or self._planned

    def _driven_speed(self) -> float | None:
        """The median speed of the legs driven on a known road (its length over the
        leg's median time)."""
        speeds = [road.length_m / statistics.median(seen) for leg, road in self._roads.items()
                  if (seen := self._observed.get(leg))]
        usable = [s for s in speeds if MIN_SPEED <= s <= MAX_SPEED]
        return statistics.median(usable) if usable else None

    def between(self, a: contract.PlannedVisit, b: contract.PlannedVisit) -> timedelta:
        return self.learned(a, b) or timedelta(seconds=self.length_m(a, b) / self.speed(a, b))

    def _planned_speed(self, a: contract.PlannedVisit, b: contract.PlannedVisit
                       ) -> float | None:
        """The speed the timetable gives the drive from `a` to `b`, if its gap is one: a
        gap that holds lunch or a visit skipped between is not."""
        gap, length = (b.arrive - a.depart).total_seconds(), self.length_m(a, b)
        speed = length / gap if gap > 0 else 0.0
        return speed if MIN_SPEED <= speed <= MAX_SPEED else None

    def earliest(self, v: contract.PlannedVisit) -> datetime:
        """The earliest the bus is expected at `v`: its planned arrival, or earlier if it
        usually comes early (a short drive from the last stop, a crew that likes to set up
        before the first patient): the 30th percentile of its past arrivals against the
        timetable, so that the days it came late (held at the last stop, which the chain
        of legs accounts for) do not count."""
        seen = sorted(self._early.get(_entry(v), ()))
        if not seen:
            return v.arrive
        early = seen[max(0, math.ceil(EARLY_RANK * len(seen)) - 1)]
        return v.arrive + timedelta(seconds=min(0.0, early))


def _straight(a: contract.PlannedVisit, b: contract.PlannedVisit) -> float:
    return distance_m(a.lat, a.lon, b.lat, b.lon)


def _entry(v: contract.PlannedVisit) -> tuple[str, str]:
    """A timetable entry as past days know it: the stop and its planned local time."""
    return v.stop, f"{v.arrive:%H:%M}"


def forecast_day(visits: Sequence[contract.PlannedVisit], state: VehicleState, now: datetime,
                 travel: TravelModel) -> list[Forecast]:
    """The day's visits of one vehicle, each with its status and predicted times."""
    out: list[Forecast] = []
    guessed = infer(visits, state, now)
    arrivals = {**guessed.arrivals, **state.arrivals}
    departures = {**guessed.departures, **state.departures}
    # A visit left (even with its arrival unheard of) or missed was reached or given up:
    # the ones before it were too.
    last_done = max((i for i, v in enumerate(visits) if v.visit in arrivals
                     or v.visit in departures or v.visit in guessed.missed), default=-1)
    previous: Forecast | None = None
    pace = Pace()
    for i, v in enumerate(visits):
        dwell = v.depart - v.arrive
        arrived, departed = arrivals.get(v.visit), departures.get(v.visit)
        inferred = (v.visit in guessed.missed or (arrived is not None and v.visit not in
                    state.arrivals) or (departed is not None and v.visit not in state.departures))
        if v.visit in guessed.missed and not arrived and v.visit not in state.departures:
            # (The positions say it was driven past; a departure the bus reported says it
            # was there, its arrival unheard of.)
            f = Forecast(v, VisitStatus.UNCONFIRMED, v.arrive, v.depart, 0, inferred=True)
        elif arrived or departed:
            arrive = arrived or departed or now
            if departed:
                status, depart = VisitStatus.DEPARTED, departed
            else:
                depart = _departure(v, arrive, state.queues.get(v.visit), now, travel)
                settled = now >= max(v.arrive, arrive + SETTLING)
                status = VisitStatus.CONSULTING if settled else VisitStatus.ARRIVED
            f = Forecast(v, status, arrive, depart, _late(arrive, v.arrive), arrived, departed,
                         inferred)
            if arrived and previous is not None and previous.departed_at is not None:
                pace.leg(travel.learned(previous.visit, v), arrived - previous.departed_at)
        elif i < last_done:
            f = Forecast(v, VisitStatus.UNCONFIRMED, v.arrive, v.depart, 0)
        else:
            heading_here = previous is None or previous.status is VisitStatus.DEPARTED
            eta, road_left = _arrival(v, previous, state, now, travel, heading_here, pace)
            late = eta - v.arrive >= LATE_AFTER
            under_way = heading_here and _driving(state, previous, now)
            status = (VisitStatus.LATE if late
                      else VisitStatus.EN_ROUTE if under_way else VisitStatus.PLANNED)  # fmt: skip
            f = Forecast(v, status, eta, max(v.depart + travel.overrun(v), eta + dwell),
                         _late(eta, v.arrive), road_left_m=road_left)
        out.append(f)
        if f.status is not VisitStatus.UNCONFIRMED:
            previous = f
    return out


def _departure(v: contract.PlannedVisit, arrived: datetime, queue: contract.QueueState | None,
               now: datetime, travel: TravelModel) -> datetime:
    """When the bus will leave the stop it is at. The waiting room's end is the kiosk's
    forecast (`ends_at`), the one model of the queue; without it (no kiosk, or a bus from
    before it sent one) the session lasts its planned length, and the bus leaves as late
    past its planned end as it usually does from this stop."""
    if queue is not None and not queue.open:  # staff ended the session: packing up
        return max(now, queue.ts + PACK_UP)
    if queue is None or queue.ends_at is None:
        return max(v.depart + travel.overrun(v), arrived + (v.depart - v.arrive), now)
    return max(v.depart, queue.ends_at + PACK_UP, now)


def _arrival(v: contract.PlannedVisit, previous: Forecast | None, state: VehicleState,
             now: datetime, travel: TravelModel, heading_here: bool, pace: Pace
             ) -> tuple[datetime, float | None]:
    """Predicted arrival at a visit the bus has not reached yet, never in the past; and
    the road left to it, where the bus is on the leg's learned road."""
    pos = state.position
    earliest = travel.earliest(v)
    if heading_here and pos is not None and _driving(state, previous, now):
        origin = previous.visit if previous is not None else None
        learned = travel.learned(origin, v) if origin is not None else None
        road = travel.road(origin, v) if origin is not None else None
        on = road.locate(pos.lat, pos.lon) if road is not None else None
        left = distance_m(pos.lat, pos.lon, v.lat, v.lon)
        leg = _straight(origin, v) if origin is not None else 0.0
        if learned is not None and (on is not None or leg > 0):
            # The learned time of this leg × the share of it still to go: of its time
            # profile along the road where the bus is on it (slow stretches are in it,
            # which the speed of the last minutes knows nothing of), else of the straight
            # line; at today's pace, which the way driven so far on this leg tells too.
            share = road.share_left(on.along_m) if road is not None and on is not None \
                else min(1.0, left / leg)
            if previous is not None and previous.departed_at is not None and share < 0.8:
                pace.part(learned * (1 - share), pos.ts - previous.departed_at)
            eta = pos.ts + learned * share * pace.factor
            if road is not None and on is not None:
                return max(eta, now), road.length_m - on.along_m
        else:
            # From where the bus was last seen, minus the time since, for a position that
            # is a few seconds (or, after an outage, minutes) old.
            average = state.average_speed(moving_only=True) or travel.speed(origin, v)
            speed = min(MAX_SPEED, max(MIN_SPEED, average))
            eta = pos.ts + timedelta(seconds=travel.road_m(left, origin, v) / speed)
        return max(eta, now), None
    if previous is None:
        # Not on the road yet (the depot): no sooner than the drive from where it waits.
        waiting = pos is not None and now - pos.ts < SEEN_WAITING and \
            pos.ts >= earliest - timedelta(hours=3)
        setting_off = now + timedelta(seconds=travel.road_m(distance_m(
            pos.lat, pos.lon, v.lat, v.lon), None, v) / travel.speed(None, v)) \
            if pos is not None and waiting else now
        return max(earliest, setting_off), None
    return max(earliest, previous.depart + travel.between(previous.visit, v) * pace.factor,
               now), None


class Pace:
    """Today's pace against the learned leg times, blended with history as TransitClock
    blends the last traversal of a segment with its historical average: a Kalman filter
    (one state, the log of the ratio, so slow and fast weigh alike) with its variance. Each
    leg driven today is a measurement; the prior is history (ratio 1). A médicobus drives
    each leg once a day, so the measurements are the day's other legs: a morning of snow
    or roadworks carries into the afternoon, a single slow leg (a tractor) only a little.
    What a fast day does is bounded by the stops' earliest arrivals (`earliest`)."""

    DAY_SD = 0.15  # how far a day's pace strays from the usual (log): snow, fog, works
    LEG_SD = 0.08  # how far one leg strays from its day's pace: a tractor, a red light
    PART_SD = 0.2  # the part of a leg driven so far: a village or a junction weighs in it
    DRIFT_SD = 0.03  # between two legs (the weather changes)

    def __init__(self) -> None:
        self.x, self.p = 0.0, self.DAY_SD**2

    @property
    def factor(self) -> float:
        return math.exp(self.x)

    def leg(self, learned: timedelta | None, driven: timedelta) -> None:
        """A leg driven today, whose time history knows."""
        self._measure(learned, driven, self.LEG_SD)
        self.p += self.DRIFT_SD**2

    def part(self, learned: timedelta, driven: timedelta) -> None:
        """The part of the current leg driven so far, and how long history says it takes."""
        self._measure(learned, driven, self.PART_SD)

    def _measure(self, learned: timedelta | None, driven: timedelta, sd: float) -> None:
        if learned is None or learned <= timedelta(0) or driven <= timedelta(0):
            return
        ratio = driven / learned
        if not 0.4 <= ratio <= 2.5:
            return  # not a drive (a break on the way, a detour, a missed event)
        gain = self.p / (self.p + sd**2)
        self.x += gain * (math.log(ratio) - self.x)
        self.p *= 1 - gain


def _driving(state: VehicleState, previous: Forecast | None, now: datetime) -> bool:
    """Whether the bus is on its way to the next stop: it left the last one, or it is
    moving before its first stop of the day."""
    if previous is not None:
        return previous.status is VisitStatus.DEPARTED
    pos = state.position
    if pos is None or now - pos.ts > timedelta(minutes=15):
        return False
    return moving(state.average_speed()) or moving(pos.speed)


def _late(actual: datetime, planned: datetime) -> int:
    return max(0, int((actual - planned).total_seconds() // 60))
