"""Maintenance reminders: each vehicle's items (oil change, contrôle technique, the fridge
probe's calibration, the extinguisher), each with its interval by distance, engine hours or
time; what is due soon or overdue, which the alert rules of kind "maintenance" raise (and
the notifier sends); done recorded with who and when, which restarts the interval.

Items come from the ground config (`[[maintenance]]`); the fleet manager changes their
intervals and records what was done in the dashboard, kept here in the ground database.
Distance is the OBD odometer when the vehicle reports one (`engine.odometer_km`), else the
distance driven by GPS (the positions, as the reports count it); engine hours are the time
the engine turned (`engine.rpm` above zero, each sample standing for at most two minutes).
Both are counted once from the item's last time done, then only what arrived since."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ground.fleet import Fleet, Slug
from ground.reports.activity import driven
from ground.store import Store
from medicobus.clock import Clock
from medicobus.storage import Database, Migrations, open_database, run_script, write_transaction

migrations = Migrations("ground_maintenance")
RPM_HOLD = timedelta(minutes=2)  # an rpm sample stands for the engine's state this long
FRESH = timedelta(minutes=1)  # the alerts ask at every batch; days and km move slower
State = Literal["ok", "soon", "overdue", "unknown"]
Fix = tuple[str, float, float, float | None, float | None]  # as Store.positions_between


@migrations()
def m001_maintenance(db: Database) -> None:
    run_script(db, """
CREATE TABLE IF NOT EXISTS maintenance_intervals (
    vehicle TEXT NOT NULL, item TEXT NOT NULL, every_km REAL, every_hours REAL,
    every_days INTEGER, who TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (vehicle, item));
CREATE TABLE IF NOT EXISTS maintenance_done (
    id INTEGER PRIMARY KEY AUTOINCREMENT, vehicle TEXT NOT NULL, item TEXT NOT NULL,
    done_on TEXT NOT NULL, odometer_km REAL, who TEXT NOT NULL, at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '');""")


Positive = Annotated[float, Field(gt=0, le=10_000_000)]


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    every_km: Positive | None = None
    every_hours: Positive | None = None
    every_days: Annotated[int, Field(gt=0, le=3650)] | None = None

    @model_validator(mode="after")
    def _some(self) -> Interval:
        if self.every_km is None and self.every_hours is None and self.every_days is None:
            raise ValueError("give every_km, every_hours or every_days (one at least)")
        return self


class MaintenanceItem(Interval):
    """One item of the config's `[[maintenance]]`."""

    id: Slug
    name_fr: Annotated[str, Field(min_length=1, max_length=80)]
    name_en: Annotated[str, Field(min_length=1, max_length=80)]
    vehicles: list[str] = []  # none: every vehicle of the fleet
    last_done: date | None = None  # before the ground kept the record; none: to be said
    # "Due soon" this much ahead of the limit, in each unit the item is counted in.
    soon_km: Annotated[float, Field(ge=0)] = 1000
    soon_hours: Annotated[float, Field(ge=0)] = 20
    soon_days: Annotated[int, Field(ge=0)] = 30


DEFAULT_ITEMS = [
    MaintenanceItem(id="vidange", name_fr="vidange", name_en="oil change", every_km=15000,
                    every_days=365),
    MaintenanceItem(id="controle-technique", name_fr="contrôle technique",
                    name_en="roadworthiness test", every_days=365),
    MaintenanceItem(id="sonde-frigo", name_fr="étalonnage de la sonde du réfrigérateur",
                    name_en="fridge probe calibration", every_days=365),
    MaintenanceItem(id="extincteur", name_fr="vérification de l'extincteur",
                    name_en="fire extinguisher check", every_days=365),
]  # fmt: skip


@dataclass(frozen=True)
class Done:
    on: date
    odometer_km: float | None
    who: str
    note: str


@dataclass(frozen=True)
class Due:
    """Where one item of one vehicle stands now."""

    vehicle: str
    item: MaintenanceItem
    interval: Interval  # the config's, or the dashboard's change of it
    last: Done | None
    km: float | None  # used since last done
    hours: float | None
    days: int | None
    state: State

    @property
    def key(self) -> str:
        return self.item.id

    @property
    def title_fr(self) -> str:
        return f"{self.item.name_fr} ({self.left_fr()})"

    @property
    def title_en(self) -> str:
        return self.item.name_en

    def left_fr(self) -> str:
        """ "dans 320 km", "en retard de 12 jours": what is closest to the limit."""
        parts = []
        for used, every, unit in ((self.km, self.interval.every_km, "km"),
                                  (self.hours, self.interval.every_hours, "h"),
                                  (self.days, self.interval.every_days, "jours")):  # fmt: skip
            if used is not None and every is not None:
                left = every - used
                parts.append((left / every, left, unit))
        if not parts:
            return "date du dernier entretien à renseigner"
        _, left, unit = min(parts)
        amount = f"{abs(left):,.0f}".replace(",", "\u202f")
        return f"dans {amount} {unit}" if left > 0 else f"en retard de {amount} {unit}"


def state_of(interval: Interval, item: MaintenanceItem, km: float | None,
             hours: float | None, days: int | None) -> State:
    checks = [(used, every, soon) for used, every, soon in (
        (km, interval.every_km, item.soon_km), (hours, interval.every_hours, item.soon_hours),
        (days, interval.every_days, item.soon_days)) if used is not None and every is not None]
    if not checks:
        return "unknown"
    if any(used >= every for used, every, _ in checks):
        return "overdue"
    if any(used >= every - soon for used, every, soon in checks):
        return "soon"
    return "ok"


class Refused(ValueError):
    """A maintenance form that cannot be kept: which field, and why in French."""

    def __init__(self, field: str, fr: str) -> None:
        super().__init__(f"{field}: {fr}")
        self.field, self.fr = field, fr


class MaintenanceBook:
    """The items of each vehicle, what was done, and where each stands now."""

    def __init__(self, items: list[MaintenanceItem], fleet: Fleet, store: Store,
                 database: Path | str, clock: Clock) -> None:
        self.items = items
        self.fleet = fleet
        self.store = store
        self.clock = clock
        self.db = open_database(database, migrations, synchronous="FULL")
        self._lock = threading.Lock()
        # (vehicle, counted from) -> (counted until, km, engine hours): what was read
        # already, so that a year of positions is read once, not at every judgment.
        self._usage: dict[tuple[str, datetime], tuple[datetime, float, float, list[Fix]]] = {}
        self._fresh: dict[str, tuple[datetime, list[Due]]] = {}  # by vehicle, until changed

    def close(self) -> None:
        self.db.close()

    def items_of(self, vehicle: str) -> list[MaintenanceItem]:
        return [i for i in self.items if not i.vehicles or vehicle in i.vehicles]

    def item(self, vehicle: str, item_id: str) -> MaintenanceItem:
        for i in self.items_of(vehicle):
            if i.id == item_id:
                return i
        raise Refused("item", "élément d'entretien inconnu pour ce véhicule")

    # -- what the dashboard records --------------------------------------------------------

    def record_done(self, vehicle: str, item_id: str, on: date, odometer_km: float | None,
                    who: str, note: str = "") -> None:
        self.item(vehicle, item_id)
        today = self.clock.now().astimezone(self.fleet.zone).date()
        if on > today:
            raise Refused("on", "cette date est dans le futur")
        if odometer_km is not None and not 0 <= odometer_km <= 10_000_000:
            raise Refused("odometer_km", "kilométrage invalide")
        with self._lock, write_transaction(self.db):
            self.db.execute(
                "INSERT INTO maintenance_done (vehicle, item, done_on, odometer_km, who, at, "
                "note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [vehicle, item_id, on.isoformat(), odometer_km, who,
                 self.clock.now().isoformat(), note.strip()[:200]])  # fmt: skip
            self._fresh.pop(vehicle, None)

    def set_interval(self, vehicle: str, item_id: str, interval: Interval, who: str) -> None:
        self.item(vehicle, item_id)
        with self._lock, write_transaction(self.db):
            self.db.execute(
                "INSERT INTO maintenance_intervals VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(vehicle, item) DO UPDATE SET every_km = excluded.every_km, every_hours = "
                "excluded.every_hours, every_days = excluded.every_days, who = excluded.who, "
                "at = excluded.at",
                [vehicle, item_id, interval.every_km, interval.every_hours,
                 interval.every_days, who, self.clock.now().isoformat()])  # fmt: skip
            self._fresh.pop(vehicle, None)

    def history(self, vehicle: str, item_id: str) -> list[Done]:
        rows = self.db.execute(
            "SELECT done_on, odometer_km, who, note FROM maintenance_done WHERE vehicle = ? "
            "AND item = ? ORDER BY done_on DESC, id DESC", [vehicle, item_id]).fetchall()
        return [Done(date.fromisoformat(on), km, who, note) for on, km, who, note in rows]

    # -- where things stand ---------------------------------------------------------------------

    def due(self, vehicle: str) -> list[Due]:
        """Every item of the vehicle, now (as worked out within the last minute)."""
        now = self.clock.now()
        with self._lock:
            at, found = self._fresh.get(vehicle, (None, []))
        if at is not None and timedelta(0) <= now - at < FRESH:
            return found
        found = [self._due(vehicle, item, now) for item in self.items_of(vehicle)]
        with self._lock:
            self._fresh[vehicle] = (now, found)
        return found

    def _interval(self, vehicle: str, item: MaintenanceItem) -> Interval:
        row = self.db.execute("SELECT every_km, every_hours, every_days FROM "
                              "maintenance_intervals WHERE vehicle = ? AND item = ?",
                              [vehicle, item.id]).fetchone()  # fmt: skip
        if row is None:
            return Interval(every_km=item.every_km, every_hours=item.every_hours,
                            every_days=item.every_days)  # fmt: skip
        return Interval(every_km=row[0], every_hours=row[1], every_days=row[2])

    def _due(self, vehicle: str, item: MaintenanceItem, now: datetime) -> Due:
        interval = self._interval(vehicle, item)
        history = self.history(vehicle, item.id)
        last = history[0] if history else (
            Done(item.last_done, None, "", "") if item.last_done else None)  # fmt: skip
        if last is None:
            return Due(vehicle, item, interval, None, None, None, None, "unknown")
        zone = self.fleet.zone
        days = (now.astimezone(zone).date() - last.on).days
        since = datetime.combine(last.on, time(0), zone)
        km, hours = self._used(vehicle, since, now)
        odometer = self._odometer(vehicle)
        if last.odometer_km is not None and odometer is not None:
            km = max(0.0, odometer - last.odometer_km)  # the vehicle's own count, when it has one
        return Due(vehicle, item, interval, last, km, hours, days,
                   state_of(interval, item, km, hours, days))

    def _odometer(self, vehicle: str) -> float | None:
        """The vehicle's odometer as last reported (its last sample before now)."""
        now = self.clock.now()
        last = self.store.series_between(vehicle, "engine", "odometer_km", now, now)
        return last[-1][1] if last else None

    def _used(self, vehicle: str, since: datetime, now: datetime) -> tuple[float, float]:
        """Km driven (GPS) and engine hours from `since` to `now`, counted on from what was
        read before (the last fix read carried over, so no stretch is lost between reads)."""
        with self._lock:
            until, km, hours, last = self._usage.get((vehicle, since), (since, 0.0, 0.0, []))
        if now > until:
            fixes = self.store.positions_between(vehicle, until, now)
            km += driven([*last, *fixes])[0]
            hours += _engine_hours(self.store.series_between(vehicle, "engine", "rpm",
                                                             until, now), until, now)
            with self._lock:
                self._usage[(vehicle, since)] = (now, km, hours, (fixes or last)[-1:])
        return km, hours


def _engine_hours(rpm: list[tuple[datetime, float | None]], since: datetime,
                  until: datetime) -> float:
    """Hours the engine turned between `since` and `until`: each sample with rpm > 0 stands
    until the next one, at most RPM_HOLD (the first may be from before `since`)."""
    seconds = 0.0
    for (ts, value), (following, _) in pairwise([*rpm, (until, None)]):
        if value is None or value <= 0:
            continue
        start, end = max(ts, since), min(following, ts + RPM_HOLD, until)
        seconds += max(0.0, (end - start).total_seconds())
    return seconds / 3600
