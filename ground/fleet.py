"""The fleet as configured: vehicles, stops (communes) and the weekly timetable.

`load_fleet` reads and checks the TOML file; `visits_on` turns the weekly timetable into
the dated visits of one day (cancelled ones included, French public holidays among them);
`day_plan` keeps one vehicle's visits that take place, the Plan the ground sends to the bus.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import holidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from medicobus import contract
from medicobus.clock import DEFAULT_ZONE
from medicobus.settings import ZoneName, load_toml

DAYS = {
    "lundi": 0, "monday": 0, "mardi": 1, "tuesday": 1, "mercredi": 2, "wednesday": 2,
    "jeudi": 3, "thursday": 3, "vendredi": 4, "friday": 4, "samedi": 5, "saturday": 5,
    "dimanche": 6, "sunday": 6,
}  # fmt: skip
HALVES = {"matin": "am", "am": "am", "morning": "am",
          "apres-midi": "pm", "pm": "pm", "afternoon": "pm",
          "journee": "day", "day": "day"}  # fmt: skip
HALF_LABELS_FR = {"am": "matin", "pm": "après-midi", "day": "journée"}
DAY_LABELS_FR = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]

DAY_VISITS_KEPT = 20_000  # (vehicle, day) plans kept: a thousand buses over a fortnight
DAYS_KEPT = 62  # days of the whole fleet's visits kept, from yesterday to the horizon
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


def _plain(word: str) -> str:
    """Lower case, no accents: 'Après-midi' -> 'apres-midi'."""
    decomposed = unicodedata.normalize("NFKD", word.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _parse_half(value: object) -> str:
    if isinstance(value, str) and _plain(value) in HALVES:
        return HALVES[_plain(value)]
    raise ValueError("half must be matin, après-midi or journée")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Vehicle(_Strict):
    id: contract.VehicleId
    name: str


class Stop(_Strict):
    id: Slug
    commune: Annotated[str, Field(min_length=1)]
    insee: Annotated[str, Field(pattern=r"^(\d{5}|2[AB]\d{3})$")]
    lat: contract.Latitude
    lon: contract.Longitude
    radius_m: Annotated[float, Field(gt=0, le=5000)] = 100.0
    place: str = ""  # where in the commune the bus parks, e.g. "parking de la mairie"


class TimetableEntry(_Strict):
    vehicle: str
    stop: str
    day: int
    half: Literal["am", "pm", "day"]
    arrive: time
    depart: time
    on_public_holidays: bool = False  # this visit runs even on a public holiday

    @field_validator("day", mode="before")
    @classmethod
    def _day(cls, value: object) -> int:
        if isinstance(value, str) and _plain(value) in DAYS:
            return DAYS[_plain(value)]
        raise ValueError(f"day must be one of {', '.join(list(DAYS)[::2])}")

    @field_validator("half", mode="before")
    @classmethod
    def _half(cls, value: object) -> str:
        return _parse_half(value)

    @model_validator(mode="after")
    def _order(self) -> TimetableEntry:
        if self.depart <= self.arrive:
            raise ValueError(f"depart {self.depart:%H:%M} is not after arrive {self.arrive:%H:%M}")
        return self


class Cancellation(_Strict):
    date: date
    stop: str
    half: Literal["am", "pm", "day"] | None = None  # None: the whole day at that stop
    reason: str = ""

    @field_validator("half", mode="before")
    @classmethod
    def _half(cls, value: object) -> str:
        return _parse_half(value)


class Fleet(_Strict):
    timezone: ZoneName = DEFAULT_ZONE
    # French public holidays (the `holidays` package) cancel the visits of the day, unless
    # an entry says `on_public_holidays = true`; a subdivision adds its own, e.g. "57"
    # (Moselle) or "6AE" (Alsace): Good Friday and 26 December.
    skip_public_holidays: bool = True
    holidays_subdivision: str | None = None
    vehicles: list[Vehicle]
    stops: list[Stop]
    timetable: list[TimetableEntry]
    cancellations: list[Cancellation] = []

    @field_validator("holidays_subdivision")
    @classmethod
    def _subdivision(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.France.subdivisions:
            raise ValueError(f"unknown French subdivision {value!r}; one of "
                             f"{', '.join(holidays.France.subdivisions)}")
        return value

    @model_validator(mode="after")
    def _references(self) -> Fleet:
        for kind, ids in (("vehicle", [v.id for v in self.vehicles]),
                          ("stop", [s.id for s in self.stops])):  # fmt: skip
            if len(set(ids)) != len(ids):
                raise ValueError(f"duplicate {kind} id")
        vehicles, stops = {v.id for v in self.vehicles}, {s.id for s in self.stops}
        for i, entry in enumerate(self.timetable):
            if entry.vehicle not in vehicles:
                raise ValueError(f"timetable[{i}]: unknown vehicle {entry.vehicle!r}")
            if entry.stop not in stops:
                raise ValueError(f"timetable[{i}]: unknown stop {entry.stop!r}")
        for i, c in enumerate(self.cancellations):
            if c.stop not in stops:
                raise ValueError(f"cancellations[{i}]: unknown stop {c.stop!r}")
        # Two visits at once: compare each entry with the next of the same vehicle and day
        # only (sorted by arrival), so a fleet of a thousand buses checks in no time.
        slots: dict[tuple[str, int], list[TimetableEntry]] = {}
        for entry in self.timetable:
            slots.setdefault((entry.vehicle, entry.day), []).append(entry)
        for entries in slots.values():
            entries.sort(key=lambda e: e.arrive)
            for a, b in itertools.pairwise(entries):
                if b.arrive < a.depart:
                    raise ValueError(
                        f"timetable: {a.vehicle} has two visits at once on "
                        f"{DAY_LABELS_FR[a.day]} ({a.stop} and {b.stop})"
                    )
        return self

    @functools.cached_property
    def _index(self) -> _Index:
        # A cached property, not a pydantic private attribute: those are read through
        # __getattr__, ten times slower on this hot path.
        return _Index(self)

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Fleet:
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("_index", None)  # a changed timetable gets its own index
        return copy

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stop(self, stop_id: str) -> Stop:
        return self._index.stops[stop_id]

    def stop_by_insee(self, insee: str) -> Stop | None:
        return self._index.by_insee.get(insee)

    def entries(self, weekday: int, vehicle: str | None = None,
                stop: str | None = None) -> list[TimetableEntry]:
        """The timetable entries of a weekday, for one vehicle or one stop if given."""
        index = self._index
        if vehicle is not None:
            found = index.by_vehicle.get((vehicle, weekday), [])
            return [e for e in found if stop in (None, e.stop)]
        if stop is not None:
            return index.by_stop.get((stop, weekday), [])
        return index.by_weekday.get(weekday, [])

    def cancellation(self, entry: TimetableEntry, day: date) -> Cancellation | None:
        """Why the entry's visit on `day` does not take place, or None if it does."""
        found = self._index.cancellations.get((day, entry.stop))
        listed = next((c for c in found if c.half in (None, entry.half)), None) if found else None
        if listed is not None or not self.skip_public_holidays or entry.on_public_holidays:
            return listed
        holiday = public_holiday(day, self.holidays_subdivision)
        if holiday is None:
            return None
        return Cancellation(date=day, stop=entry.stop, half=entry.half,
                            reason=f"Jour férié ({holiday})")

    def day_visits(self, vehicle: str, day: date) -> tuple[contract.PlannedVisit, ...]:
        """The vehicle's visits that take place on `day`, in order (kept: the timetable
        does not change under a Fleet; a changed one is a new Fleet)."""
        cache = self._index.day_visits
        found = cache.get((vehicle, day))
        if found is None:
            if len(cache) > DAY_VISITS_KEPT:
                cache.clear()
            found = cache[(vehicle, day)] = tuple(
                v.planned() for v in visits_on(self, day, vehicle) if v.cancelled is None)
        return found


class _Index:
    """The fleet looked up by what the ground asks: stops by id and INSEE code, timetable
    entries by weekday, by vehicle and by stop, cancellations by date and stop."""

    def __init__(self, fleet: Fleet) -> None:
        self.stops = {s.id: s for s in fleet.stops}
        self.by_insee: dict[str, Stop] = {}
        for s in fleet.stops:
            self.by_insee.setdefault(s.insee, s)
        self.by_weekday: dict[int, list[TimetableEntry]] = {}
        self.by_vehicle: dict[tuple[str, int], list[TimetableEntry]] = {}
        self.by_stop: dict[tuple[str, int], list[TimetableEntry]] = {}
        for e in sorted(fleet.timetable, key=lambda e: e.arrive):
            self.by_weekday.setdefault(e.day, []).append(e)
            self.by_vehicle.setdefault((e.vehicle, e.day), []).append(e)
            self.by_stop.setdefault((e.stop, e.day), []).append(e)
        self.cancellations: dict[tuple[date, str], list[Cancellation]] = {}
        for c in fleet.cancellations:
            self.cancellations.setdefault((c.date, c.stop), []).append(c)
        self.day_visits: dict[tuple[str, date], tuple[contract.PlannedVisit, ...]] = {}
        self.days: dict[date, dict[str, list[DatedVisit]]] = {}  # by stop


@functools.cache
def _holidays(year: int, subdivision: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays("FR", subdiv=subdivision, years=year, language="fr")


def public_holiday(day: date, subdivision: str | None = None) -> str | None:
    """The French name of the public holiday on `day` ("Lundi de Pâques"), or None."""
    return _holidays(day.year, subdivision).get(day)


def local_moment(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`at` o'clock on `day` in `zone`, with that moment's fixed UTC offset.

    A fixed offset keeps arithmetic and comparisons exact on the days clocks change
    (Python adds and compares datetimes sharing a ZoneInfo by wall clock), and it is what
    the bus reads back from the plan's ISO 8601 times. A time in the spring-forward gap is
    read with the offset before the gap, an ambiguous autumn time as its first occurrence,
    as RFC 5545 says.
    """
    moment = datetime.combine(day, at, zone)
    return moment.astimezone(timezone(moment.utcoffset() or timedelta(0)))


def load_fleet(path: Path | str) -> Fleet:
    return load_toml(path, Fleet)


def visit_id(day: date, stop_id: str, half: str) -> str:
    return f"{day.isoformat()}/{stop_id}/{half}"


@dataclass(frozen=True)
class DatedVisit:
    """A timetable entry on a date: when, where, and whether it is cancelled."""

    entry: TimetableEntry
    stop: Stop
    day: date
    arrive: datetime
    depart: datetime
    cancelled: Cancellation | None

    @property
    def id(self) -> str:
        return visit_id(self.day, self.stop.id, self.entry.half)

    def planned(self) -> contract.PlannedVisit:
        s = self.stop
        return contract.PlannedVisit(
            visit=self.id, stop=s.id, commune=s.commune, insee=s.insee, lat=s.lat, lon=s.lon,
            radius_m=s.radius_m, arrive=self.arrive, depart=self.depart,
        )  # fmt: skip


def visits_on(fleet: Fleet, day: date, vehicle: str | None = None,
              stop: str | None = None) -> list[DatedVisit]:
    """The visits of `day` (the whole fleet's, or one vehicle's, or at one stop), cancelled
    ones included, in order of arrival. Each day is worked out once for the whole fleet."""
    index = fleet._index
    by_stop = index.days.get(day)
    if by_stop is None:
        if len(index.days) > DAYS_KEPT:
            index.days.clear()
        by_stop = index.days[day] = {}
        zone = fleet.zone
        for e in fleet.entries(day.weekday()):
            by_stop.setdefault(e.stop, []).append(DatedVisit(
                entry=e, stop=fleet.stop(e.stop), day=day,
                arrive=local_moment(day, e.arrive, zone), depart=local_moment(day, e.depart, zone),
                cancelled=fleet.cancellation(e, day)))  # fmt: skip
    if stop is not None:
        found = by_stop.get(stop, [])
        return found if vehicle is None else [v for v in found if v.entry.vehicle == vehicle]
    if vehicle is not None:  # its entries are in order already
        entries = fleet.entries(day.weekday(), vehicle)
        return [v for e in entries for v in by_stop[e.stop] if v.entry is e]
    return sorted((v for visits in by_stop.values() for v in visits), key=lambda v: v.arrive)


def day_plan(fleet: Fleet, vehicle: str, day: date) -> contract.Plan:
    """The plan sent to the bus: the vehicle's visits that take place on `day`, in order."""
    return contract.Plan(vehicle=vehicle, ts=contract.utcnow(), day=day,
                         visits=list(fleet.day_visits(vehicle, day)))
