"""A simulated month of a fleet, as the buses would send it, with its ground truth.

For each day and vehicle, the visits that take place (the tournée's): most are held, late
or early by a random delay, for a random time on site; a few are not (a breakdown: no
arrival); most held visits are summed up by the kiosk (random counts and waits). The bus
drives in straight lines at 50 km/h from its depot to each stop and back, reporting every
30 s while moving, on stopping, and every 10 minutes while parked; one fix of the month is
a wild jump (a receiver's glitch) the report must not count. The fridge reports every 5
minutes, in its band but for a few excursions, a flagged value and an outage of readings.

Every message goes down the ground's real pipeline (contract, dedupe, SQLite store), and
the truth is what the generator decided, kept beside: what a correct report must say.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ground.fleet import Fleet, TimetableEntry, Vehicle, load_fleet, visits_on
from ground.pipeline import Arrived, Pipeline
from ground.reports.activity import FRIDGE_HOLD, Period, activity_report
from ground.state import LiveState
from ground.store import Store
from ground.tournee import Tournee
from medicobus import contract
from medicobus.geo import distance_m
from tests.clocks import ManualClock
from tests.harness import FLEET

DEPOT = (48.5236, 0.5472)  # Mortagne-au-Perche
SPEED_MS = 13.9  # 50 km/h
STEP = timedelta(seconds=30)
PARKED_STEP = timedelta(minutes=10)
FRIDGE_STEP = timedelta(minutes=5)


@dataclass
class Truth:
    """What happened, per visit id and per vehicle, as the generator decided it."""

    held: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)  # arrive, leave
    summaries: dict[str, contract.VisitSummary] = field(default_factory=dict)
    km: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    driving: dict[str, timedelta] = field(default_factory=lambda: defaultdict(timedelta))
    outside: dict[str, timedelta] = field(default_factory=lambda: defaultdict(timedelta))
    unknown: dict[str, timedelta] = field(default_factory=lambda: defaultdict(timedelta))
    excursions: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    drives: list[tuple[str, datetime, datetime, float]] = field(default_factory=list)  # metres


class SimulatedMonth:
    def __init__(self, fleet: Fleet, period: Period, seed: int = 12,
                 joined: dict[str, date] | None = None) -> None:
        """`joined`: vehicles that came into service during the period, and when (their
        fridge reports from that day on; their visits are the tournée's)."""
        self.fleet = fleet
        self.period = period
        self.random = random.Random(seed)
        self.truth = Truth()
        self.messages: list[contract.Position | contract.VisitEvent | contract.Reading
                            | contract.VisitSummary] = []
        self._n = 0
        self._jumped: set[str] = set()
        for vehicle in fleet.vehicles:
            since = (joined or {}).get(vehicle.id, period.first)
            self._fridge(vehicle.id, datetime.combine(since, time(0), period.zone))
            for day in period.days():
                self._day(vehicle.id, [v for v in visits_on(fleet, day, vehicle.id)
                                       if v.cancelled is None])

    def feed(self, pipeline: Pipeline, batch: int = 500) -> None:
        """Everything, in batches, received a second after it was sent."""
        ordered = sorted(self.messages, key=lambda m: m.ts)
        for i in range(0, len(ordered), batch):
            pipeline.run([Arrived(contract.topic(m.vehicle, contract.Channel(m.kind)),
                                  m.to_json(), m.ts + timedelta(seconds=1))
                          for m in ordered[i:i + batch]])

    # -- the drives and visits ----------------------------------------------------------------

    def _id(self) -> str:
        self._n += 1
        return f"sim{self._n:012d}"

    def _fix(self, vehicle: str, at: datetime, lat: float, lon: float, speed: float) -> None:
        self.messages.append(contract.Position(id=self._id(), vehicle=vehicle, ts=at, lat=lat,
                                               lon=lon, speed=speed, acc=5.0))

    def _drive(self, vehicle: str, frm: tuple[float, float], to: tuple[float, float],
               arrive: datetime) -> datetime:
        """Fixes from `frm` to `to`, arriving at `arrive`; returns when it set off."""
        metres = distance_m(*frm, *to)
        steps = max(1, round(metres / SPEED_MS / STEP.total_seconds()))
        start = arrive - steps * STEP
        for i in range(steps):
            f = i / steps
            self._fix(vehicle, start + i * STEP, frm[0] + (to[0] - frm[0]) * f,
                      frm[1] + (to[1] - frm[1]) * f, SPEED_MS)
        self._fix(vehicle, arrive, *to, 0.0)  # stopped
        self.truth.km[vehicle] += metres / 1000
        self.truth.driving[vehicle] += steps * STEP
        self.truth.drives.append((vehicle, start, arrive, metres))
        return start

    def _park(self, vehicle: str, where: tuple[float, float], since: datetime,
              until: datetime) -> None:
        if vehicle not in self._jumped:  # once: a fix 55 km off, which the bus cannot reach
            self._jumped.add(vehicle)
            self._fix(vehicle, since + PARKED_STEP / 2, where[0] + 0.5, where[1], 0.0)
        at = since + PARKED_STEP
        while at < until:
            self._fix(vehicle, at, *where, 0.0)
            at += PARKED_STEP

    def _day(self, vehicle: str, visits: list) -> None:  # type: ignore[type-arg]
        r = self.random
        here, left = DEPOT, None
        for v in visits:
            if r.random() < 0.08:  # broke down, or the bus went without its plan: no arrival
                continue
            arrived = v.arrive + timedelta(seconds=r.randrange(-300, 1500))
            if left is not None and arrived < left + timedelta(hours=1):
                arrived = left + timedelta(hours=1)  # never before it left the last stop
            stop = (v.stop.lat, v.stop.lon)
            set_off = self._drive(vehicle, here, stop, arrived)
            if left is not None:
                self._park(vehicle, here, left, set_off)
            slot = (v.depart - v.arrive).total_seconds()
            departed = arrived + timedelta(seconds=r.randrange(int(slot * 0.6),
                                                               int(slot * 1.2)))
            self._park(vehicle, stop, arrived, departed)
            for event, at in (("arrival", arrived), ("departure", departed)):
                self.messages.append(contract.VisitEvent(
                    id=self._id(), vehicle=vehicle, ts=at, event=event, visit=v.id,
                    stop=v.stop.id, lat=stop[0], lon=stop[1]))  # fmt: skip
            self.truth.held[v.id] = (arrived, departed)
            if r.random() < 0.9:
                self._summary(vehicle, v.id, arrived, departed)
            here, left = stop, departed
            self._fix(vehicle, departed, *stop, 0.0)
        if left is not None:
            back = left + timedelta(hours=1)
            self._drive(vehicle, here, DEPOT, back)

    def _summary(self, vehicle: str, visit: str, opened: datetime, closed: datetime) -> None:
        r = self.random
        booked = r.randrange(0, 9)
        no_show = r.randrange(0, min(booked, 2) + 1)
        by_code = r.randrange(0, booked - no_show + 1)
        walk_in = r.randrange(0, 7)
        came = booked - no_show + walk_in
        absent = r.randrange(0, min(came, 1) + 1)
        waits = sorted(r.randrange(0, 5400) for _ in range(came - absent))
        summary = contract.VisitSummary(
            id=self._id(), vehicle=vehicle, ts=closed, visit=visit, opened=opened,
            closed=closed, booked=booked, checked_in_name=booked - no_show - by_code,
            checked_in_code=by_code, walk_in=walk_in, seen=came - absent, absent=absent,
            no_show=no_show, waits_s=waits)  # fmt: skip
        self.messages.append(summary)
        self.truth.summaries[visit] = summary

    # -- the fridge ---------------------------------------------------------------------------

    def _fridge(self, vehicle: str, since: datetime) -> None:
        r = self.random
        start, end = self.period.start, self.period.end
        steps = int((end - start) / FRIDGE_STEP)
        first = int((since - start) / FRIDGE_STEP)
        self.truth.unknown[vehicle] += first * FRIDGE_STEP  # not in service yet
        # An excursion of 4 to 12 readings in each third of the time, a flagged reading
        # after the first, a two-hour outage of readings after the second.
        third = (steps - first) // 3
        starts = [r.randrange(first + k * third + 10, first + (k + 1) * third - 100)
                  for k in range(3)]
        excursions = {s: r.randrange(4, 13) for s in starts}
        flagged = starts[0] + 50
        outage = range(starts[1] + 60, starts[1] + 60 + 24)  # 24 readings missing: 2 hours
        outside_until = -1
        for i in range(first, steps):
            at = start + i * FRIDGE_STEP
            if i in excursions:
                outside_until = i + excursions[i]
                self.truth.excursions.append((vehicle, at, at + excursions[i] * FRIDGE_STEP))
                self.truth.outside[vehicle] += excursions[i] * FRIDGE_STEP
            if i in outage:
                continue
            if i == flagged:
                self._reading(vehicle, at, None)
                self.truth.unknown[vehicle] += FRIDGE_STEP
                continue
            value = 9.5 if i < outside_until else round(4.0 + r.random() * 3, 2)
            self._reading(vehicle, at, value)
        # The reading before the outage holds FRIDGE_HOLD, the rest of it is unknown.
        self.truth.unknown[vehicle] += len(outage) * FRIDGE_STEP + FRIDGE_STEP - FRIDGE_HOLD

    def _reading(self, vehicle: str, at: datetime, value: float | None) -> None:
        self.messages.append(contract.Reading(
            id=self._id(), vehicle=vehicle, ts=at, sensor="fridge", values={"temp_c": value},
            flags={} if value is not None else {"temp_c": "crc"}))  # fmt: skip


PARIS = ZoneInfo("Europe/Paris")
BAND = (2.0, 8.0)
JOINED = date(2026, 11, 16)  # perche-2 comes into service on this Monday


def with_second_bus(fleet: Fleet) -> Fleet:
    """perche-2 from 16 November: Nocé on Thursday afternoons, Bazoches on Tuesday mornings."""
    entries = [TimetableEntry(vehicle="perche-2", stop=stop, day=day, half=half,
                              arrive=arrive, depart=depart, start=JOINED)
               for stop, day, half, arrive, depart in (
                   ("noce", "jeudi", "pm", time(14), time(17)),
                   ("bazoches", "mardi", "am", time(9), time(12)))]  # fmt: skip
    return fleet.model_copy(update={
        "vehicles": [*fleet.vehicles, Vehicle(id="perche-2", name="Médicobus 2")],
        "timetable": [*fleet.timetable, *entries]})  # fmt: skip


class Month:
    """A month simulated, fed down the real pipeline into a real store, and its report."""

    def __init__(self, tmp: Path, month: str, fleet: Fleet, cancel: str | None = None,
                 joined: dict[str, date] | None = None) -> None:
        self.dir = tmp
        period = Period.month(month, PARIS)
        clock = ManualClock(period.start - timedelta(days=10))  # the console, before it
        self.tournee = Tournee(fleet, tmp / "ground.db", clock)
        if cancel:
            self.tournee.cancel(cancel, "Médecin malade", "coordinatrice")
        self.fleet = self.tournee.fleet
        self.store = Store(tmp / "ground.db", clock)
        self.sim = SimulatedMonth(self.fleet, period, joined=joined)
        self.sim.feed(Pipeline(self.store, LiveState(), {v.id for v in self.fleet.vehicles}))
        self.report = activity_report(self.fleet, self.store, period, BAND)

    def close(self) -> None:
        self.store.close()
        self.tournee.close()


def november_month(tmp: Path) -> Month:
    """November 2026: a visit cancelled in the console, the 11th a public holiday, and
    perche-2 in service from the 16th."""
    return Month(tmp, "2026-11", with_second_bus(load_fleet(FLEET)),
                 cancel="2026-11-24/remalard/am", joined={"perche-2": JOINED})
