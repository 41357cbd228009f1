"""The activity report the funders ask for (ARS, CPAM, Région): per commune and per vehicle,
for a month or any range of days.

What was planned and cancelled (and why) comes from the tournée (`ground.fleet.visits_on`
on the fleet with the coordinator's changes); what happened comes from what the buses sent:
arrivals and departures (held, hours on site, punctuality), the kiosk's visit summaries
(check-ins, seen, absent, no-shows, waits), positions (km and driving time) and the fridge's
readings (time inside and outside its band, excursions). Counts and durations only: the
ground holds no patient data and neither does the report. Small counts are hidden when the
report is written out (`ground.reports.tables`), not here: the figures stay exact.

A period runs from the first day's local midnight to the midnight after the last day, in the
fleet's zone, so a month across the clock change is 745 or 743 hours long.
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ground.fleet import DatedVisit, Fleet, visits_on
from ground.store import Store
from medicobus import contract
from medicobus.geo import distance_m
from medicobus.motion import moving, too_fast

ON_TIME = timedelta(minutes=5)  # an arrival at most this late is on time (early is on time)
# A position's speed holds until the next one at most this long: the bus reports every 30 s
# while moving, so a longer gap is an outage or a parked bus, not driving.
DRIVING_GAP = timedelta(minutes=10)
# A fridge reading holds until the next at most this long (three heartbeats of the bus's
# sampling): past it, the time is "no reading", neither inside nor outside the band.
FRIDGE_HOLD = timedelta(minutes=15)
FRIDGE = ("fridge", "temp_c")  # the sensor and quantity of the cold chain (first probe)


@dataclass(frozen=True)
class Period:
    """Days `first` to `last` inclusive, in the fleet's zone."""

    first: date
    last: date
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the period ends ({self.last}) before it begins ({self.first})")

    @classmethod
    def month(cls, month: str, zone: ZoneInfo) -> Period:
        """"2026-11" -> November 2026."""
        try:
            year, number = (int(part) for part in month.split("-"))
            days = calendar.monthrange(year, number)[1]
        except (ValueError, calendar.IllegalMonthError):
            raise ValueError(f"not a month (YYYY-MM): {month!r}") from None
        return cls(date(year, number, 1), date(year, number, days), zone)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0),
                                self.zone).astimezone(UTC)

    def days(self) -> Iterable[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)

    @property
    def is_month(self) -> bool:
        return self.first.day == 1 and (self.last + timedelta(days=1)).day == 1 \
            and self.first.month == self.last.month


@dataclass(frozen=True)
class Outcome:
    """One planned visit and what the bus and its kiosk said of it."""

    visit: DatedVisit
    arrived: datetime | None
    departed: datetime | None
    summary: contract.VisitSummary | None

    @property
    def held(self) -> bool:
        """The bus arrived; or its kiosk checked patients in there (an arrival the
        geofence missed, a bus parked out of its stop's radius)."""
        s = self.summary
        return self.arrived is not None or (
            s is not None and s.checked_in_name + s.checked_in_code + s.walk_in > 0)

    @property
    def delay(self) -> timedelta | None:
        return self.arrived - self.visit.arrive if self.arrived is not None else None

    @property
    def on_site(self) -> timedelta | None:
        if self.arrived is None or self.departed is None or self.departed < self.arrived:
            return None
        return self.departed - self.arrived


@dataclass
class Activity:
    """The figures of a set of visits (a commune's, a vehicle's, the whole fleet's)."""

    planned: int = 0
    held: int = 0
    cancelled: int = 0
    not_held: int = 0  # neither held nor cancelled: no arrival reached the ground
    on_site: timedelta = timedelta(0)
    delays_s: list[float] = field(default_factory=list)
    unsummed: int = 0  # held visits the kiosk sent no summary of (no kiosk, old bus)
    booked: int = 0
    checked_in_name: int = 0
    checked_in_code: int = 0
    walk_in: int = 0
    seen: int = 0
    absent: int = 0
    no_show: int = 0
    waits_s: list[int] = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.planned += 1
        if o.visit.cancelled is not None:
            self.cancelled += 1
            return
        if not o.held:
            self.not_held += 1
            return
        self.held += 1
        self.on_site += o.on_site or timedelta(0)
        if o.delay is not None:
            self.delays_s.append(o.delay.total_seconds())
        s = o.summary
        if s is None:
            self.unsummed += 1
            return
        self.booked += s.booked
        self.checked_in_name += s.checked_in_name
        self.checked_in_code += s.checked_in_code
        self.walk_in += s.walk_in
        self.seen += s.seen
        self.absent += s.absent
        self.no_show += s.no_show
        self.waits_s.extend(s.waits_s)

    @property
    def checked_in(self) -> int:
        return self.checked_in_name + self.checked_in_code + self.walk_in

    @property
    def hours_on_site(self) -> float:
        return self.on_site.total_seconds() / 3600

    @property
    def delay_median_min(self) -> float | None:
        return _minutes(median(self.delays_s))

    @property
    def delay_p90_min(self) -> float | None:
        return _minutes(p90(self.delays_s))

    @property
    def on_time_share(self) -> float | None:
        if not self.delays_s:
            return None
        return sum(d <= ON_TIME.total_seconds() for d in self.delays_s) / len(self.delays_s)

    @property
    def no_show_rate(self) -> float | None:
        return self.no_show / self.booked if self.booked else None

    @property
    def wait_median_min(self) -> float | None:
        return _minutes(median(self.waits_s))

    @property
    def wait_p90_min(self) -> float | None:
        return _minutes(p90(self.waits_s))


@dataclass(frozen=True)
class Excursion:
    """The fridge outside its band, from `start` to `end`; its warmest and coldest."""

    vehicle: str
    start: datetime
    end: datetime
    highest: float
    lowest: float

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60


@dataclass
class ColdChain:
    inside: timedelta = timedelta(0)
    outside: timedelta = timedelta(0)
    unknown: timedelta = timedelta(0)  # no reading (or a flagged one) held
    excursions: list[Excursion] = field(default_factory=list)


@dataclass
class VehicleActivity:
    vehicle: str
    name: str
    activity: Activity
    km: float
    driving: timedelta
    fridge: ColdChain


@dataclass
class CommuneActivity:
    insee: str
    commune: str
    activity: Activity


@dataclass(frozen=True)
class Cancelled:
    day: date
    commune: str
    vehicle: str
    half: str
    reason: str


@dataclass
class ActivityReport:
    period: Period
    band: tuple[float, float]  # the fridge's, from the alert rules
    communes: list[CommuneActivity]
    vehicles: list[VehicleActivity]
    total: Activity
    cancellations: list[Cancelled]
    visits: list[Outcome]

    @property
    def excursions(self) -> list[Excursion]:
        return sorted((e for v in self.vehicles for e in v.fridge.excursions),
                      key=lambda e: (e.start, e.vehicle))


def activity_report(fleet: Fleet, store: Store, period: Period,
                    band: tuple[float, float]) -> ActivityReport:
    """The report of `period`: the tournée's visits of those days, and what reached `store`."""
    planned = [v for day in period.days() for v in visits_on(fleet, day)]
    ids = sorted({v.id for v in planned})
    times = store.visit_times(ids)
    summaries = store.visit_summaries(ids)
    summed = {visit for _, visit in summaries}
    unsummed = [i for i in ids if i not in summed]
    if unsummed:  # visits of buses of before: summed up here from their ticket events
        queues = store.last_queues(unsummed)
        for key, events in store.visit_tickets(unsummed).items():
            summaries[key] = from_tickets(*key, events, queues.get(key))
    outcomes = [Outcome(v, *times.get((v.vehicle, v.id), (None, None)),
                        summaries.get((v.vehicle, v.id))) for v in planned]
    communes: dict[str, CommuneActivity] = {}
    by_vehicle = {v.id: Activity() for v in fleet.vehicles}
    total = Activity()
    for o in outcomes:
        stop = o.visit.stop
        communes.setdefault(stop.insee, CommuneActivity(stop.insee, stop.commune, Activity())
                            ).activity.add(o)
        by_vehicle.setdefault(o.visit.vehicle, Activity()).add(o)
        total.add(o)
    names = {v.id: v.name for v in fleet.vehicles}
    vehicles = []
    for vehicle, activity in by_vehicle.items():
        km, driving = driven(store.positions_between(vehicle, period.start, period.end))
        series = store.series_between(vehicle, *FRIDGE, period.start, period.end)
        vehicles.append(VehicleActivity(vehicle, names.get(vehicle, vehicle), activity, km,
                                        driving, cold_chain(vehicle, series, band, period)))
    cancellations = [Cancelled(o.visit.day, o.visit.stop.commune, o.visit.vehicle,
                               o.visit.half, o.visit.cancelled.reason)
                     for o in outcomes if o.visit.cancelled is not None]
    return ActivityReport(period, band, sorted(communes.values(), key=lambda c: c.commune),
                          vehicles, total, cancellations, outcomes)


Fix = tuple[str, float, float, float | None, float | None]  # ts (UTC text), lat, lon, speed, acc


@dataclass(frozen=True)
class Leg:
    """From one fix to the next that the bus could have reached."""

    start: datetime
    end: datetime
    origin: tuple[float, float]  # where it began (lat, lon)
    lat: float  # where it ended
    lon: float
    metres: float
    driving: bool  # moving at its start, and not a gap longer than DRIVING_GAP
    speed: float | None  # at its start, m/s


def legs(positions: Sequence[Fix]) -> Iterator[Leg]:
    """A vehicle's positions, in order, as legs: a fix the bus could not have reached from
    the last one kept (`too_fast`: a receiver's glitch) is skipped."""
    last: tuple[float, float, float | None, datetime] | None = None
    last_speed: float | None = None
    for ts, lat, lon, speed, acc in positions:
        here = (lat, lon, acc, datetime.fromisoformat(ts))
        if last is not None:
            if too_fast(last, here):
                continue
            yield Leg(last[3], here[3], (last[0], last[1]), lat, lon,
                      distance_m(last[0], last[1], lat, lon),
                      moving(last_speed) and here[3] - last[3] <= DRIVING_GAP, last_speed)
        last, last_speed = here, speed


def from_tickets(vehicle: str, visit: str,
                 events: Sequence[tuple[datetime, int, str | None, str]],
                 queue: tuple[datetime, int] | None) -> contract.VisitSummary:
    """A visit's summary made from its ticket events (time, ticket, appointment, event),
    as a bus of before December 2026 sent them: check-ins with a booking count as found by
    name (such a bus did not say how), no-shows are the last queue state's bookings not
    checked in, waits run from check-in to the first call."""
    checked: dict[int, tuple[datetime, str | None]] = {}
    called: dict[int, datetime] = {}
    outcome: dict[int, str] = {}
    for ts, ticket, appointment, event in events:
        if event == "checked_in":
            checked.setdefault(ticket, (ts, appointment))
        elif event == "called":
            called.setdefault(ticket, ts)
        else:
            outcome[ticket] = event
    booked = sum(a is not None for _, a in checked.values())
    no_show = queue[1] if queue is not None else 0
    waits = sorted(round((called[t] - checked[t][0]).total_seconds())
                   for t in called if t in checked)
    last = max([events[-1][0], *(q[0] for q in [queue] if q)])
    return contract.VisitSummary(
        vehicle=vehicle, ts=last,
        visit=visit, opened=events[0][0], closed=last, booked=min(booked + no_show, 1000),
        checked_in_name=min(booked, 1000), checked_in_code=0,
        walk_in=min(len(checked) - booked, 1000),
        seen=min(sum(o == "seen" for o in outcome.values()), 1000),
        absent=min(sum(o == "absent" for o in outcome.values()), 1000),
        no_show=min(no_show, 1000), waits_s=[min(max(w, 0), 86_400) for w in waits][:1000])


def driven(positions: Sequence[Fix]) -> tuple[float, timedelta]:
    """Km and driving time from a vehicle's positions: the length of every leg, and the
    time of the legs it drove (moving at their start, up to DRIVING_GAP)."""
    metres, seconds = 0.0, 0.0
    for leg in legs(positions):
        metres += leg.metres
        if leg.driving:
            seconds += (leg.end - leg.start).total_seconds()
    return metres / 1000, timedelta(seconds=seconds)


def cold_chain(vehicle: str, series: Sequence[tuple[datetime, float | None]],
               band: tuple[float, float], period: Period) -> ColdChain:
    """The period's time with the fridge inside `band` (inclusive), outside it, and with no
    reading: each value holds until the next, at most FRIDGE_HOLD. An excursion is a run
    of time outside with no gap, cut at the period's ends."""
    chain = ColdChain()
    low, high = band
    start, end = period.start, period.end
    run: list[tuple[datetime, datetime, float]] = []

    def close_run() -> None:
        if run:
            values = [v for _, _, v in run]
            chain.excursions.append(Excursion(vehicle, run[0][0], run[-1][1], max(values),
                                              min(values)))
            run.clear()

    covered = start
    for i, (ts, value) in enumerate(series):
        following = series[i + 1][0] if i + 1 < len(series) else end
        begin, until = max(ts, start), min(following, ts + FRIDGE_HOLD, end)
        if until <= begin:
            continue
        if begin > covered:  # nothing held from `covered` to here
            chain.unknown += begin - covered
            close_run()
        if value is None:
            chain.unknown += until - begin
            close_run()
        elif low <= value <= high:
            chain.inside += until - begin
            close_run()
        else:
            chain.outside += until - begin
            run.append((begin, until, value))
        covered = until
    close_run()
    chain.unknown += max(timedelta(0), end - covered)
    return chain


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile, interpolated between the values (as a spreadsheet's
    PERCENTILE.INC computes it, so a funder checking it finds the same)."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def _minutes(seconds: float | None) -> float | None:
    return seconds / 60 if seconds is not None else None
