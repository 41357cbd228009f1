"""The ground's SQLite store (sqlite-utils): what the buses sent, and what was set aside.

Each message is stored once, keyed by its id, so a message delivered twice (a resend after
a lost acknowledgement, a backlog drained after live data) is recognised and skipped.

Dead letters (what was set aside) are bounded: kept `keep_days`, and at most `max_rows`
and `max_mb` of payloads, the oldest purged first, after each batch that adds some and
once a day. A bus sending garbage cannot fill the disk.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from medicobus import contract
from medicobus.clock import Clock, SystemClock
from medicobus.storage import (
    SET_ASIDE,
    Database,
    Migrations,
    open_database,
    run_script,
    set_aside,
    write_transaction,
)

log = logging.getLogger(__name__)

Message = (contract.Position | contract.VisitEvent | contract.Status | contract.TicketEvent
           | contract.QueueState | contract.Reading | contract.VisitSummary)  # fmt: skip
T = TypeVar("T")



class StoreUnavailable(Exception):
    """The database cannot take writes now (locked, disk full, I/O error): try again later.
    Any other error while storing is about the data itself."""


class DeadLetter(NamedTuple):
    """A message that could not be used, kept with why."""

    topic: str
    payload: bytes
    error: str
    received: datetime


class DeadLetterLimits(BaseModel):
    """How much of what was set aside is kept (`[dead_letters]` in the ground's config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    max_rows: Annotated[int, Field(ge=1)] = 10_000
    max_mb: Annotated[float, Field(gt=0)] = 50.0  # of payloads


class DeadLetterCounts(NamedTuple):
    kept: int
    kept_bytes: int
    purged: int  # since the database was made


# The store's tables; the alerts keep theirs in the same file under a set of their own.
migrations = Migrations("ground_store")


@migrations()
def m001_messages_samples_appointments_dead_letters(db: Database) -> None:
    run_script(db, """
CREATE TABLE IF NOT EXISTS positions (
    id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, ts TEXT NOT NULL, lat REAL NOT NULL,
    lon REAL NOT NULL, speed REAL, heading REAL, acc REAL, received TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS positions_vehicle_ts ON positions(vehicle, ts);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, ts TEXT NOT NULL, event TEXT NOT NULL,
    visit TEXT NOT NULL, stop TEXT NOT NULL, lat REAL, lon REAL, received TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_vehicle_ts ON events(vehicle, ts);
CREATE TABLE IF NOT EXISTS statuses (
    id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, ts TEXT NOT NULL, state TEXT NOT NULL,
    reason TEXT, received TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, ts TEXT NOT NULL, visit TEXT NOT NULL,
    ticket INTEGER NOT NULL, appointment TEXT, event TEXT NOT NULL, received TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tickets_visit ON tickets(visit, ticket);
CREATE TABLE IF NOT EXISTS queue_states (
    id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, ts TEXT NOT NULL, visit TEXT NOT NULL,
    open INTEGER NOT NULL, paused INTEGER NOT NULL, waiting INTEGER NOT NULL,
    in_consultation INTEGER NOT NULL, booked_remaining INTEGER NOT NULL, last_booked TEXT,
    consult_min REAL NOT NULL, wait_min INTEGER NOT NULL, received TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS queue_states_visit ON queue_states(visit, ts);
CREATE TABLE IF NOT EXISTS readings (
    id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, ts TEXT NOT NULL, sensor TEXT NOT NULL,
    [values] TEXT NOT NULL, flags TEXT NOT NULL, codes TEXT, received TEXT NOT NULL);
-- One row per quantity of each reading, for charts, exports and alerts; flagged values
-- (impossible, NaN...) keep their flag and no value: never stored as truth.
CREATE TABLE IF NOT EXISTS samples (
    vehicle TEXT NOT NULL, sensor TEXT NOT NULL, quantity TEXT NOT NULL, ts TEXT NOT NULL,
    value REAL, flag TEXT, reading TEXT NOT NULL, PRIMARY KEY (reading, quantity));
CREATE INDEX IF NOT EXISTS samples_series ON samples(vehicle, sensor, quantity, ts);
CREATE TABLE IF NOT EXISTS appointment_sets (
    vehicle TEXT NOT NULL, day TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (vehicle, day));
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, received TEXT NOT NULL, topic TEXT NOT NULL,
    error TEXT NOT NULL, size INTEGER NOT NULL, payload BLOB);
""")

@migrations()
def m002_set_aside_times_out_of_bounds(db: Database) -> None:
    """Before the ground judged times on arrival (ground/timebounds.py), a message dated far
    from its receipt (year 9999, a Pi's clock decades off) could be stored, and every
    restart replayed it into the pages and alerts. Such rows become dead letters once, with
    their content; the bound here is fixed and wide (a day ahead, ten years behind) since a
    migration cannot read the configuration."""
    out = "julianday(ts) IS NULL OR julianday(ts) > julianday(received) + 1 " \
          "OR julianday(ts) < julianday(received) - 3650"
    for kind, table in _TABLES.items():
        if not db[table].exists():  # a table of a later migration: nothing to set aside
            continue
        rows = list(db.query(f"SELECT * FROM {table} WHERE {out}"))
        for row in rows:
            payload = json.dumps({**row, "kind": kind}).encode()
            db.execute(
                "INSERT INTO dead_letters (received, topic, error, size, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                [row["received"], contract.topic(row["vehicle"], contract.Channel(kind)),
                 f"time: ts {row['ts']} too far from its receipt (set aside by migration "
                 "m002 of ground_store)", len(payload), payload])  # fmt: skip
            db.execute(f"DELETE FROM {table} WHERE id = ?", [row["id"]])
            if table == "readings":
                db.execute("DELETE FROM samples WHERE reading = ?", [row["id"]])


@migrations()
def m003_visit_summaries(db: Database) -> None:
    """Each visit's anonymous activity as the kiosk sums it up (contract.VisitSummary), for
    the funders' reports; a visit summed up twice (a session closed, reopened, closed)
    keeps both rows, and the report reads the latest."""
    run_script(db, """
CREATE TABLE visit_summaries (
    id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, ts TEXT NOT NULL, visit TEXT NOT NULL,
    opened TEXT NOT NULL, closed TEXT NOT NULL, booked INTEGER NOT NULL,
    checked_in_name INTEGER NOT NULL, checked_in_code INTEGER NOT NULL,
    walk_in INTEGER NOT NULL, seen INTEGER NOT NULL, absent INTEGER NOT NULL,
    no_show INTEGER NOT NULL, waits_s TEXT NOT NULL, received TEXT NOT NULL);
CREATE INDEX visit_summaries_visit ON visit_summaries(visit, ts);
""")


_TABLES = {"position": "positions", "event": "events", "status": "statuses",
           "ticket": "tickets", "queue": "queue_states", "reading": "readings",
           "summary": "visit_summaries"}
_JSON_COLUMNS = {"values", "flags", "codes", "waits_s"}
_MODELS: dict[str, type[Message]] = {
    "position": contract.Position, "event": contract.VisitEvent, "status": contract.Status,
    "ticket": contract.TicketEvent, "queue": contract.QueueState, "reading": contract.Reading,
    "summary": contract.VisitSummary,
}


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    """One connection, used by the ingest writer and the plan publisher: one at a time."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class Leg(NamedTuple):
    """One drive from a stop to the next, as the bus's events tell it."""

    vehicle: str
    origin: str
    dest: str
    left: datetime
    arrived: datetime
    start: tuple[float, float]  # where the bus was when it left, and when it arrived
    end: tuple[float, float]

    @property
    def seconds(self) -> float:
        return (self.arrived - self.left).total_seconds()


class Store:
    def __init__(self, path: Path | str, clock: Clock | None = None,
                 dead_letters: DeadLetterLimits | None = None) -> None:
        # Acknowledged to the broker only after commit: the commit must be on disk.
        self.clock = clock or SystemClock()
        self.db = open_database(path, migrations, synchronous="FULL", clock=self.clock)
        # Damaged copies of this file set aside (medicobus.storage), for the dashboard.
        self.set_aside = [] if str(path) == ":memory:" else [
            p for p in set_aside(Path(path).parent)
            if p.name.startswith(Path(path).name + SET_ASIDE)]
        self.dead_letter_limits = dead_letters or DeadLetterLimits()
        self._lock = threading.RLock()
        self._columns = {t: list(self.db.table(t).columns_dict) for t in _TABLES.values()}
        self._inserts = {
            table: f"INSERT OR IGNORE INTO {table} ({', '.join(f'[{c}]' for c in columns)}) "
                   f"SELECT {', '.join(f'value ->> {i}' for i in range(len(columns)))} "
                   "FROM json_each(?)"
            for table, columns in self._columns.items()
        }  # fmt: skip

    @_locked
    def known(self, messages: list[Message]) -> set[str]:
        """The ids of these messages that are stored already."""
        known: set[str] = set()
        by_table: dict[str, list[str]] = {}
        for m in messages:
            by_table.setdefault(_TABLES[m.kind], []).append(m.id)
        for table, ids in by_table.items():
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                rows = self.db.execute(
                    f"SELECT id FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk
                )
                known.update(r[0] for r in rows)
        return known

    @_locked
    def record(self, messages: list[tuple[Message, datetime]],
               dead: Sequence[DeadLetter] = ()) -> None:
        """Store new messages (received when) and dead letters, in one transaction; then,
        if there were dead letters, purge the oldest past the limits, in another."""
        try:
            self._record(messages, dead)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        if dead:
            try:
                self._purge_dead_letters()
            except sqlite3.Error:  # the batch is stored: the next purge tries again
                log.exception("dead letters could not be purged")

    def _record(self, messages: list[tuple[Message, datetime]],
                dead: Sequence[DeadLetter]) -> None:
        by_table: dict[str, list[list[Any]]] = {}
        received_iso: dict[int, str] = {}  # the items of one batch share their receipt time
        for message, received in messages:
            table = _TABLES[message.kind]
            when = received_iso.get(id(received))
            if when is None:
                when = received_iso[id(received)] = _utc(received)
            fields = message.__dict__  # pydantic keeps a model's fields there: no getattr
            by_table.setdefault(table, []).append(
                [when if c == "received" else _value(fields[c]) for c in self._columns[table]]
            )
        with write_transaction(self.db):
            # One statement per table, the rows as one JSON array: the hot path of ingest.
            # SQLite then takes the batch in one step, where executemany would hand the
            # interpreter lock to paho's network thread and wait for it back at every row.
            for table, rows in by_table.items():
                self.db.conn.execute(self._inserts[table], [json.dumps(rows)])
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                [row for m, _ in messages if isinstance(m, contract.Reading)
                 for row in _samples(m)],
            )  # fmt: skip
            if dead:
                self.db.conn.executemany(
                    "INSERT INTO dead_letters (received, topic, error, size, payload) "
                    "VALUES (?, ?, ?, ?, ?)",
                    # The payload whole, to look at or replay: the broker's maximum packet
                    # size (1 MB in config/mosquitto) bounds it.
                    [(_utc(d.received), d.topic[:512], d.error[:1000], len(d.payload),
                      d.payload) for d in dead],
                )  # fmt: skip

    @_locked
    def purge_dead_letters(self) -> int:
        """Delete the dead letters past the limits, the oldest first; how many."""
        return self._purge_dead_letters()

    def _purge_dead_letters(self) -> int:
        limits = self.dead_letter_limits
        cutoff = _utc(self.clock.now() - timedelta(days=limits.keep_days))
        with write_transaction(self.db):
            # julianday: letters stored before times were kept in UTC carry other offsets.
            aged = self.db.execute("DELETE FROM dead_letters WHERE julianday(received) < "
                                   "julianday(?)", [cutoff]).rowcount
            over = self.db.execute("""
                DELETE FROM dead_letters WHERE seq <= (
                    SELECT seq FROM (
                        SELECT seq, COUNT(*) OVER newest AS n, SUM(size) OVER newest AS b
                        FROM dead_letters WINDOW newest AS (ORDER BY seq DESC))
                    WHERE n > ? OR b > ? ORDER BY seq DESC LIMIT 1)""",
                [limits.max_rows, int(limits.max_mb * 1_000_000)]).rowcount
        if aged or over:
            log.warning("dead letters purged: %d older than %g days, %d past the limits",
                        aged, limits.keep_days, over)
        return int(aged + over)

    @_locked
    def dead_letter_counts(self) -> DeadLetterCounts:
        # Sequence numbers are never reused (AUTOINCREMENT) and only a purge deletes: the
        # highest ever given, less what is kept, is what was purged.
        kept, size, given = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE((SELECT seq FROM "
            "sqlite_sequence WHERE name = 'dead_letters'), 0) FROM dead_letters").fetchone()
        return DeadLetterCounts(int(kept), int(size), int(given) - int(kept))

    @_locked
    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM [{table}]").fetchone()[0])

    def history(self, since: datetime, until: datetime | None = None,
                kinds: Collection[str] = tuple(_TABLES)) -> Iterator[tuple[Message, datetime]]:
        """Everything (of these kinds) stored from `since` (to before `until`), oldest first
        within each kind: to rebuild live state at start, or to replay a day."""
        bounds = [since.astimezone(UTC).isoformat()]
        if until is not None:
            bounds.append(until.astimezone(UTC).isoformat())
        for kind, table in _TABLES.items():
            if kind not in kinds:
                continue
            model = _MODELS[kind]
            for row in self.db.query(
                f"SELECT * FROM {table} WHERE ts >= ? {'AND ts < ?' if until else ''} "
                "ORDER BY received", bounds,
            ):
                received = datetime.fromisoformat(row.pop("received"))
                clean = {k: json.loads(v) if k in _JSON_COLUMNS and v is not None else v
                         for k, v in row.items() if v is not None}
                yield model.model_validate({**clean, "kind": kind}), received

    @_locked
    def save_appointments(self, appointments: contract.Appointments) -> None:
        """Keep the hashed bookings (never the CSV's names) to publish them again."""
        with write_transaction(self.db):
            self.db.table("appointment_sets").upsert(
                {"vehicle": appointments.vehicle, "day": appointments.day.isoformat(),
                 "body": appointments.model_dump_json()}, pk=("vehicle", "day"),
            )  # fmt: skip

    @_locked
    def forget_appointments(self, before: date) -> int:
        """Drop hashed booking sets of past days: once the day is over they serve nothing."""
        with write_transaction(self.db):
            cur = self.db.execute("DELETE FROM appointment_sets WHERE day < ?",
                                  [before.isoformat()])
        return int(cur.rowcount)

    @_locked
    def appointments(self, day: date) -> list[contract.Appointments]:
        rows = self.db.execute("SELECT body FROM appointment_sets WHERE day = ?",
                               [day.isoformat()])
        return [contract.Appointments.model_validate_json(r[0]) for r in rows]

    @_locked
    def series(self, vehicle: str, sensor: str, quantity: str,
               since: datetime) -> list[tuple[datetime, float | None, str | None]]:
        """One quantity's samples since `since`, oldest first: (time, value, flag)."""
        rows = self.db.execute(
            "SELECT ts, value, flag FROM samples WHERE vehicle = ? AND sensor = ? "
            "AND quantity = ? AND ts >= ? ORDER BY ts",
            [vehicle, sensor, quantity, since.astimezone(UTC).isoformat()],
        )
        return [(datetime.fromisoformat(ts), value, flag) for ts, value, flag in rows]

    @_locked
    def track(self, vehicle: str, since: datetime, until: datetime,
              max_rows: int) -> list[tuple[float, float, float | None, datetime]]:
        """The vehicle's positions from `since` to before `until` as (lat, lon, acc, time),
        in their order; of more than `max_rows`, evenly spaced ones and the last (a bus gone
        wild at 10 Hz must not make a request read a million rows into Python)."""
        rows = self.db.execute("""
            SELECT lat, lon, acc, ts FROM (
                SELECT lat, lon, acc, ts, ROW_NUMBER() OVER (ORDER BY ts) AS n,
                       COUNT(*) OVER () AS total
                FROM positions WHERE vehicle = ? AND ts >= ? AND ts < ?)
            WHERE (n - 1) % ((total + ? - 1) / ?) = 0 OR n = total ORDER BY ts""",
            [vehicle, _utc(since), _utc(until), max_rows, max_rows])  # fmt: skip
        return [(lat, lon, acc, datetime.fromisoformat(ts)) for lat, lon, acc, ts in rows]

    # -- what the reports read (ground/reports/) ---------------------------------------------

    @_locked
    def visit_times(self, visits: Sequence[str]
                    ) -> dict[tuple[str, str], tuple[datetime | None, datetime | None]]:
        """Per (vehicle, visit): its first arrival and last departure, as the bus saw them."""
        rows = self.db.execute(
            "SELECT vehicle, visit, MIN(CASE event WHEN 'arrival' THEN ts END), "
            "MAX(CASE event WHEN 'departure' THEN ts END) FROM events "
            "WHERE visit IN (SELECT value FROM json_each(?)) GROUP BY vehicle, visit",
            [json.dumps(list(visits))])  # fmt: skip
        return {(v, visit): (_moment(a), _moment(d)) for v, visit, a, d in rows}

    @_locked
    def visit_summaries(self, visits: Sequence[str]
                        ) -> dict[tuple[str, str], contract.VisitSummary]:
        """Per (vehicle, visit): the latest summary the kiosk sent of it."""
        found: dict[tuple[str, str], contract.VisitSummary] = {}
        for row in self.db.query(
                "SELECT * FROM visit_summaries WHERE visit IN (SELECT value FROM json_each(?)) "
                "ORDER BY ts", [json.dumps(list(visits))]):
            row.pop("received")
            row["waits_s"] = json.loads(row["waits_s"])
            found[(row["vehicle"], row["visit"])] = contract.VisitSummary.model_validate(row)
        return found

    @_locked
    def visit_tickets(self, visits: Sequence[str]
                      ) -> dict[tuple[str, str], list[tuple[datetime, int, str | None, str]]]:
        """Per (vehicle, visit): its ticket events by time (time, ticket, appointment,
        event), for the visits a bus of before sent no summary of."""
        found: dict[tuple[str, str], list[tuple[datetime, int, str | None, str]]] = {}
        for vehicle, visit, ts, ticket, appointment, event in self.db.execute(
                "SELECT vehicle, visit, ts, ticket, appointment, event FROM tickets "
                "WHERE visit IN (SELECT value FROM json_each(?)) ORDER BY ts",
                [json.dumps(list(visits))]):
            found.setdefault((vehicle, visit), []).append(
                (datetime.fromisoformat(ts), ticket, appointment, event))
        return found

    @_locked
    def last_queues(self, visits: Sequence[str]) -> dict[tuple[str, str], tuple[datetime, int]]:
        """Per (vehicle, visit): its last queue state's time and bookings not checked in."""
        rows = self.db.execute(
            "SELECT vehicle, visit, MAX(ts), booked_remaining FROM queue_states "
            "WHERE visit IN (SELECT value FROM json_each(?)) GROUP BY vehicle, visit",
            [json.dumps(list(visits))])  # fmt: skip
        return {(v, visit): (datetime.fromisoformat(ts), n) for v, visit, ts, n in rows}

    @_locked
    def positions_between(self, vehicle: str, since: datetime, until: datetime
                          ) -> list[tuple[str, float, float, float | None, float | None]]:
        """The vehicle's positions from `since` to before `until`, by time: (UTC time as
        stored, lat, lon, speed, acc); times left as text, which a year of a bus's rows
        costs less to read as (the reader parses those it needs)."""
        return self.db.execute(
            "SELECT ts, lat, lon, speed, acc FROM positions WHERE vehicle = ? AND ts >= ? "
            "AND ts < ? ORDER BY ts", [vehicle, _utc(since), _utc(until)]).fetchall()

    @_locked
    def series_between(self, vehicle: str, sensor: str, quantity: str, since: datetime,
                       until: datetime) -> list[tuple[datetime, float | None]]:
        """One quantity's values from `since` to before `until`, by time, and the last one
        before `since` (what held when the period began); None where the value was flagged."""
        rows = self.db.execute("""
            SELECT ts, value FROM (SELECT ts, value FROM samples WHERE vehicle = ?1
                AND sensor = ?2 AND quantity = ?3 AND ts < ?4 ORDER BY ts DESC LIMIT 1)
            UNION ALL SELECT ts, value FROM samples WHERE vehicle = ?1 AND sensor = ?2
                AND quantity = ?3 AND ts >= ?4 AND ts < ?5 ORDER BY ts""",
            [vehicle, sensor, quantity, _utc(since), _utc(until)])  # fmt: skip
        return [(datetime.fromisoformat(ts), value) for ts, value in rows]

    def legs(self, since: datetime, until: datetime | None = None) -> Iterator[Leg]:
        """The legs driven: each departure from a stop to the bus's next arrival (from
        `since`, to before `until`), by vehicle and time."""
        previous: dict[str, tuple[str, datetime, tuple[float, float]]] = {}
        for vehicle, ts, event, stop, lat, lon in self.db.execute(
            "SELECT vehicle, ts, event, stop, lat, lon FROM events WHERE ts >= ? AND ts < ? "
            "ORDER BY vehicle, ts",
            [since.astimezone(UTC).isoformat(), (until or datetime.max.replace(tzinfo=UTC)
                                                 ).astimezone(UTC).isoformat()],
        ):
            at = datetime.fromisoformat(ts)
            if event == "departure":
                previous[vehicle] = (stop, at, (lat, lon))
            elif vehicle in previous:
                origin, left, start = previous.pop(vehicle)
                if origin != stop and timedelta(0) < at - left < timedelta(hours=3):
                    yield Leg(vehicle, origin, stop, left, at, start, (lat, lon))

    def crossings(self, event: str, since: datetime, until: datetime | None = None
                  ) -> Iterator[tuple[str, str, datetime]]:
        """Each arrival (or departure) reported from `since` (to before `until`): (vehicle,
        visit, time), oldest first."""
        for vehicle, visit, ts in self.db.execute(
            "SELECT vehicle, visit, ts FROM events WHERE ts >= ? AND ts < ? AND event = ? "
            "ORDER BY ts",
            [since.astimezone(UTC).isoformat(), (until or datetime.max.replace(tzinfo=UTC)
                                                 ).astimezone(UTC).isoformat(), event],
        ):
            yield vehicle, visit, datetime.fromisoformat(ts)

    def close(self) -> None:
        self.db.close()


def _value(value: Any) -> Any:
    """A field as stored: times in UTC (so that they compare as strings), JSON for the rest
    that SQLite has no type for. The hot path of ingest: plain type checks."""
    kind = type(value)
    if kind is datetime:
        return _utc(value)
    if kind is dict or kind is list:
        return json.dumps(value)
    return value


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _samples(r: contract.Reading) -> Iterator[tuple[Any, ...]]:
    ts = r.ts.astimezone(UTC).isoformat()
    for quantity in {*r.values, *r.flags}:
        yield (r.vehicle, r.sensor, quantity, ts, r.values.get(quantity), r.flags.get(quantity),
               r.id)
