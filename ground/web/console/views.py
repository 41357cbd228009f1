"""What the console's pages show, worked out from the current tournée: a vehicle's week and
month of visits, the recurring entries in plain French, and the record of changes.

Plain data for the templates: every date and hour already written the French way
(`ground.web.format`), every status already named, so that a page only lays them out."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from babel.dates import format_date

from ground.fleet import DatedVisit, Fleet, TimetableEntry, Vehicle, parse_visit_id, visits_on
from ground.tournee import Change
from ground.web.format import FR, day_label_fr, half_label, hm

STATUS_FR = {"planned": "prévue", "cancelled": "annulée", "moved": "déplacée",
             "added": "ajoutée"}  # fmt: skip
STATUS_EN = {"planned": "planned", "cancelled": "cancelled", "moved": "moved",
             "added": "added"}  # fmt: skip


@dataclass(frozen=True)
class VisitRow:
    """One visit as the coordinator sees it, and what may still be done to it."""

    visit: DatedVisit
    status: str  # planned, cancelled, moved, added
    hours: str  # "08:30–10:30"
    why: str  # the cancellation's or the move's reason
    was: str  # before a move: "prévue lundi 23 novembre, 08:30–10:30"
    over: bool  # it has ended: nothing more to change

    @property
    def status_fr(self) -> str:
        return STATUS_FR[self.status]

    @property
    def status_en(self) -> str:
        return STATUS_EN[self.status]

    @property
    def half_fr(self) -> str:
        return half_label(self.visit.half)

    @property
    def form_id(self) -> str:
        return self.visit.id.replace("/", "-")


@dataclass(frozen=True)
class Day:
    day: date
    label: str  # "lundi 23 novembre"
    off: str | None  # a public holiday or a closure: nothing runs
    visits: list[VisitRow]
    today: bool
    in_month: bool = True  # in a month's grid, the days of the weeks around it are dimmed


@dataclass(frozen=True)
class VehicleDays:
    vehicle: Vehicle
    days: list[Day]

    @property
    def weeks(self) -> list[list[Day]]:
        return [self.days[i:i + 7] for i in range(0, len(self.days), 7)]


def row(v: DatedVisit, zone: tzinfo, now: datetime) -> VisitRow:
    hours = f"{hm(v.arrive, zone)}–{hm(v.depart, zone)}"
    was = ""
    if v.planned_as is not None and v.planned_as != (v.arrive, v.depart):
        arrive, depart = v.planned_as
        was = (f"prévue {day_label_fr(parse_visit_id(v.id)[0])}, "
               f"{hm(arrive, zone)}–{hm(depart, zone)}")  # fmt: skip
    status = ("cancelled" if v.cancelled else "added" if v.entry is None
              else "moved" if v.planned_as is not None else "planned")  # fmt: skip
    why = v.cancelled.reason if v.cancelled else v.note
    return VisitRow(v, status, hours, why, was, v.depart <= now)


def days(fleet: Fleet, vehicle: Vehicle, first: date, count: int, now: datetime,
         month: int | None = None) -> VehicleDays:
    """The vehicle's visits over `count` days from `first`, cancelled ones included."""
    zone, today = fleet.zone, now.astimezone(fleet.zone).date()
    out = []
    for n in range(count):
        d = first + timedelta(days=n)
        out.append(Day(d, day_label_fr(d), fleet.day_off(d),
                       [row(v, zone, now) for v in visits_on(fleet, d, vehicle.id)],
                       d == today, month is None or d.month == month))  # fmt: skip
    return VehicleDays(vehicle, out)


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_label(monday: date) -> str:
    """ "Semaine 48, du lundi 23 au dimanche 29 novembre 2026"."""
    sunday = monday + timedelta(days=6)
    first = format_date(monday, "EEEE d" if monday.month == sunday.month else "EEEE d MMMM",
                        locale=FR)  # fmt: skip
    last = format_date(sunday, "EEEE d MMMM y", locale=FR)
    return f"Semaine {monday.isocalendar().week}, du {first} au {last}"


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def month_grid(year: int, month: int) -> tuple[date, int]:
    """The first Monday of the month's grid and how many days it shows (whole weeks)."""
    first = date(year, month, 1)
    last = date(year, month, calendar.monthrange(year, month)[1])
    start = monday_of(first)
    return start, (monday_of(last) - start).days + 7


def month_label(year: int, month: int) -> str:
    return format_date(date(year, month, 1), "MMMM y", locale=FR).capitalize()


@dataclass(frozen=True)
class EntryRow:
    entry: TimetableEntry
    vehicle: str  # its name
    commune: str
    hours: str
    rule_fr: str  # "un jeudi sur deux (à partir du 26 novembre 2026)"

    @property
    def half_fr(self) -> str:
        return half_label(self.entry.half)

    @property
    def form_id(self) -> str:
        return "entry-" + self.entry.key


def entries(fleet: Fleet) -> list[EntryRow]:
    names = {v.id: v.name for v in fleet.vehicles}
    communes = {s.id: s.commune for s in fleet.stops}
    rows = [EntryRow(e, names[e.vehicle], communes[e.stop],
                     f"{e.arrive:%H:%M}–{e.depart:%H:%M}", e.describe_fr())
            for e in fleet.timetable]  # fmt: skip
    return sorted(rows, key=lambda r: (r.vehicle, r.entry.weekdays and min(r.entry.weekdays),
                                       r.entry.arrive))  # fmt: skip


@dataclass(frozen=True)
class ChangeRow:
    change: Change
    at: str  # "jeudi 3 décembre, 09:12"
    what: str  # "Pervenchères, lundi 23 novembre (après-midi)"


def what_changed(c: Change, fleet: Fleet) -> str:
    """The visit, stop or entry a change is about, in words."""
    communes = {s.id: s.commune for s in fleet.stops}
    body = c.body
    if "visit" in body:
        day, stop, half = parse_visit_id(body["visit"])
        return f"{communes.get(stop, stop)}, {day_label_fr(day)} ({half_label(half)})"
    if c.kind in ("add", "place"):
        day = date.fromisoformat(body.get("day") or body["date"])
        return f"{communes.get(body['stop'], body['stop'])}, {day_label_fr(day)}"
    if c.kind == "entry":
        since = date.fromisoformat(body["from"])
        said = body.get("entry") or {}
        commune = communes.get(said.get("stop", ""), "") or body.get("key") or ""
        return f"{commune}, à partir du {day_label_fr(since)}"
    return f"modification n° {body.get('change')}"


def history(changes: list[Change], fleet: Fleet) -> list[ChangeRow]:
    zone = fleet.zone
    return [ChangeRow(c, f"{day_label_fr(c.at.astimezone(zone).date())}, {hm(c.at, zone)}",
                      what_changed(c, fleet)) for c in changes]  # fmt: skip
