"""Arrival and departure at the day's stops, decided on the bus, offline.

Debounced so GPS jitter at the fence's edge cannot flap: the bus *arrives* after staying
inside a stop's radius for `dwell_s` at low speed, and *leaves* only once it is past the
radius plus `exit_margin_m`. Progress is stored, so a restart does not arrive twice.

A stop's fence is around its coordinates and around the places the bus really parked for
it: parked `park_dwell_s` within `park_near_m` of the next stop (from an hour and a half
before its planned arrival), outside the fence, the bus has arrived (when it stopped) and
the place is learned, kept in plan.db, so the next visit arrives there after `dwell_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from medicobus import contract
from medicobus.geo import distance_m
from onboard.config import GeofenceSettings
from onboard.plan import PlanStore
from onboard.telemetry.fix import Fix

EARLIEST = timedelta(minutes=90)  # parked near a stop this long before its time: not yet


@dataclass(frozen=True)
class Crossing:
    event: Literal["arrival", "departure"]
    visit: contract.PlannedVisit
    ts: datetime


class VisitTracker:
    def __init__(self, settings: GeofenceSettings, store: PlanStore) -> None:
        self.settings = settings
        self.store = store
        self.plan = store.load()
        self.done = store.progress()
        self.spots = store.parking()  # stop -> where the bus parked for it, off the fence
        self._inside_since: tuple[str, datetime] | None = None
        self._parked_since: tuple[str, datetime] | None = None  # near a stop, off its fence

    def use(self, plan: contract.Plan) -> None:
        self.store.save(plan)
        self.plan = plan
        self._inside_since = self._parked_since = None

    def update(self, fix: Fix) -> list[Crossing]:
        if self.plan is None or not self.plan.visits:
            return []
        visits = self.plan.visits
        if fix.ts.astimezone(visits[0].arrive.tzinfo).date() != self.plan.day:
            return []  # yesterday's plan, today's plan not received yet: no guessing
        started = [i for i, v in enumerate(visits) if (v.visit, "arrival") in self.done]
        if started:
            current = visits[started[-1]]
            if (current.visit, "departure") not in self.done:
                return self._check_departure(current, fix)
        following = visits[started[-1] + 1 :] if started else visits
        return self._check_arrival(following, fix)

    def _check_departure(self, visit: contract.PlannedVisit, fix: Fix) -> list[Crossing]:
        if self._distance(visit, fix) <= visit.radius_m + self.settings.exit_margin_m:
            return []
        return [self._record("departure", visit, fix.ts)]

    def _check_arrival(self, visits: list[contract.PlannedVisit], fix: Fix) -> list[Crossing]:
        slow = fix.speed is None or fix.speed * 3.6 <= self.settings.max_speed_kmh
        here = next((v for v in visits if self._distance(v, fix) <= v.radius_m), None)
        if here is None and slow and visits:
            return self._check_parked(visits[0], fix)
        self._parked_since = None
        if here is None or not slow:
            self._inside_since = None
            return []
        if self._inside_since is None or self._inside_since[0] != here.visit:
            self._inside_since = (here.visit, fix.ts)
        since = self._inside_since[1]
        if (fix.ts - since).total_seconds() < self.settings.dwell_s:
            return []
        self._inside_since = None
        return [self._record("arrival", here, since)]

    def _check_parked(self, visit: contract.PlannedVisit, fix: Fix) -> list[Crossing]:
        """Parked near the next stop, outside its fence: there once it has stayed."""
        self._inside_since = None
        s = self.settings
        near = distance_m(visit.lat, visit.lon, fix.lat, fix.lon) <= s.park_near_m
        if not near or fix.ts < visit.arrive - EARLIEST:
            self._parked_since = None
            return []
        if self._parked_since is None or self._parked_since[0] != visit.visit:
            self._parked_since = (visit.visit, fix.ts)
        since = self._parked_since[1]
        if (fix.ts - since).total_seconds() < s.park_dwell_s:
            return []
        self._parked_since = None
        self.store.park(visit.stop, fix.lat, fix.lon, fix.ts)
        self.spots.setdefault(visit.stop, []).append((fix.lat, fix.lon))
        return [self._record("arrival", visit, since)]

    def _record(self, event: Literal["arrival", "departure"], visit: contract.PlannedVisit,
                ts: datetime) -> Crossing:
        self.store.mark(visit.visit, event, ts)
        self.done[(visit.visit, event)] = ts
        return Crossing(event, visit, ts)

    def _distance(self, visit: contract.PlannedVisit, fix: Fix) -> float:
        """From the stop, or from the nearest place the bus parked for it."""
        centres = [(visit.lat, visit.lon), *self.spots.get(visit.stop, ())]
        return min(distance_m(lat, lon, fix.lat, fix.lon) for lat, lon in centres)
