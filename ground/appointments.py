"""The day's bookings, from the booking platform's CSV export to what the bus may know.

The CSV (id, time, last name, first name, birth date) is read in memory, each booking is
placed in the vehicle's visit at that time, and only the booking's id, visit, time and a
keyed digest of the normalised last name and birth date are kept (`contract.Appointments`).
Names and birth dates are never stored on the ground nor sent; see docs/privacy.md.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from ground.fleet import Fleet
from medicobus import contract

EARLY = timedelta(minutes=30)  # a booking this long before a visit opens still belongs to it

# Header names seen in exports, French and English, compared without case or accents.
COLUMNS = {
    "appointment": ("id", "rdv", "id rdv", "appointment", "appointment id", "reference"),
    "time": ("time", "heure", "horaire", "date", "date heure", "datetime", "debut"),
    "last_name": ("last name", "nom", "nom de famille", "surname", "family name"),
    "first_name": ("first name", "prenom", "given name"),
    "birth": ("birth date", "date de naissance", "naissance", "birthdate", "ddn"),
}


class BookingError(ValueError):
    """A CSV that cannot be imported; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Booking:
    appointment: str
    time: datetime
    last_name: str
    birth: date


def read_bookings(path: Path, day: date, fleet: Fleet) -> list[Booking]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")  # spreadsheets on Windows
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=";,\t")
    rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        raise BookingError(f"{path}: empty file")
    columns = _columns(path, rows[0])
    bookings, problems = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            bookings.append(_booking(row, columns, day, fleet))
        except (ValueError, IndexError) as exc:
            problems.append(f"{path}: line {number}: {exc}")
    if problems:
        raise BookingError("\n".join(problems))
    return bookings


def hashed(bookings: list[Booking], fleet: Fleet, vehicle: str, day: date,
           key: bytes) -> contract.Appointments:
    """What the bus receives: each booking placed in its visit, the identity as a digest."""
    visits = fleet.day_visits(vehicle, day)
    items, outside = [], []
    for b in bookings:
        visit = next((v for v in visits if v.arrive - EARLY <= b.time <= v.depart), None)
        if visit is None:
            outside.append(f"{b.appointment} at {b.time:%H:%M}")
            continue
        items.append(contract.BookedAppointment(
            appointment=b.appointment, visit=visit.visit, time=b.time,
            identity=contract.identity_digest(key, day, b.last_name, b.birth),
        ))  # fmt: skip
    if outside:
        raise BookingError(f"no visit of {vehicle} on {day} at the time of: "
                           + ", ".join(outside))
    return contract.Appointments(vehicle=vehicle, ts=contract.utcnow(), day=day, items=items)


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    plain = [contract.normalise_name(h) for h in header]
    found = {}
    for field, names in COLUMNS.items():
        wanted = {contract.normalise_name(n) for n in names}
        index = next((i for i, h in enumerate(plain) if h in wanted), None)
        if index is None and field != "first_name":
            raise BookingError(f"{path}: line 1: no column for {field.replace('_', ' ')} "
                               f"(expected one of: {', '.join(names)})")
        if index is not None:
            found[field] = index
    return found


def _booking(row: list[str], columns: dict[str, int], day: date, fleet: Fleet) -> Booking:
    appointment = row[columns["appointment"]].strip()
    if not appointment or len(appointment) > 64:
        raise ValueError(f"appointment id {appointment!r} is empty or longer than 64")
    last_name = row[columns["last_name"]].strip()
    if not contract.normalise_name(last_name):
        raise ValueError("no last name")
    return Booking(appointment, _time(row[columns["time"]], day, fleet),
                   last_name, _birth(row[columns["birth"]]))


def _time(text: str, day: date, fleet: Fleet) -> datetime:
    text = text.strip().replace("h", ":").replace("H", ":")
    for fmt in ("%H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if fmt == "%H:%M":
            return datetime.combine(day, time(parsed.hour, parsed.minute), fleet.zone)
        if parsed.date() != day:
            raise ValueError(f"appointment on {parsed.date()}, not on {day}")
        return parsed.replace(tzinfo=fleet.zone)
    raise ValueError(f"time {text!r} is not HH:MM or a date and time")


def _birth(text: str) -> date:
    text = text.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"birth date {text!r} is not DD/MM/YYYY")
