"""The fleet manager's reports, as tracking systems give them (Traccar's trips, stops and
summary): per vehicle, its trips (start, end, km, duration), its stops between them (where,
how long) and a summary per day, from the positions the bus sent.

A trip is a run of driving legs (`ground.reports.activity.legs`: moving at their start, no
gap longer than DRIVING_GAP), runs less than MIN_STOP apart being one trip (a junction, a
level crossing, a tractor ahead). A stop is the time between two trips, where the first
ended, named after the fleet's stop it is at when it is inside its radius.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ground.fleet import Fleet, Stop
from ground.reports.activity import Fix, Period, legs
from ground.reports.tables import Column, Table
from ground.store import Store
from medicobus.geo import distance_m
from medicobus.motion import KMH_PER_MS

MIN_STOP = timedelta(minutes=5)


@dataclass
class Trip:
    vehicle: str
    start: datetime
    end: datetime
    start_at: tuple[float, float]
    end_at: tuple[float, float]
    metres: float = 0.0
    driving: timedelta = timedelta(0)
    top_ms: float = 0.0

    @property
    def km(self) -> float:
        return self.metres / 1000


@dataclass(frozen=True)
class Parked:
    """A stop between two trips (named so beside the fleet's `Stop`, a commune's place)."""

    vehicle: str
    start: datetime
    end: datetime
    lat: float
    lon: float
    place: str  # the commune of the fleet's stop it is at, or ""


@dataclass
class Day:
    vehicle: str
    day: date
    trips: list[Trip] = field(default_factory=list)
    stops: list[Parked] = field(default_factory=list)

    @property
    def km(self) -> float:
        return sum(t.metres for t in self.trips) / 1000

    @property
    def driving(self) -> timedelta:
        return sum((t.driving for t in self.trips), timedelta(0))


def trips(vehicle: str, positions: Sequence[Fix]) -> list[Trip]:
    """The vehicle's trips, in order: from the first driving leg of a run to its last,
    with every leg between (a pause at a junction is part of the trip)."""
    found: list[Trip] = []
    pending = 0.0  # metres since the last driving leg: the trip's if it goes on
    for leg in legs(positions):
        current = found[-1] if found else None
        if leg.driving:
            if current is None or leg.start - current.end >= MIN_STOP:
                current = Trip(vehicle, leg.start, leg.end, leg.origin, (leg.lat, leg.lon))
                found.append(current)
            else:
                current.metres += pending
            current.end, current.end_at = leg.end, (leg.lat, leg.lon)
            current.metres += leg.metres
            current.driving += leg.end - leg.start
            current.top_ms = max(current.top_ms, leg.speed or 0.0)
            pending = 0.0
        else:
            pending += leg.metres
    return found


def stops(found: Sequence[Trip], fleet_stops: Sequence[Stop]) -> list[Parked]:
    """The time between each trip and the next, where the first ended."""
    return [Parked(a.vehicle, a.end, b.start, *a.end_at, _place(a.end_at, fleet_stops))
            for a, b in zip(found, found[1:], strict=False)]


def _place(at: tuple[float, float], fleet_stops: Sequence[Stop]) -> str:
    for s in fleet_stops:
        if distance_m(at[0], at[1], s.lat, s.lon) <= s.radius_m:
            return s.commune
    return ""


def days(fleet: Fleet, store: Store, vehicle: str, period: Period) -> list[Day]:
    """Each day of the period with the vehicle's trips (by the day they began, in the
    fleet's zone) and the stops that began that day."""
    found = trips(vehicle, store.positions_between(vehicle, period.start, period.end))
    by_day = {d: Day(vehicle, d) for d in period.days()}
    zone = period.zone
    for t in found:
        by_day[t.start.astimezone(zone).date()].trips.append(t)
    for p in stops(found, fleet.stops):
        by_day[p.start.astimezone(zone).date()].stops.append(p)
    return list(by_day.values())


def _local(moment: datetime, period: Period) -> datetime:
    return moment.astimezone(period.zone).replace(tzinfo=None)


def trip_tables(found: Sequence[Day], period: Period) -> list[Table]:
    """Trips, stops and the daily summary as tables (for the CSV and the dashboard)."""
    when = [Column("start", "Début", "Start", "datetime"), Column("end", "Fin", "End",
                                                                    "datetime")]
    minutes = Column("minutes", "Durée (min)", "Length (min)", "float")
    return [
        Table("trajets", "Trajets", "Trips", [
            Column("vehicle", "Véhicule", "Vehicle", "text"), *when, minutes,
            Column("km", "Km", "Km", "float"),
            Column("top_kmh", "Vitesse max (km/h)", "Top speed (km/h)", "float"),
            Column("from", "Départ (lat, lon)", "From (lat, lon)", "text"),
            Column("to", "Arrivée (lat, lon)", "To (lat, lon)", "text")],
            [[t.vehicle, _local(t.start, period), _local(t.end, period),
              round((t.end - t.start).total_seconds() / 60, 1), round(t.km, 2),
              round(t.top_ms * KMH_PER_MS, 1), _at(t.start_at), _at(t.end_at)]
             for d in found for t in d.trips]),
        Table("arrets", "Arrêts", "Stops", [
            Column("vehicle", "Véhicule", "Vehicle", "text"), *when, minutes,
            Column("place", "Commune", "Commune", "text"),
            Column("at", "Position (lat, lon)", "Position (lat, lon)", "text")],
            [[p.vehicle, _local(p.start, period), _local(p.end, period),
              round((p.end - p.start).total_seconds() / 60, 1), p.place or "—",
              _at((p.lat, p.lon))] for d in found for p in d.stops]),
        Table("jours", "Résumé par jour", "Daily summary", [
            Column("vehicle", "Véhicule", "Vehicle", "text"),
            Column("day", "Jour", "Day", "date"), Column("trips", "Trajets", "Trips"),
            Column("stops", "Arrêts", "Stops"), Column("km", "Km", "Km", "float"),
            Column("driving_h", "Heures de conduite", "Driving hours", "float"),
            Column("first", "Premier départ", "First start", "datetime"),
            Column("last", "Dernière arrivée", "Last arrival", "datetime")],
            [[d.vehicle, d.day, len(d.trips), len(d.stops), round(d.km, 2),
              round(d.driving.total_seconds() / 3600, 2),
              _local(d.trips[0].start, period) if d.trips else None,
              _local(d.trips[-1].end, period) if d.trips else None] for d in found]),
    ]  # fmt: skip


def _at(at: tuple[float, float]) -> str:
    return f"{at[0]:.5f}, {at[1]:.5f}"
