"""The tournée as the coordinator runs it: the fleet file's timetable plus the changes made
in the console (cancel a visit, move it, add one, park elsewhere for a day, edit or add or
remove a recurring entry, undo an earlier change).

Each change is checked against the tournée it would make before anything is kept (a visit
in the past, two visits of a bus at once, a day off, an unknown stop: refused, with the
form field and a French message); a kept change is a row in the ground database, with who
made it, when and why, and the new tournée is handed to the listeners (the pages, the
buses' plans, the mairies) with the visits it changed. Nothing is half-applied: the row and
the swap happen together, or neither does.

The fleet file stays the base: once the console has been used, the tournée is the file
plus the changes kept here (`docs/tournee.md`), and `export_toml` writes the whole of it
back as a fleet file, to keep in git.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import ValidationError

from ground.fleet import (
    DAY_LABELS_FR,
    Addition,
    Cancellation,
    DatedVisit,
    Fleet,
    Move,
    PlaceChange,
    TimetableEntry,
    first_clash,
    parse_visit_id,
    visit_id,
    visits_on,
)
from ground.recurrence import date_fr
from medicobus.clock import Clock
from medicobus.storage import Database, Migrations, open_database, run_script, write_transaction

log = logging.getLogger(__name__)

Kind = Literal["cancel", "move", "add", "place", "entry", "undo"]
KIND_FR = {"cancel": "annulation", "move": "déplacement", "add": "visite ajoutée",
           "place": "autre stationnement", "entry": "visite régulière modifiée",
           "undo": "modification annulée"}  # fmt: skip
REASON_MAX = 200
AHEAD_DAYS = 14  # the visits a recurring entry's change is compared over: the pages' horizon

migrations = Migrations("ground_tournee")


@migrations()
def m001_tournee_changes(db: Database) -> None:
    run_script(db, """
CREATE TABLE IF NOT EXISTS tournee_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, body TEXT NOT NULL,
    who TEXT NOT NULL, at TEXT NOT NULL, reason TEXT NOT NULL,
    undone_by INTEGER REFERENCES tournee_changes(id));""")


class Refused(ValueError):
    """A change that cannot be made: which form field, and why (French, then English)."""

    def __init__(self, field: str, fr: str, en: str) -> None:
        super().__init__(f"{field}: {fr} / {en}")
        self.field, self.fr, self.en = field, fr, en


@dataclass(frozen=True)
class Change:
    id: int
    kind: Kind
    body: dict[str, Any]
    who: str
    at: datetime
    reason: str
    undone_by: int | None = None

    @property
    def kind_fr(self) -> str:
        return KIND_FR[self.kind]


@dataclass(frozen=True)
class Difference:
    """One visit as a change found it and left it (None: not there)."""

    visit: str
    before: DatedVisit | None
    after: DatedVisit | None

    @property
    def kind(self) -> str:
        """cancelled, restored, moved, added or removed."""
        b, a = self.before, self.after
        if a is None or (b is not None and b.cancelled is None and a.cancelled is not None):
            return "cancelled" if a is not None else "removed"
        if b is None or (b.cancelled is not None and a.cancelled is None):
            return "added" if b is None else "restored"
        return "moved"

    @property
    def shown(self) -> DatedVisit:
        found = self.after or self.before
        assert found is not None
        return found


@dataclass(frozen=True)
class Changed:
    change: Change
    fleet: Fleet
    differences: list[Difference]

    @property
    def communes(self) -> frozenset[str]:
        return frozenset(d.shown.stop.insee for d in self.differences)

    @property
    def vehicles(self) -> frozenset[str]:
        return frozenset(d.shown.vehicle for d in self.differences)

    @property
    def days(self) -> frozenset[date]:
        return frozenset(v.day for d in self.differences for v in (d.before, d.after) if v)


Listener = Callable[[Changed], object]  # what it returns is not looked at


# -- folding changes into a fleet -----------------------------------------------------------


def _fold(fleet: Fleet, kind: Kind, body: dict[str, Any]) -> Fleet:
    """The fleet with one change applied (checked by the models, not against the day)."""
    if kind == "cancel":
        day, stop, half = parse_visit_id(body["visit"])
        item = Cancellation(date=day, stop=stop, half=half, reason=body["reason"])  # type: ignore[arg-type]
        return fleet.model_copy(update={"cancellations": [*fleet.cancellations, item]})
    if kind == "move":
        return fleet.model_copy(update={"moves": [*fleet.moves, Move(**body)]})
    if kind == "add":
        return fleet.model_copy(update={"additions": [*fleet.additions, Addition(**body)]})
    if kind == "place":
        return fleet.model_copy(update={"places": [*fleet.places, PlaceChange(**body)]})
    if kind == "entry":  # from a date on: the old entry ends the day before
        since = _as_date(body["from"])
        old = fleet.entry(body["key"]) if body.get("key") else None
        kept = [e for e in fleet.timetable if old is None or e.key != old.key]
        if old is not None and (old.start is None or old.start < since):
            last = min(old.end or since, since - timedelta(days=1))
            kept.append(old.model_copy(update={"id": old.key, "end": last}))
        if body.get("entry") is not None:
            new = TimetableEntry(**body["entry"])
            kept.append(new.model_copy(update={"start": max(new.start or since, since)}))
        return fleet.model_copy(update={"timetable": kept})
    raise ValueError(f"unknown change {kind!r}")


def _build(base: Fleet, changes: Iterable[Change]) -> Fleet:
    fleet = base
    for c in changes:
        if c.kind == "undo" or c.undone_by is not None:
            continue
        try:
            fleet = _fold(fleet, c.kind, c.body)
        except (ValueError, KeyError, TypeError) as exc:
            # The fleet file changed under it (a stop removed...): left out, and said.
            log.error("tournée change #%d (%s) no longer applies: %s", c.id, c.kind, exc)
    return fleet


def find_visit(fleet: Fleet, visit: str) -> DatedVisit | None:
    """The visit `visit` where it is held (its planned date, or the date it moved to)."""
    day = parse_visit_id(visit)[0]
    move = fleet._index.moves.get(visit)
    on = move.day if move is not None and move.day is not None else day
    return next((v for v in visits_on(fleet, on) if v.id == visit), None)


def clash_on(fleet: Fleet, vehicle: str, day: date) -> tuple[DatedVisit, DatedVisit] | None:
    held = [v for v in visits_on(fleet, day, vehicle) if v.cancelled is None]
    held.sort(key=lambda v: v.arrive)
    return next(((a, b) for a, b in zip(held, held[1:], strict=False) if b.arrive < a.depart),
                None)  # fmt: skip


def differences(before: Fleet, after: Fleet, days: Iterable[date]) -> list[Difference]:
    found: list[Difference] = []
    for day in sorted(set(days)):
        old = {v.id: v for v in visits_on(before, day)}
        new = {v.id: v for v in visits_on(after, day)}
        for vid in sorted(old.keys() | new.keys()):
            b, a = old.get(vid), new.get(vid)
            if b is None or a is None or _seen(b) != _seen(a):
                found.append(Difference(vid, b, a))
    # A visit moved to another day is gone from one and new on the other: one difference.
    merged: dict[str, Difference] = {}
    for d in found:
        other = merged.get(d.visit)
        merged[d.visit] = d if other is None else Difference(d.visit, other.before or d.before,
                                                             d.after or other.after)
    return [d for d in merged.values() if d.before is None or d.after is None
            or _seen(d.before) != _seen(d.after)]


def _seen(v: DatedVisit) -> tuple[object, ...]:
    """What a person sees of a visit: when, where, whether it is held."""
    return (v.arrive, v.depart, v.stop.place, v.stop.lat, v.stop.lon, v.cancelled is None,
            v.cancelled.reason if v.cancelled else "", v.note)


# -- the tournée and its changes ------------------------------------------------------------


class Tournee:
    """The current tournée (`fleet`), its changes, and who hears of them."""

    def __init__(self, base: Fleet, database: Path | str, clock: Clock) -> None:
        self.base = base
        self.clock = clock
        self.db = open_database(database, migrations, synchronous="FULL")
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._changes = self._load()
        self.fleet = _build(base, self._changes)

    def close(self) -> None:
        self.db.close()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def history(self, limit: int = 200) -> list[Change]:
        """The latest changes first."""
        with self._lock:
            return list(reversed(self._changes))[:limit]

    def _load(self) -> list[Change]:
        rows = self.db.execute(
            "SELECT id, kind, body, who, at, reason, undone_by FROM tournee_changes ORDER BY id"
        ).fetchall()
        return [Change(id, kind, json.loads(body), who, datetime.fromisoformat(at), reason,
                       undone_by) for id, kind, body, who, at, reason, undone_by in rows]

    # -- what the console does -------------------------------------------------------------

    def cancel(self, visit: str, reason: str, who: str) -> Changed | None:
        return self._make("cancel", {"visit": _visit(visit), "reason": _reason(reason)},
                          reason, who)  # fmt: skip

    def move(self, visit: str, reason: str, who: str, *, day: date | None = None,
             arrive: time | None = None, depart: time | None = None,
             place: str | None = None, lat: float | None = None,
             lon: float | None = None) -> Changed | None:  # fmt: skip
        body = {"visit": _visit(visit), "day": day, "arrive": arrive, "depart": depart,
                "place": place or None, "lat": lat, "lon": lon, "reason": _reason(reason)}
        return self._make("move", body, reason, who)

    def add(self, vehicle: str, stop: str, day: date, half: str, arrive: time, depart: time,
            reason: str, who: str) -> Changed | None:  # fmt: skip
        body = {"vehicle": vehicle, "stop": stop, "day": day, "half": half, "arrive": arrive,
                "depart": depart, "reason": _reason(reason)}
        return self._make("add", body, reason, who)

    def park(self, stop: str, day: date, place: str, lat: float, lon: float, reason: str,
             who: str) -> Changed | None:  # fmt: skip
        body = {"stop": stop, "date": day, "place": place, "lat": lat, "lon": lon,
                "reason": _reason(reason)}
        return self._make("place", body, reason, who)

    def edit_entry(self, key: str | None, entry: dict[str, Any] | None, since: date,
                   reason: str, who: str) -> Changed | None:  # fmt: skip
        """From `since` on, the recurring entry `key` becomes `entry` (None: it ends; no
        key: a new one). What came before stays as it was, for the record."""
        if key is not None and self.fleet.entry(key) is None:
            raise Refused("entry", "visite régulière inconnue", "unknown recurring entry")
        if entry is not None:
            entry = {k: v for k, v in entry.items() if v not in (None, "")}
            entry["id"] = _new_key(self.fleet, entry)
        body = {"key": key, "entry": entry, "from": since}
        return self._make("entry", body, _reason(reason), who)

    def undo(self, change_id: int, reason: str, who: str) -> Changed | None:
        with self._lock:
            target = next((c for c in self._changes if c.id == change_id), None)
            if target is None or target.kind == "undo":
                raise Refused("change", "modification inconnue", "unknown change")
            if target.undone_by is not None:
                return None  # undone already: nothing new
        return self._make("undo", {"change": change_id}, _reason(reason), who)

    # -- keeping one ---------------------------------------------------------------------

    def _make(self, kind: Kind, body: dict[str, Any], reason: str, who: str) -> Changed | None:
        """Check, keep and announce one change; None if it changes nothing (saved twice)."""
        with self._lock:
            before = self.fleet
            now = self.clock.now()
            known(kind, body, before)
            if kind == "undo":
                undone = body["change"]
                after = _build(self.base, [c for c in self._changes if c.id != undone])
                target = next(c for c in self._changes if c.id == undone)
                days = _days_of(before, target.kind, target.body, now)
            else:
                try:
                    after = _fold(before, kind, body)
                except ValidationError as exc:
                    raise refusal(exc) from None
                days = _days_of(before, kind, body, now) | _days_of(after, kind, body, now)
            found = differences(before, after, days)
            if not found and (kind != "entry" or after.timetable == before.timetable):
                return None  # the same change saved twice: nothing to keep or tell
            check(kind, body, before, after, found, now)
            stored = _jsonable(body)
            with write_transaction(self.db):  # the row and the undo mark together
                cursor = self.db.execute(
                    "INSERT INTO tournee_changes (kind, body, who, at, reason) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [kind, json.dumps(stored, ensure_ascii=False), who, now.isoformat(),
                     reason.strip()])  # fmt: skip
                change = Change(int(cursor.lastrowid or 0), kind, stored, who, now,
                                reason.strip())
                if kind == "undo":
                    self.db.execute("UPDATE tournee_changes SET undone_by = ? WHERE id = ?",
                                    [change.id, body["change"]])
            self._changes = [c if kind != "undo" or c.id != body["change"]
                             else Change(c.id, c.kind, c.body, c.who, c.at, c.reason, change.id)
                             for c in self._changes] + [change]  # fmt: skip
            self.fleet = after
            changed = Changed(change, after, found)
        log.info("tournée: %s by %s (#%d): %d visits changed", kind, who, change.id, len(found))
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:  # a page or a mairie's mail must not undo a kept change
                log.exception("a tournée listener failed")
        return changed


def _days_of(fleet: Fleet, kind: Kind, body: dict[str, Any], now: datetime) -> set[date]:
    """The dates a change can alter: its visit's, its target's; a recurring entry's, the
    next fortnight (what the pages show)."""
    if kind in ("cancel", "move"):
        held = find_visit(fleet, body["visit"])
        days = {parse_visit_id(body["visit"])[0]}
        days |= {held.day} if held else set()
        return days | ({_as_date(body["day"])} if body.get("day") else set())
    if kind in ("add", "place"):
        return {_as_date(body.get("day") or body["date"])}
    since = _as_date(body["from"])
    last = now.astimezone(fleet.zone).date() + timedelta(days=AHEAD_DAYS)
    return {since + timedelta(days=n) for n in range(max(0, (last - since).days) + 1)}


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def known(kind: Kind, body: dict[str, Any], fleet: Fleet) -> None:
    """Refuse a change naming a visit, stop or vehicle the tournée does not have."""
    if kind in ("cancel", "move") and find_visit(fleet, body["visit"]) is None:
        raise Refused("visit", "cette visite n'est pas au planning",
                      "no such visit in the timetable")
    said = body.get("entry") if kind == "entry" else body
    if kind in ("add", "place", "entry") and said and (
            said.get("stop") not in {s.id for s in fleet.stops}):  # fmt: skip
        raise Refused("stop", "arrêt inconnu", "unknown stop")
    if kind in ("add", "entry") and said and (
            said.get("vehicle") not in {v.id for v in fleet.vehicles}):  # fmt: skip
        raise Refused("vehicle", "véhicule inconnu", "unknown vehicle")


def check(kind: Kind, body: dict[str, Any], before: Fleet, after: Fleet,
          found: list[Difference], now: datetime) -> None:  # fmt: skip
    """Refuse what the coordinator cannot mean: raise Refused (field, French, English)."""
    today = now.astimezone(before.zone).date()
    if kind in ("cancel", "move"):
        held = find_visit(before, body["visit"])
        assert held is not None  # refused before
        if held.depart <= now:
            raise Refused("visit", "cette visite est passée", "this visit is over")
        if kind == "cancel" and held.cancelled is not None:
            raise Refused("visit", f"déjà annulée ({held.cancelled.reason})",
                          "already cancelled")
    if kind in ("move", "add", "place"):
        day = _as_date(body.get("day") or body.get("date") or parse_visit_id(body["visit"])[0])
        if day < today:
            raise Refused("day", "cette date est passée", "this date is past")
        off = before.day_off(day) if kind != "place" else None
        if off is not None:
            raise Refused("day", f"le {date_fr(day)} est un jour sans tournée : {off}",
                          f"no tournée that day: {off}")
    if kind == "add":
        vid = visit_id(_as_date(body["day"]), body["stop"], body["half"])
        if any(v.id == vid for v in visits_on(before, _as_date(body["day"]))):
            raise Refused("half", "une visite de ce créneau existe déjà : rétablissez-la ou "
                          "déplacez-la", "a visit of that half-day exists already")
    for d in found:
        a = d.after
        if a is not None and a.cancelled is None and a.arrive <= now and (
                d.before is None or (d.before.arrive, d.before.depart) != (a.arrive, a.depart)):
            raise Refused("arrive", "cette heure est passée", "this time is past")
    for vehicle, day in {(v.vehicle, v.day) for d in found for v in (d.after,) if v}:
        clash = clash_on(after, vehicle, day)
        if clash is not None:
            a, b = clash
            raise Refused("arrive", f"le véhicule a déjà une visite à ce moment-là : "
                          f"{a.stop.commune} et {b.stop.commune}, {DAY_LABELS_FR[day.weekday()]} "
                          f"{date_fr(day)}", "the vehicle has another visit at that time")
    if kind == "entry":
        if _as_date(body["from"]) < today:
            raise Refused("from", "cette date est passée", "this date is past")
        clash_of = first_clash(after.timetable)
        if clash_of is not None:
            a_entry, b_entry, day = clash_of
            raise Refused("arrive", f"deux visites à la fois le {date_fr(day)} ({a_entry.stop}"
                          f" et {b_entry.stop})", "two visits at once")


def refusal(exc: ValidationError, skip: Iterable[str] = ()) -> Refused:
    """The first problem pydantic found, as a Refused naming its field (the last part of
    its location but those in `skip`), in French where the kind of problem is known."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"] if str(p) not in skip]
    message = err["msg"].removeprefix("Value error, ")
    # A check of the whole entry names its field first: "rrule: règle … / rule …".
    named = _NAMED.match(message) if not loc or loc[-1] in ("entry", "timetable") else None
    if named:
        fr, _, en = named["said"].partition(" / ")
        return Refused(named["field"], fr, en or fr)
    return Refused(loc[-1] if loc else "form", _FR.get(err["type"], message), message)


_NAMED = re.compile(r"^(?P<field>rrule|anchor|start|end|day|depart|arrive): (?P<said>.+)$", re.S)


_FR = {"time_parsing": "heure invalide (HH:MM)", "date_parsing": "date invalide (AAAA-MM-JJ)",
       "date_from_datetime_parsing": "date invalide (AAAA-MM-JJ)", "missing": "à remplir",
       "literal_error": "valeur inconnue", "float_parsing": "nombre attendu",
       "int_parsing": "nombre entier attendu", "string_too_long": "texte trop long",
       "less_than_equal": "valeur trop grande", "greater_than_equal": "valeur trop petite",
       "union_tag_invalid": "type de modification inconnu",
       "extra_forbidden": "champ inconnu"}  # fmt: skip


def _visit(visit: str) -> str:
    try:
        parse_visit_id(visit)
    except ValueError:
        raise Refused("visit", "visite inconnue", "unknown visit") from None
    return visit


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _reason(reason: str) -> str:
    reason = _CONTROL.sub(" ", reason).strip()
    if not reason:
        raise Refused("reason", "dites pourquoi (le motif est montré aux mairies)",
                      "say why (the reason is shown to the mairies)")
    if len(reason) > REASON_MAX:
        raise Refused("reason", f"motif trop long ({REASON_MAX} caractères au plus)",
                      "reason too long")
    return reason


def _new_key(fleet: Fleet, entry: dict[str, Any]) -> str:
    stem = re.sub(r"[^a-z0-9-]", "-", f"{entry.get('stop', 'visite')}-{entry.get('half', '')}")
    n = 1
    while fleet.entry(f"{stem}-{n}") is not None:
        n += 1
    return f"{stem}-{n}"[:63]


def _jsonable(body: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, date | time):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in body.items()}


# -- back to a file -------------------------------------------------------------------------


def export_toml(fleet: Fleet) -> str:
    """The tournée as a fleet file (the file's timetable with the console's changes), which
    `load_fleet` reads back to the same visits."""
    data = fleet.model_dump(mode="python", by_alias=True, exclude_defaults=True)
    for entry in data.get("timetable", []):
        if "day" in entry:
            entry["day"] = DAY_LABELS_FR[entry["day"]]
    for field in ("timetable", "cancellations", "moves", "additions"):
        for item in data.get(field, []):
            if "half" in item:
                item["half"] = {"am": "matin", "pm": "après-midi", "day": "journée"}[item["half"]]
    head = ("# Exported by medicobus from the fleet file and the coordinator's changes.\n"
            "# It loads as a fleet file of its own (medicobus ground --check --fleet FILE).\n")
    return head + tomli_w.dumps(data)
