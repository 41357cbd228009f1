"""The fleet as configured: vehicles, stops (communes) and the weekly timetable.

`load_fleet` reads and checks the TOML file; `day_plan` turns the weekly timetable into one
vehicle's visits for a date, the Plan the ground sends to the bus.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medicobus import contract
from medicobus.settings import load_toml

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
    timezone: str = "Europe/Paris"
    vehicles: list[Vehicle]
    stops: list[Stop]
    timetable: list[TimetableEntry]
    cancellations: list[Cancellation] = []

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
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
        for i, a in enumerate(self.timetable):
            for b in self.timetable[i + 1 :]:
                same_slot = a.vehicle == b.vehicle and a.day == b.day
                if same_slot and a.arrive < b.depart and b.arrive < a.depart:
                    raise ValueError(
                        f"timetable: {a.vehicle} has two visits at once on "
                        f"{DAY_LABELS_FR[a.day]} ({a.stop} and {b.stop})"
                    )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stop(self, stop_id: str) -> Stop:
        return next(s for s in self.stops if s.id == stop_id)

    def stop_by_insee(self, insee: str) -> Stop | None:
        return next((s for s in self.stops if s.insee == insee), None)

    def cancellation(self, day: date, stop_id: str, half: str) -> Cancellation | None:
        return next(
            (c for c in self.cancellations
             if c.date == day and c.stop == stop_id and c.half in (None, half)),
            None,
        )  # fmt: skip


def load_fleet(path: Path | str) -> Fleet:
    return load_toml(path, Fleet)


def visit_id(day: date, stop_id: str, half: str) -> str:
    return f"{day.isoformat()}/{stop_id}/{half}"


def day_plan(fleet: Fleet, vehicle: str, day: date) -> contract.Plan:
    """The vehicle's visits on `day`, in order; cancelled visits are left out."""
    zone = fleet.zone
    entries = sorted(
        (e for e in fleet.timetable if e.vehicle == vehicle and e.day == day.weekday()),
        key=lambda e: e.arrive,
    )
    visits = []
    for e in entries:
        if fleet.cancellation(day, e.stop, e.half):
            continue
        stop = fleet.stop(e.stop)
        visits.append(
            contract.PlannedVisit(
                visit=visit_id(day, stop.id, e.half),
                stop=stop.id,
                commune=stop.commune,
                insee=stop.insee,
                lat=stop.lat,
                lon=stop.lon,
                radius_m=stop.radius_m,
                arrive=datetime.combine(day, e.arrive, zone),
                depart=datetime.combine(day, e.depart, zone),
            )
        )
    return contract.Plan(vehicle=vehicle, ts=contract.utcnow(), day=day, visits=visits)
