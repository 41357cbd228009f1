"""The arrivals board: every commune's next visit, its live status and ETA.

Built on demand from the fleet's timetable, the live state of the buses and the ETA
model. Listeners (the pages' live streams) are told which communes changed after each
ingested batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta

from ground.eta import Forecast, TravelModel, forecast_day
from ground.fleet import Fleet, day_plan, visit_id
from ground.state import LiveState
from ground.views import QueueView, StopView, VisitStatus, VisitView
from medicobus import contract
from medicobus.clock import Clock

log = logging.getLogger(__name__)

HORIZON_DAYS = 14
STALE_AFTER = timedelta(minutes=15)

_FINISHED = (VisitStatus.DEPARTED, VisitStatus.UNCONFIRMED)
_AT_THE_STOP = (VisitStatus.ARRIVED, VisitStatus.CONSULTING)

Listener = Callable[[frozenset[str]], None]


class Board:
    def __init__(self, fleet: Fleet, state: LiveState, travel: TravelModel, clock: Clock,
                 stale_after: timedelta = STALE_AFTER) -> None:
        self.fleet = fleet
        self.state = state
        self.travel = travel
        self.clock = clock
        self.stale_after = stale_after
        self._names = {v.id: v.name for v in fleet.vehicles}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    # -- change notification ---------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def notify(self, vehicles: set[str]) -> None:
        """Called by ingest after a batch changed these vehicles' state."""
        today = self.today()
        communes = frozenset(
            v.insee for vehicle in vehicles for v in self.plan(vehicle, today).visits
        )
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(communes)
            except Exception:
                log.exception("a board listener failed")

    # -- views -----------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock.now().astimezone(self.fleet.zone).date()

    def plan(self, vehicle: str, day: date) -> contract.Plan:
        return day_plan(self.fleet, vehicle, day)

    def stops(self) -> list[StopView]:
        views = self._visits()
        return [self._stop_view(s.id, views) for s in self.fleet.stops]

    def stop(self, insee: str) -> StopView | None:
        stop = self.fleet.stop_by_insee(insee)
        return self._stop_view(stop.id, self._visits()) if stop else None

    def forecasts(self, vehicle: str) -> list[Forecast]:
        """Today's forecast for one vehicle's remaining and past visits."""
        return forecast_day(self.plan(vehicle, self.today()), self.state.get(vehicle),
                            self.clock.now(), self.travel)

    def _visits(self) -> list[VisitView]:
        """Every vehicle's visits from today to the horizon, cancelled ones included."""
        now, today, zone = self.clock.now(), self.today(), self.fleet.zone
        live = {f.visit.visit: f for v in self.fleet.vehicles for f in self.forecasts(v.id)}
        views = []
        for offset in range(HORIZON_DAYS + 1):
            day = today + timedelta(days=offset)
            for entry in self.fleet.timetable:
                if entry.day != day.weekday():
                    continue
                vid = visit_id(day, entry.stop, entry.half)
                arrive = datetime.combine(day, entry.arrive, zone)
                depart = datetime.combine(day, entry.depart, zone)
                cancelled = self.fleet.cancellation(day, entry.stop, entry.half)
                f = live.get(vid)
                base = dict(visit=vid, stop=entry.stop, vehicle=entry.vehicle,
                            vehicle_name=self._names[entry.vehicle], day=day, half=entry.half,
                            planned_arrive=arrive, planned_depart=depart)  # fmt: skip
                if cancelled:
                    views.append(VisitView(**base, status=VisitStatus.CANCELLED, eta=None,  # type: ignore[arg-type]
                                           etd=None, delay_min=0,
                                           cancel_reason=cancelled.reason))
                elif f is None:
                    passed = depart < now
                    views.append(VisitView(**base, status=VisitStatus.PLANNED,  # type: ignore[arg-type]
                                           eta=None if passed else arrive,
                                           etd=None if passed else depart, delay_min=0))
                else:
                    views.append(self._live_view(base, f))
        views.sort(key=lambda v: v.planned_arrive)
        return views

    def _live_view(self, base: dict[str, object], f: Forecast) -> VisitView:
        zone = self.fleet.zone
        done = f.status in (VisitStatus.DEPARTED, VisitStatus.UNCONFIRMED)
        reached = f.arrived_at is not None or done
        return VisitView(
            **base,  # type: ignore[arg-type]
            status=f.status,
            eta=None if reached else f.arrive.astimezone(zone),
            etd=None if done else f.depart.astimezone(zone),
            delay_min=f.delay_min,
            arrived_at=f.arrived_at.astimezone(zone) if f.arrived_at else None,
            departed_at=f.departed_at.astimezone(zone) if f.departed_at else None,
        )

    def _stop_view(self, stop_id: str, visits: list[VisitView]) -> StopView:
        stop = self.fleet.stop(stop_id)
        now = self.clock.now()
        here = [v for v in visits if v.stop == stop_id]
        # Today's visit stays the one shown all day (so "reparti" can be read after the
        # bus has left), unless another visit here today is still to come.
        today = self.today()
        todays = [v for v in here if v.day == today]
        pending = [v for v in todays if v.status not in _FINISHED]
        later = [v for v in here if v.day > today]
        shown = pending or todays[-1:] or later
        nxt = shown[0] if shown else None
        rest = [v for v in here if nxt is not None and v.planned_arrive > nxt.planned_arrive]
        presence = last_seen = queue = None
        if nxt is not None:
            s = self.state.get(nxt.vehicle)
            presence, last_seen = s.presence(now, self.stale_after), s.last_seen
            q = s.queues.get(nxt.visit)
            if q is not None and q.open and nxt.status in _AT_THE_STOP:
                queue = QueueView(q.waiting, q.wait_min, q.paused,
                                  q.ts.astimezone(self.fleet.zone))
        return StopView(
            stop=stop.id, commune=stop.commune, insee=stop.insee, place=stop.place,
            lat=stop.lat, lon=stop.lon, next_visit=nxt, upcoming=rest,
            vehicle_presence=presence,
            last_seen=last_seen.astimezone(self.fleet.zone) if last_seen else None,
            updated_at=now.astimezone(self.fleet.zone), queue=queue,
        )  # fmt: skip
