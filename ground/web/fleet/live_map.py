"""What the live map shows (`GET /fleet/api/map`, drawn by static/map.js): each vehicle
where it last was, with its presence and what it is doing; its stops of the day, in order,
each with its live status; and the route it has driven since midnight.

The fleet is read from the board at each request (it may be replaced while the ground
runs). Texts are made here, French then English, so the script only puts them in place.
The route leaves out the wild fixes the live state holds back, and is thinned
(`medicobus.geo.thin_track`) and capped: a whole day stays a few kilobytes for a phone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from pydantic import BaseModel

from ground.board import Board
from ground.eta import Forecast
from ground.views import VisitStatus, status_label_en, status_label_fr
from ground.web.fleet.models import PositionOut
from ground.web.fleet.sources import SeriesSource
from ground.web.fleet.views import PRESENCE_EN, PRESENCE_FR
from ground.web.format import hm
from medicobus.clock import Clock
from medicobus.geo import thin_track
from medicobus.motion import too_fast

ROUTE_MIN_STEP_M = 25.0  # closer fixes (a parked bus, a slow crawl) add nothing at a glance
ROUTE_MAX_POINTS = 800  # per vehicle and day: about 16 kB of JSON
ROUTE_MAX_ROWS = 20_000  # positions read from the store per vehicle and request, at most
_AT_THE_STOP = (VisitStatus.ARRIVED, VisitStatus.CONSULTING)
_TO_COME = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.LATE)
_REACHED = (*_AT_THE_STOP, VisitStatus.DEPARTED, VisitStatus.UNCONFIRMED)


class MapStop(BaseModel):
    n: int  # its rank in the vehicle's day, from 1
    visit: str
    stop: str
    commune: str
    insee: str
    place: str
    lat: float
    lon: float
    arrive: datetime  # planned
    depart: datetime  # planned
    hours: str  # "08:30–10:30", planned, local time
    status: VisitStatus
    status_text: str  # "retard de 7 min · 7 min late"
    eta_text: str  # "arrivée estimée 08:37 · ETA 08:37", or "" once the bus is there


class MapVehicle(BaseModel):
    id: str
    name: str
    presence: str  # online, stale, offline, unknown
    presence_text: str
    position: PositionOut | None
    status: VisitStatus | None  # of the visit it is at, else the next one; None: day over
    status_text: str
    stops: list[MapStop]
    route: list[tuple[float, float]]  # (lat, lon) driven since midnight, oldest first


class MapOut(BaseModel):
    day: date
    vehicles: list[MapVehicle]


def live_map(board: Board, store: SeriesSource, clock: Clock) -> MapOut:
    fleet = board.fleet  # one fleet for the whole answer, even if it is replaced meanwhile
    zone, now = fleet.zone, clock.now()
    today = now.astimezone(zone).date()
    midnight = datetime.combine(today, time(0), zone)
    places = {s.id: s.place for s in fleet.stops}
    vehicles = []
    for v in fleet.vehicles:
        s = board.state.get(v.id)
        presence = s.presence(now, board.stale_after)
        pos = s.position
        forecasts = board.forecasts(v.id)
        status, status_text = _doing(forecasts)
        fixes = store.track(v.id, midnight, midnight + timedelta(days=1), ROUTE_MAX_ROWS)
        vehicles.append(MapVehicle(
            id=v.id, name=v.name, presence=presence,
            presence_text=f"{PRESENCE_FR[presence]} · {PRESENCE_EN[presence]}",
            position=None if pos is None else PositionOut(
                lat=pos.lat, lon=pos.lon, ts=pos.ts.astimezone(zone).replace(microsecond=0),
                speed_kmh=None if pos.speed is None else round(pos.speed * 3.6, 1)),
            status=status, status_text=status_text,
            stops=[_stop(i, f, places.get(f.visit.stop, ""), zone)
                   for i, f in enumerate(forecasts, 1)],
            route=thin_track(believable(fixes), ROUTE_MIN_STEP_M, ROUTE_MAX_POINTS),
        ))  # fmt: skip
    return MapOut(day=today, vehicles=vehicles)


Fix = tuple[float, float, float | None, datetime]  # lat, lon, error in metres, time


def believable(fixes: list[Fix]) -> list[tuple[float, float]]:
    """The (lat, lon) of the fixes less the lone jumps, as the live state judges them
    (ground.state): impossibly far from the last one kept while the next fix agrees with
    that one, or the last fix of all (held back until another confirms it)."""
    kept: list[Fix] = []
    for i, fix in enumerate(fixes):
        if kept and too_fast(kept[-1], fix) and (
                i + 1 == len(fixes) or not too_fast(kept[-1], fixes[i + 1])):
            continue
        kept.append(fix)
    return [(lat, lon) for lat, lon, _, _ in kept]


def _label(f: Forecast) -> str:
    # The fleet manager is told what the bus did not say itself (ground/progress.py).
    seen = " (déduit des positions · from the positions)" if f.inferred else ""
    return (f"{status_label_fr(f.status, f.delay_min)} · "
            f"{status_label_en(f.status, f.delay_min)}{seen}")


def _stop(n: int, f: Forecast, place: str, zone: tzinfo) -> MapStop:
    v = f.visit
    eta = hm(f.arrive, zone)
    return MapStop(
        n=n, visit=v.visit, stop=v.stop, commune=v.commune, insee=v.insee, place=place,
        lat=v.lat, lon=v.lon, arrive=v.arrive.astimezone(zone),
        depart=v.depart.astimezone(zone), hours=f"{hm(v.arrive, zone)}–{hm(v.depart, zone)}",
        status=f.status, status_text=_label(f),
        eta_text="" if f.status in _REACHED else f"arrivée estimée {eta} · ETA {eta}",
    )  # fmt: skip


def _doing(forecasts: list[Forecast]) -> tuple[VisitStatus | None, str]:
    """What the vehicle is doing: at a stop, else heading to its next one, else done."""
    at = next((f for f in forecasts if f.status in _AT_THE_STOP), None)
    if at is not None:
        return at.status, f"À {at.visit.commune} : {_label(at)}"
    nxt = next((f for f in forecasts if f.status in _TO_COME), None)
    if nxt is not None:
        return nxt.status, f"Prochain arrêt : {nxt.visit.commune} ({_label(nxt)})"
    return None, "Plus d'arrêt prévu aujourd'hui · no more stops today"
