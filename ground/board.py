"""The arrivals board: every commune's next visit, its live status and ETA.

Built on demand from the fleet's timetable (indexed: a commune's view asks only the
vehicles that serve it), the live state of the buses and the ETA model. Listeners (the
pages' live streams) are told which communes changed after each ingested batch.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Collection
from datetime import date, timedelta

from ground.eta import Forecast, TravelModel, forecast_day
from ground.fleet import DatedVisit, Fleet, visits_on
from ground.state import STALE_AFTER, LiveState
from ground.views import QueueView, StopView, TicketView, VisitStatus, VisitView
from medicobus import contract
from medicobus.clock import Clock

log = logging.getLogger(__name__)

HORIZON_DAYS = 14

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
        self._changes = itertools.count(1)
        self._versions: dict[str, int] = {}  # INSEE code -> number of its latest change

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
        """Called once per ingested batch that changed these vehicles' state."""
        today = self.today()
        self._changed(frozenset(
            v.insee for vehicle in vehicles for v in self.fleet.day_visits(vehicle, today)))

    def replace_fleet(self, fleet: Fleet, communes: Collection[str]) -> None:
        """The coordinator changed the tournée: these communes' pages are told."""
        self.fleet = fleet
        self._changed(frozenset(communes))

    def _changed(self, communes: frozenset[str]) -> None:
        with self._lock:
            for insee in communes:  # before anyone is told, so no view is older than its news
                self._versions[insee] = next(self._changes)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(communes)
            except Exception:
                log.exception("a board listener failed")

    def version(self, insee: str) -> int:
        """The number of the commune's latest change: a view made at this number is current
        but for what time alone changes (an ETA that slips, a link that goes silent)."""
        return self._versions.get(insee, 0)

    # -- views -----------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock.now().astimezone(self.fleet.zone).date()

    def stops(self, only: Collection[str] | None = None) -> list[StopView]:
        """Every stop (or those of these ids) with its next visit (not the later ones:
        `stop`)."""
        live = _Live(self)
        return [self._stop_view(s.id, live, upcoming=False) for s in self.fleet.stops
                if only is None or s.id in only]

    def stop(self, insee: str) -> StopView | None:
        """One commune, its next visit and the others up to the horizon."""
        stop = self.fleet.stop_by_insee(insee)
        return self._stop_view(stop.id, _Live(self), upcoming=True) if stop else None

    def ticket(self, token: str) -> TicketView | None:
        """The ticket whose QR code holds `token`, as its visit's latest queue lists it;
        None when no queue of today lists it (unknown, seen, absent, or another day's)."""
        found = self.state.followed(contract.ticket_ref(token))
        if found is None:
            return None
        visit = next((v for v in self.fleet.day_visits(found.vehicle, self.today())
                      if v.visit == found.queue.visit), None)
        if visit is None:
            return None
        q, t = found.queue, found.ticket
        left = q.visit in self.state.get(found.vehicle).departures
        return TicketView(
            number=t.ticket, ahead=t.ahead, wait_min=t.wait_min, called=t.called,
            paused=q.paused, ended=left or not q.open, commune=visit.commune,
            insee=visit.insee, updated_at=q.ts.astimezone(self.fleet.zone))  # fmt: skip

    def forecasts(self, vehicle: str) -> list[Forecast]:
        """Today's forecast for one vehicle's remaining and past visits."""
        return forecast_day(self.fleet.day_visits(vehicle, self.today()),
                            self.state.get(vehicle), self.clock.now(), self.travel)

    def visits(self, first: date, last: date, stop_ids: Collection[str] | None = None
               ) -> list[VisitView]:  # fmt: skip
        """The visits from `first` to `last` (at these stops), cancelled ones included, in
        order of arrival; today's with their live status."""
        live = _Live(self)
        day, found = first, []
        while day <= last:
            found += [self._view(dated, live) for dated in visits_on(self.fleet, day)
                      if stop_ids is None or dated.stop.id in stop_ids]
            day += timedelta(days=1)
        return found

    def _visits(self, stop_id: str, live: _Live, upcoming: bool) -> list[VisitView]:
        """The visits at one stop from today to the horizon (without `upcoming`, up to the
        first day that has any), cancelled ones included: only the vehicles that serve it
        are asked for a forecast."""
        views: list[VisitView] = []
        for offset in range(HORIZON_DAYS + 1):
            if views and not upcoming:
                break
            day = live.today + timedelta(days=offset)
            views += [self._view(d, live) for d in visits_on(self.fleet, day, stop=stop_id)]
        return views

    def _view(self, dated: DatedVisit, live: _Live) -> VisitView:
        base = dict(visit=dated.id, stop=dated.stop.id, vehicle=dated.vehicle,
                    vehicle_name=self._names[dated.vehicle], day=dated.day, half=dated.half,
                    planned_arrive=dated.arrive, planned_depart=dated.depart,
                    place=dated.stop.place,
                    moved_from=dated.planned_as[0] if dated.planned_as else None,
                    added=dated.entry is None, note=dated.note)  # fmt: skip
        f = live.forecast(dated.vehicle, dated.id) if dated.day == live.today else None
        if dated.cancelled:
            return VisitView(**base, status=VisitStatus.CANCELLED, eta=None,  # type: ignore[arg-type]
                             etd=None, delay_min=0, cancel_reason=dated.cancelled.reason)
        if f is None:
            passed = dated.depart < live.now
            return VisitView(**base, status=VisitStatus.PLANNED,  # type: ignore[arg-type]
                             eta=None if passed else dated.arrive,
                             etd=None if passed else dated.depart, delay_min=0)
        return self._live_view(base, f)

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

    def _stop_view(self, stop_id: str, live: _Live, upcoming: bool) -> StopView:
        stop = self.fleet.stop(stop_id)
        now, today = live.now, live.today
        here = self._visits(stop_id, live, upcoming)
        # Today's visit stays the one shown all day (so "reparti" can be read after the
        # bus has left), unless another visit here today is still to come.
        todays = [v for v in here if v.day == today]
        pending = [v for v in todays if v.status not in _FINISHED]
        later = [v for v in here if v.day > today]
        shown = pending or todays[-1:] or later
        nxt = shown[0] if shown else None
        rest = [v for v in here if nxt is not None and v.planned_arrive > nxt.planned_arrive] \
            if upcoming else []
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


class _Live:
    """One view's moment, and the forecasts of the vehicles it asked about (each once)."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.now = board.clock.now()
        self.today = self.now.astimezone(board.fleet.zone).date()
        self._forecasts: dict[str, dict[str, Forecast]] = {}

    def forecast(self, vehicle: str, visit: str) -> Forecast | None:
        found = self._forecasts.get(vehicle)
        if found is None:
            b = self.board
            found = self._forecasts[vehicle] = {
                f.visit.visit: f for f in forecast_day(b.fleet.day_visits(vehicle, self.today),
                                                       b.state.get(vehicle), self.now, b.travel)
            }  # fmt: skip
        return found.get(visit)
