"""The fleet as configured: vehicles, stops (communes) and the weekly timetable.

`load_fleet` reads and checks the TOML file; `visits_on` turns the weekly timetable into
the dated visits of one day (cancelled ones included, French public holidays among them);
`day_plan` keeps one vehicle's visits that take place, the Plan the ground sends to the bus.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

import holidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ground.recurrence import Recurrence, RecurrenceError, date_fr, season_fr
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


class Contact(_Strict):
    """Whom to tell at the mairie of a stop when its visits change: an address or a URL."""

    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    webhook: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    headers: dict[str, str] = {}  # for the webhook, e.g. Authorization = "Bearer ..."

    @model_validator(mode="after")
    def _one(self) -> Contact:
        if (self.email is None) == (self.webhook is None):
            raise ValueError("a contact is one `email` or one `webhook`")
        return self


class Stop(_Strict):
    id: Slug
    commune: Annotated[str, Field(min_length=1)]
    insee: Annotated[str, Field(pattern=r"^(\d{5}|2[AB]\d{3})$")]
    lat: contract.Latitude
    lon: contract.Longitude
    radius_m: Annotated[float, Field(gt=0, le=5000)] = 100.0
    place: str = ""  # where in the commune the bus parks, e.g. "parking de la mairie"
    contacts: list[Contact] = []  # the mairie's, told of cancellations, moves and delays


def _weekday(value: object) -> int:
    if isinstance(value, str) and _plain(value) in DAYS:
        return DAYS[_plain(value)]
    raise ValueError(f"day must be one of {', '.join(list(DAYS)[::2])}")


class _Hours(_Strict):
    arrive: time
    depart: time

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.depart <= self.arrive:
            raise ValueError(f"depart {self.depart:%H:%M} is not after arrive {self.arrive:%H:%M}")
        return self


class TimetableEntry(_Hours):
    """A visit that recurs: every week on `day`, or by an RFC 5545 `rrule` counted from
    `anchor`; within a season (`start`, `end`, inclusive) when given."""

    id: Slug | None = None  # named by the console; else `key` is made from what it says
    vehicle: str
    stop: str
    half: Literal["am", "pm", "day"]
    day: int | None = None
    rrule: str | None = None
    anchor: date | None = None
    start: date | None = None
    end: date | None = None
    on_public_holidays: bool = False  # this visit runs even on a public holiday

    @field_validator("day", mode="before")
    @classmethod
    def _day(cls, value: object) -> int | None:
        return None if value is None else _weekday(value)

    @field_validator("half", mode="before")
    @classmethod
    def _half(cls, value: object) -> str:
        return _parse_half(value)

    @model_validator(mode="after")
    def _recurs(self) -> TimetableEntry:
        if (self.day is None) == (self.rrule is None):
            raise ValueError("give `day` (every week) or `rrule` (RFC 5545), one of the two")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.day is not None and self.anchor is not None:
            raise ValueError("`anchor` is for `rrule`; `day` is every week")
        if self.rrule is not None:
            try:
                Recurrence.parse(self.rrule, self.anchor)
            except RecurrenceError as exc:
                raise ValueError(f"rrule: {exc}") from None
        return self

    @functools.cached_property
    def recurrence(self) -> Recurrence | None:
        return None if self.rrule is None else Recurrence.parse(self.rrule, self.anchor)

    @functools.cached_property
    def key(self) -> str:
        """The entry's id: given, or made from its vehicle, stop, half and rule."""
        if self.id is not None:
            return self.id
        rule = self.rrule or DAY_LABELS_FR[self.day or 0]
        digest = hashlib.sha1(f"{self.vehicle}|{rule}|{self.anchor}|{self.arrive}".encode())
        return f"{self.stop}-{self.half}-{digest.hexdigest()[:6]}"

    @functools.cached_property
    def weekdays(self) -> frozenset[int] | None:
        """The weekdays it may fall on (0 = Monday); None: any."""
        if self.day is not None:
            return frozenset({self.day})
        return self.recurrence.weekdays if self.recurrence else None

    def occurs_on(self, day: date) -> bool:
        if (self.start and day < self.start) or (self.end and day > self.end):
            return False
        if self.recurrence is None:
            return day.weekday() == self.day
        return self.recurrence.occurs_on(day)

    def describe_fr(self) -> str:
        """ "un mardi sur deux, du 1er janvier 2027 au 30 juin 2027"."""
        text = ("chaque " + DAY_LABELS_FR[self.day] if self.day is not None
                else self.recurrence.describe_fr() if self.recurrence else "")  # fmt: skip
        season = season_fr(self.start, self.end)
        return f"{text}, {season}" if season else text


class Closure(_Strict):
    """Nothing runs from `from` to `to` (inclusive), e.g. two weeks in August."""

    model_config = ConfigDict(populate_by_name=True)
    first: Annotated[date, Field(alias="from")]
    last: Annotated[date, Field(alias="to")]
    reason: Annotated[str, Field(min_length=1)] = "Fermeture"

    @model_validator(mode="after")
    def _order(self) -> Closure:
        if self.last < self.first:
            raise ValueError(f"to {self.last} is before from {self.first}")
        return self


class Cancellation(_Strict):
    """The visits at `stop` on `date` (of one half-day, or all of them) do not take place."""

    date: date
    stop: str
    half: Literal["am", "pm", "day"] | None = None  # None: the whole day at that stop
    reason: str = ""

    @field_validator("half", mode="before")
    @classmethod
    def _half(cls, value: object) -> str:
        return _parse_half(value)


class Move(_Strict):
    """One visit held at another date, hours or parking place (each kept when not given).
    The visit keeps its id: calendars and the bus see the same visit, moved."""

    visit: str  # "2027-03-09/noce/am", as planned
    day: date | None = None
    arrive: time | None = None
    depart: time | None = None
    place: str | None = None
    lat: contract.Latitude | None = None
    lon: contract.Longitude | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _check(self) -> Move:
        parse_visit_id(self.visit)
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        return self


class Addition(_Hours):
    """A one-off visit."""

    vehicle: str
    stop: str
    day: date
    half: Literal["am", "pm", "day"]
    reason: str = ""

    @field_validator("half", mode="before")
    @classmethod
    def _half(cls, value: object) -> str:
        return _parse_half(value)


class PlaceChange(_Strict):
    """The bus parks elsewhere at `stop` on `date` (market day)."""

    date: date
    stop: str
    place: Annotated[str, Field(min_length=1)]
    lat: contract.Latitude
    lon: contract.Longitude
    reason: str = ""


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
    closures: list[Closure] = []
    # Dated exceptions: written here, or made in the coordinator's console (which keeps
    # them in the ground database, with who, when and why: `ground.tournee`).
    cancellations: list[Cancellation] = []
    moves: list[Move] = []
    additions: list[Addition] = []
    places: list[PlaceChange] = []

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
                          ("stop", [s.id for s in self.stops]),
                          ("timetable entry", [e.key for e in self.timetable])):  # fmt: skip
            if len(set(ids)) != len(ids):
                raise ValueError(f"duplicate {kind} id")
        vehicles, stops = {v.id for v in self.vehicles}, {s.id for s in self.stops}
        said: dict[str, list[tuple[str, str]]] = {  # field -> (vehicle, stop) of each item
            "timetable": [(e.vehicle, e.stop) for e in self.timetable],
            "additions": [(a.vehicle, a.stop) for a in self.additions],
            "cancellations": [("", c.stop) for c in self.cancellations],
            "places": [("", p.stop) for p in self.places],
        }
        for field, items in said.items():
            for i, (vehicle, stop) in enumerate(items):
                if vehicle and vehicle not in vehicles:
                    raise ValueError(f"{field}[{i}]: unknown vehicle {vehicle!r}")
                if stop not in stops:
                    raise ValueError(f"{field}[{i}]: unknown stop {stop!r}")
        for i, m in enumerate(self.moves):
            if parse_visit_id(m.visit)[1] not in stops:
                raise ValueError(f"moves[{i}]: unknown stop in visit {m.visit!r}")
        clash = first_clash(self.timetable)
        if clash is not None:
            a, b, day = clash
            raise ValueError(f"timetable: {a.vehicle} has two visits at once on {day_fr(day)} "
                             f"({a.stop} and {b.stop})")
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

    def entry(self, key: str) -> TimetableEntry | None:
        return self._index.entries.get(key)

    def closed(self, day: date) -> Closure | None:
        return next((c for c in self.closures if c.first <= day <= c.last), None)

    def day_off(self, day: date) -> str | None:
        """Why nothing is planned on `day` (a closure, a public holiday), or None."""
        closure = self.closed(day)
        if closure is not None:
            return closure.reason
        if self.skip_public_holidays:
            holiday = public_holiday(day, self.holidays_subdivision)
            if holiday is not None:
                return f"Jour férié ({holiday})"
        return None

    def cancellation(self, day: date, stop: str, half: str, *, listed_only: bool = False,
                     on_public_holidays: bool = False) -> Cancellation | None:
        """Why the visit planned on `day` at `stop` for `half` does not take place, or None:
        a listed cancellation, else (unless `listed_only`) a closure or a public holiday."""
        found = self._index.cancellations.get((day, stop))
        listed = next((c for c in found if c.half in (None, half)), None) if found else None
        if listed is not None or listed_only:
            return listed
        closure = self.closed(day)
        reason = closure.reason if closure is not None else None
        if reason is None and self.skip_public_holidays and not on_public_holidays:
            holiday = public_holiday(day, self.holidays_subdivision)
            reason = f"Jour férié ({holiday})" if holiday is not None else None
        if reason is None:
            return None
        return Cancellation(date=day, stop=stop, half=half, reason=reason)  # type: ignore[arg-type]

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


def first_clash(entries: list[TimetableEntry]
                ) -> tuple[TimetableEntry, TimetableEntry, date] | None:  # fmt: skip
    """Two entries of one vehicle whose hours overlap on a date both fall on, if any.

    Only pairs whose hours overlap and whose weekdays may meet are expanded (over
    `CLASH_YEARS` from the later one's start), so a fleet of a thousand buses checks in no
    time; two weekly entries on the same weekday clash at once, as they always did.
    """
    by_vehicle: dict[str, list[TimetableEntry]] = {}
    for entry in entries:
        by_vehicle.setdefault(entry.vehicle, []).append(entry)
    for mine in by_vehicle.values():
        mine.sort(key=lambda e: e.arrive)
        for i, a in enumerate(mine):
            for b in mine[i + 1:]:
                if b.arrive >= a.depart:
                    break  # sorted by arrival: no later entry overlaps `a`
                if a.weekdays is not None and b.weekdays is not None \
                        and not a.weekdays & b.weekdays:  # fmt: skip
                    continue
                day = _first_common_day(a, b)
                if day is not None:
                    return a, b, day
    return None


CLASH_YEARS = 4  # long enough for every rule a tournée uses to have shown its pattern


def _first_common_day(a: TimetableEntry, b: TimetableEntry) -> date | None:
    starts = [d for e in (a, b) for d in (e.start, e.anchor) if d is not None]
    first = max(starts) if starts else date(2027, 1, 1)
    ends = [e.end for e in (a, b) if e.end is not None]
    last = min([*ends, first.replace(month=1, day=1) + timedelta(days=366 * CLASH_YEARS)])
    if a.recurrence is None and b.recurrence is None:  # both weekly, the same weekday
        day = first + timedelta(days=((a.day or 0) - first.weekday()) % 7)
        return day if day <= last else None
    for year in range(first.year, last.year + 1):
        found = sorted(d for d in _year_dates(a, year) & _year_dates(b, year)
                       if first <= d <= last)  # fmt: skip
        if found:
            return found[0]
    return None


def _year_dates(entry: TimetableEntry, year: int) -> set[date]:
    if entry.recurrence is not None:
        return {d for d in entry.recurrence.dates(year) if entry.occurs_on(d)}
    day = date(year, 1, 1)
    day += timedelta(days=((entry.day or 0) - day.weekday()) % 7)
    found = set()
    while day.year == year:
        if entry.occurs_on(day):
            found.add(day)
        day += timedelta(days=7)
    return found


def day_fr(day: date) -> str:
    return f"{DAY_LABELS_FR[day.weekday()]} {date_fr(day)}"


class _Index:
    """The fleet looked up by what the ground asks: stops by id and INSEE code, timetable
    entries by key and by the weekday they may fall on, exceptions by date and visit."""

    def __init__(self, fleet: Fleet) -> None:
        self.stops = {s.id: s for s in fleet.stops}
        self.by_insee: dict[str, Stop] = {}
        for s in fleet.stops:
            self.by_insee.setdefault(s.insee, s)
        self.entries = {e.key: e for e in fleet.timetable}
        self.by_weekday: dict[int, list[TimetableEntry]] = {}
        for e in sorted(fleet.timetable, key=lambda e: e.arrive):
            for weekday in e.weekdays if e.weekdays is not None else range(7):
                self.by_weekday.setdefault(weekday, []).append(e)
        self.cancellations: dict[tuple[date, str], list[Cancellation]] = {}
        for c in fleet.cancellations:
            self.cancellations.setdefault((c.date, c.stop), []).append(c)
        self.moves = {m.visit: m for m in fleet.moves}  # the last one of a visit holds
        self.moved_to: dict[date, list[Move]] = {}
        for m in self.moves.values():
            if m.day is not None and m.day != parse_visit_id(m.visit)[0]:
                self.moved_to.setdefault(m.day, []).append(m)
        self.additions: dict[date, list[Addition]] = {}
        for a in fleet.additions:
            self.additions.setdefault(a.day, []).append(a)
        self.places = {(p.date, p.stop): p for p in fleet.places}
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


def parse_visit_id(visit: str) -> tuple[date, str, str]:
    """ "2027-03-09/noce/am" -> (date, stop, half), as planned (a moved visit keeps it)."""
    parts = visit.split("/")
    try:
        if len(parts) == 3 and parts[2] in HALF_LABELS_FR:
            return date.fromisoformat(parts[0]), parts[1], parts[2]
    except ValueError:
        pass
    raise ValueError(f"not a visit id (date/stop/half, e.g. 2027-03-09/noce/am): {visit!r}")


@dataclass(frozen=True)
class DatedVisit:
    """A visit on its date: when, where (the stop, with the day's parking place), whether
    it is cancelled, and what changed it (a move, an addition)."""

    id: str
    vehicle: str
    stop: Stop
    half: str
    day: date
    arrive: datetime
    depart: datetime
    cancelled: Cancellation | None
    entry: TimetableEntry | None  # None: a one-off visit (an addition)
    planned_as: tuple[datetime, datetime] | None = None  # before a move: arrive, depart
    note: str = ""  # why it was moved or added

    def planned(self) -> contract.PlannedVisit:
        s = self.stop
        return contract.PlannedVisit(
            visit=self.id, stop=s.id, commune=s.commune, insee=s.insee, lat=s.lat, lon=s.lon,
            radius_m=s.radius_m, arrive=self.arrive, depart=self.depart,
        )  # fmt: skip


def _dated(fleet: Fleet, vid: str, vehicle: str, on: date, hours: _Hours,
           entry: TimetableEntry | None, note: str = "") -> DatedVisit:
    """The visit `vid` held on `on`, with its move and the day's parking place applied."""
    zone, index = fleet.zone, fleet._index
    planned_day, stop_id, half = parse_visit_id(vid)
    move = index.moves.get(vid)
    arrive = local_moment(planned_day, hours.arrive, zone)
    depart = local_moment(planned_day, hours.depart, zone)
    planned_as = None
    if move is not None:
        planned_as = (arrive, depart)
        arrive = local_moment(on, move.arrive or hours.arrive, zone)
        depart = local_moment(on, move.depart or hours.depart, zone)
        note = move.reason
    stop = fleet.stop(stop_id)
    place = index.places.get((on, stop_id))
    if place is not None:
        stop = stop.model_copy(update={"place": place.place, "lat": place.lat, "lon": place.lon})
    if move is not None:
        changed = {k: v for k, v in (("place", move.place), ("lat", move.lat),
                                     ("lon", move.lon)) if v is not None}  # fmt: skip
        stop = stop.model_copy(update=changed) if changed else stop
    # A move or an addition was decided for its date: a closure or holiday does not cancel
    # it (the console refuses one onto such a day); a listed cancellation does.
    cancelled = fleet.cancellation(planned_day, stop_id, half,
                                   listed_only=entry is None or move is not None,
                                   on_public_holidays=bool(entry and entry.on_public_holidays))
    return DatedVisit(id=vid, vehicle=vehicle, stop=stop, half=half, day=on, arrive=arrive,
                      depart=depart, cancelled=cancelled, entry=entry, planned_as=planned_as,
                      note=note)  # fmt: skip


def _day_of(fleet: Fleet, day: date) -> dict[str, list[DatedVisit]]:
    """Every visit held on `day`, by stop, in order of arrival."""
    index = fleet._index
    found: list[DatedVisit] = []

    def held_here(vid: str) -> bool:  # else moved to another date
        move = index.moves.get(vid)
        return move is None or move.day in (None, day)

    for e in index.by_weekday.get(day.weekday(), []):
        vid = visit_id(day, e.stop, e.half)
        if e.occurs_on(day) and held_here(vid):
            found.append(_dated(fleet, vid, e.vehicle, day, e, e))
    for a in index.additions.get(day, []):
        vid = visit_id(day, a.stop, a.half)
        if held_here(vid):
            found.append(_dated(fleet, vid, a.vehicle, day, a, None, a.reason))
    for m in index.moved_to.get(day, []):
        origin = scheduled(fleet, m.visit)
        if origin is not None:
            vehicle, hours, entry = origin
            found.append(_dated(fleet, m.visit, vehicle, day, hours, entry))
    by_stop: dict[str, list[DatedVisit]] = {}
    for v in sorted(found, key=lambda v: v.arrive):
        by_stop.setdefault(v.stop.id, []).append(v)
    return by_stop


def scheduled(fleet: Fleet, vid: str) -> tuple[str, _Hours, TimetableEntry | None] | None:
    """What planned the visit `vid` on its date: its vehicle, hours and timetable entry
    (None for an addition); None if nothing did."""
    day, stop_id, half = parse_visit_id(vid)
    for e in fleet._index.by_weekday.get(day.weekday(), []):
        if e.stop == stop_id and e.half == half and e.occurs_on(day):
            return e.vehicle, e, e
    for a in fleet._index.additions.get(day, []):
        if a.stop == stop_id and a.half == half:
            return a.vehicle, a, None
    return None


def visits_on(fleet: Fleet, day: date, vehicle: str | None = None,
              stop: str | None = None) -> list[DatedVisit]:
    """The visits of `day` (the whole fleet's, or one vehicle's, or at one stop), cancelled
    ones included, in order of arrival. Each day is worked out once for the whole fleet."""
    index = fleet._index
    by_stop = index.days.get(day)
    if by_stop is None:
        if len(index.days) > DAYS_KEPT:
            index.days.clear()
        by_stop = index.days[day] = _day_of(fleet, day)
    if stop is not None:
        found = by_stop.get(stop, [])
    else:
        found = sorted((v for visits in by_stop.values() for v in visits),
                       key=lambda v: v.arrive)  # fmt: skip
    return found if vehicle is None else [v for v in found if v.vehicle == vehicle]


def day_plan(fleet: Fleet, vehicle: str, day: date) -> contract.Plan:
    """The plan sent to the bus: the vehicle's visits that take place on `day`, in order."""
    return contract.Plan(vehicle=vehicle, ts=contract.utcnow(), day=day,
                         visits=list(fleet.day_visits(vehicle, day)))


def with_planned(fleet: Fleet, crossings: Iterable[tuple[str, str, datetime]]
                 ) -> Iterator[tuple[contract.PlannedVisit, datetime]]:
    """Each reported arrival or departure (vehicle, visit, time) with its visit as the
    timetable plans it; one at a visit the timetable no longer has is left out."""
    for vehicle, visit, ts in crossings:
        day = ts.astimezone(fleet.zone).date()
        planned = next((v for v in fleet.day_visits(vehicle, day) if v.visit == visit), None)
        if planned is not None:
            yield planned, ts
