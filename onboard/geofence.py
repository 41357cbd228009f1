"""Arrival and departure at the day's stops, decided on the bus, offline.

Debounced so GPS jitter at the fence's edge cannot flap: the bus *arrives* after staying
inside a stop's radius for `dwell_s` at low speed, and *leaves* only once it is past the
radius plus `exit_margin_m`. Progress is stored, so a restart does not arrive twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from medicobus import contract
from medicobus.geo import distance_m
from onboard.config import GeofenceSettings
from onboard.plan import PlanStore
from onboard.telemetry.fix import Fix


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
        self._inside_since: tuple[str, datetime] | None = None

    def use(self, plan: contract.Plan) -> None:
        self.store.save(plan)
        self.plan = plan
        self._inside_since = None

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

    def _record(self, event: Literal["arrival", "departure"], visit: contract.PlannedVisit,
                ts: datetime) -> Crossing:
        self.store.mark(visit.visit, event, ts)
        self.done[(visit.visit, event)] = ts
        return Crossing(event, visit, ts)

    @staticmethod
    def _distance(visit: contract.PlannedVisit, fix: Fix) -> float:
        return distance_m(visit.lat, visit.lon, fix.lat, fix.lon)
