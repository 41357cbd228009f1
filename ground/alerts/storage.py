"""Where alerts are kept: all the alerts' SQL, on a connection of their own.

The tables `alerts` and `alert_cursor` live in the ground's database, next to the
`samples` the threshold rules judge (read here too). This module opens its own connection
to that file rather than borrowing the store's: WAL lets it read while ingest writes, and a
write waits for the other's (busy timeout) instead of sharing a lock across modules.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ground.reports.activity import driven
from medicobus.storage import Database, Migrations, open_database, run_script

# The alerts' tables, a migration set of their own in the ground's database.
migrations = Migrations("ground_alerts")

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, vehicle TEXT NOT NULL, rule TEXT NOT NULL,
    key TEXT NOT NULL DEFAULT '', title_fr TEXT NOT NULL, title_en TEXT NOT NULL,
    severity TEXT NOT NULL, unit TEXT NOT NULL DEFAULT '', opened_at TEXT NOT NULL,
    value_at_open REAL, acknowledged_by TEXT, acknowledged_at TEXT, closed_at TEXT,
    last_value REAL);
-- At most one open alert per vehicle, rule and key (a trouble code): the database itself
-- refuses a second one for the same episode, whatever a restart or a race does.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts(vehicle, rule, key)
    WHERE closed_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_vehicle_opened ON alerts(vehicle, opened_at);
CREATE TABLE IF NOT EXISTS alert_cursor (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""



@migrations()
def m001_alerts_cursor(db: Database) -> None:
    run_script(db, SCHEMA)


@migrations()
def m002_maintenance_done(db: Database) -> None:
    """Maintenance done (an oil change, the contrôle technique), with who and when and
    the counters then: each restarts its item's interval (ground/alerts/rules.py)."""
    run_script(db, """
CREATE TABLE maintenance_done (
    id INTEGER PRIMARY KEY AUTOINCREMENT, vehicle TEXT NOT NULL, item TEXT NOT NULL,
    done_at TEXT NOT NULL, who TEXT NOT NULL, km REAL, hours REAL);
CREATE INDEX maintenance_done_item ON maintenance_done(vehicle, item, done_at);
""")


@migrations()
def m003_maintenance_items(db: Database) -> None:
    """Maintenance items a fleet manager added or changed in the dashboard, per vehicle (the
    configuration's items stay the base: one of the same id here replaces it)."""
    run_script(db, """
CREATE TABLE maintenance_items (
    vehicle TEXT NOT NULL, item TEXT NOT NULL, body TEXT NOT NULL, who TEXT NOT NULL,
    at TEXT NOT NULL, PRIMARY KEY (vehicle, item));
""")


GPS_COUNTS_PER_BUS = 8  # distance and engine-hour counts kept per bus (one per item)


@dataclass(frozen=True)
class Done:
    at: datetime
    who: str
    km: float | None  # the odometer then (None: it gave none; distance is counted by GPS)
    hours: float | None  # the engine's hours then, if it reports them


_COLUMNS = ("id, vehicle, rule, title_fr, title_en, severity, opened_at, value_at_open, "
            "acknowledged_by, acknowledged_at, closed_at, last_value, key, unit")

SeriesStart = tuple[str, str, str, datetime]  # vehicle, sensor, quantity, oldest sample


@dataclass(frozen=True)
class Alert:
    id: int
    vehicle: str
    rule: str
    title_fr: str
    title_en: str
    severity: str
    opened_at: datetime
    value_at_open: float | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    last_value: float | None
    key: str = ""  # what tells apart alerts of one rule: "engine:P0301" for a trouble code
    unit: str = ""  # of the values: "°C", "%", "min"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class AlertStorage:
    """The alerts of the ground's database at `path` (the store creates the file first)."""

    def __init__(self, path: Path | str) -> None:
        # An alert is a record (the cold chain's): on disk once told, as the store's data.
        # Every write here is one statement: autocommit makes each its own transaction.
        self._conn = open_database(path, migrations, synchronous="FULL").conn
        # The engine (pipeline and timer threads) and the web's acknowledgements share it.
        self._lock = threading.Lock()
        # Per (vehicle, since): where counting got to (its time), what was counted so far
        # (metres driven, or seconds the engine ran) and the last row counted.
        self._gps: dict[tuple[str, str], tuple[str, float, Any]] = {}
        self._items: dict[str, list[str]] | None = None  # see saved_items

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- reading alerts --------------------------------------------------------------------

    def open_alerts(self, vehicle: str | None = None) -> list[Alert]:
        if vehicle is None:
            return self._select("closed_at IS NULL ORDER BY opened_at, id", [])
        return self._select("closed_at IS NULL AND vehicle = ? ORDER BY opened_at, id",
                            [vehicle])

    def open_by_rule(self, vehicles: Set[str]) -> dict[tuple[str, str], dict[str, Alert]]:
        """The open alerts of these vehicles (few: the rules bound them), by (vehicle,
        rule) then key."""
        found: dict[tuple[str, str], dict[str, Alert]] = {}
        for alert in self._select("closed_at IS NULL AND vehicle IN "
                                  "(SELECT value FROM json_each(?))",
                                  [json.dumps(sorted(vehicles))]):
            found.setdefault((alert.vehicle, alert.rule), {})[alert.key] = alert
        return found

    def history(self, vehicle: str, since: datetime, limit: int | None = None) -> list[Alert]:
        """Alerts of the vehicle that were going at any time since `since`, newest first;
        the newest `limit` of them (None: all)."""
        return self._select("vehicle = ? AND (closed_at IS NULL OR closed_at >= ? "
                            "OR opened_at >= ?) ORDER BY opened_at DESC, id DESC LIMIT ?",
                            [vehicle, _iso(since), _iso(since), -1 if limit is None else limit])

    def recorded(self, vehicle: str, rule: str, since: datetime) -> list[Alert]:
        """A rule's alerts (without key) going at or after `since`, oldest first."""
        return self._select("vehicle = ? AND rule = ? AND key = '' AND "
                            "(closed_at IS NULL OR closed_at >= ?) ORDER BY opened_at",
                            [vehicle, rule, _iso(since)])

    def get(self, alert_id: int) -> Alert:
        found = self._select("id = ?", [alert_id])
        if not found:
            raise KeyError(alert_id)
        return found[0]

    # -- recording -------------------------------------------------------------------------

    def record_open(self, vehicle: str, rule: str, severity: str, *, key: str,
                    title_fr: str, title_en: str, unit: str, opened_at: datetime,
                    value: float | None, last: float | None,
                    closed_at: datetime | None) -> Alert | None:
        """A new alert; None if one is open already for this vehicle, rule and key (the
        same episode, not a new one)."""
        with self._lock:
            try:
                cur = self._conn.execute(
                    "INSERT INTO alerts (vehicle, rule, key, title_fr, title_en, "
                    "severity, unit, opened_at, value_at_open, last_value, closed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [vehicle, rule, key, title_fr, title_en, severity, unit,
                     _iso(opened_at), value, last,
                     None if closed_at is None else _iso(closed_at)])
            except sqlite3.IntegrityError:
                return None
        return self.get(int(cur.lastrowid or 0))

    def record_close(self, alert_id: int, at: datetime, last: float | None) -> Alert:
        """Close an open alert; `last` None keeps the last value recorded."""
        self._write("UPDATE alerts SET closed_at = ?, last_value = COALESCE(?, last_value) "
                    "WHERE id = ? AND closed_at IS NULL", [_iso(at), last, alert_id])
        return self.get(alert_id)

    def record_last(self, alert_id: int, last: float | None) -> None:
        self._write("UPDATE alerts SET last_value = ? WHERE id = ?", [last, alert_id])

    def acknowledge(self, alert_id: int, person: str, at: datetime) -> bool:
        """Record who took the alert in hand, if nobody did yet; True if recorded."""
        return self._write("UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? "
                           "WHERE id = ? AND acknowledged_by IS NULL",
                           [person, _iso(at), alert_id]) > 0

    # -- the samples judged, and where judging got to ----------------------------------------

    def series(self, vehicle: str, sensor: str, quantity: str,
               start: datetime) -> list[tuple[datetime, float]]:
        """A quantity's values from `start`, oldest first, led by the last one before
        `start`, which still stands for the value then. Flagged samples (no value) say
        nothing about the quantity: they are left out rather than read as a value."""
        values = ("SELECT ts, value FROM samples WHERE vehicle = ? AND sensor = ? AND "
                  "quantity = ? AND value IS NOT NULL")
        args = [vehicle, sensor, quantity, _iso(start)]
        with self._lock:
            seed = self._conn.execute(f"{values} AND ts < ? ORDER BY ts DESC LIMIT 1",
                                      args).fetchall()
            rows = self._conn.execute(f"{values} AND ts >= ? ORDER BY ts", args).fetchall()
        return [(datetime.fromisoformat(ts), float(v)) for ts, v in [*seed, *rows]]

    def cursor(self) -> int | None:
        """The rowid of the last sample the engine noted, as last saved."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM alert_cursor WHERE name = 'samples'").fetchone()
        return None if row is None else int(row[0])

    def save_cursor(self, rowid: int) -> None:
        self._write("INSERT OR REPLACE INTO alert_cursor (name, value) VALUES ('samples', ?)",
                    [rowid])

    def newest_sample(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT MAX(rowid) FROM samples").fetchone()[0] or 0)

    def series_since(self, since: datetime) -> list[SeriesStart]:
        """Each series with samples since `since`, and its oldest sample then."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT vehicle, sensor, quantity, MIN(ts) FROM samples WHERE ts >= ? "
                "GROUP BY vehicle, sensor, quantity", [_iso(since)]).fetchall()
        return [(v, s, q, datetime.fromisoformat(ts)) for v, s, q, ts in rows]

    def stored_after(self, rowid: int) -> tuple[list[SeriesStart], int]:
        """Each series with samples stored after `rowid` (the order of storing, not of
        time: a backlog is older than live data), its oldest sample, and the newest rowid."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT vehicle, sensor, quantity, MIN(ts), MAX(rowid) FROM samples "
                "WHERE rowid > ? GROUP BY vehicle, sensor, quantity", [rowid]).fetchall()
        return ([(v, s, q, datetime.fromisoformat(ts)) for v, s, q, ts, _ in rows],
                max([rowid, *(int(r[4]) for r in rows)]))

    # -- maintenance ----------------------------------------------------------------------

    def record_done(self, vehicle: str, item: str, at: datetime, who: str,
                    km: float | None, hours: float | None) -> None:
        self._write("INSERT INTO maintenance_done (vehicle, item, done_at, who, km, hours) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [vehicle, item, _iso(at), who, km, hours])

    def last_done(self, vehicle: str, item: str) -> Done | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT done_at, who, km, hours FROM maintenance_done WHERE vehicle = ? AND "
                "item = ? ORDER BY done_at DESC, id DESC LIMIT 1", [vehicle, item]).fetchone()
        return None if row is None else Done(datetime.fromisoformat(row[0]), *row[1:])

    def save_item(self, vehicle: str, item: str, body: str, who: str, at: datetime) -> None:
        self._write("INSERT OR REPLACE INTO maintenance_items (vehicle, item, body, who, at) "
                    "VALUES (?, ?, ?, ?, ?)", [vehicle, item, body, who, _iso(at)])
        self._items = None

    def saved_items(self, vehicle: str) -> list[str]:
        """The bodies (JSON) of the items made in the dashboard for the vehicle. Read once
        for the fleet and kept until one is saved: the rule asks for every vehicle on every
        evaluation, and most have none."""
        with self._lock:
            if self._items is None:
                self._items = {}
                for v, body in self._conn.execute(
                        "SELECT vehicle, body FROM maintenance_items ORDER BY item"):
                    self._items.setdefault(v, []).append(body)
            return self._items.get(vehicle, [])

    def latest(self, vehicle: str, sensor: str, quantity: str) -> float | None:
        """A quantity's newest value (an odometer, engine hours), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM samples WHERE vehicle = ? AND sensor = ? AND quantity = ? "
                "AND value IS NOT NULL ORDER BY ts DESC LIMIT 1",
                [vehicle, sensor, quantity]).fetchone()  # fmt: skip
        return None if row is None else float(row[0])

    def gps_km(self, vehicle: str, since: datetime) -> float:
        """Km driven since `since` by the positions stored (as the reports count them).
        Counted on from where the last call got to: the rule asks every few seconds."""
        key = (vehicle, _iso(since))
        upto, metres, last = self._gps.get(key, (_iso(since), 0.0, None))
        with self._lock:
            rows = self._conn.execute(
                "SELECT ts, lat, lon, speed, acc FROM positions WHERE vehicle = ? AND ts > ? "
                "ORDER BY ts", [vehicle, upto]).fetchall()  # fmt: skip
        if rows:
            km, _ = driven([last, *rows] if last else rows)
            metres += km * 1000
            upto, last = rows[-1][0], rows[-1]
        # One count per item's last time done (a bus has an oil change and tyres, done on
        # other days): each counted on from where it got to, not read again. A few per bus
        # at most; the oldest, left by a newer done, go first.
        self._gps[key] = (upto, metres, last)
        mine = sorted(k for k in self._gps if k[0] == vehicle and not k[1].startswith("rpm:"))
        for old in mine[:-GPS_COUNTS_PER_BUS]:
            del self._gps[old]
        return metres / 1000

    def engine_hours_since(self, vehicle: str, since: datetime, sensor: str = "engine",
                           hold: timedelta = timedelta(minutes=5)) -> float:
        """Hours the engine ran since `since`, from its rpm readings: each reading above 0
        holds until the next, at most `hold` (the sampling's heartbeat). Counted on from
        where the last call got to, like `gps_km`."""
        key = (vehicle, "rpm:" + _iso(since))
        upto, seconds, last = self._gps.get(key, (_iso(since), 0.0, None))
        with self._lock:
            rows = self._conn.execute(
                "SELECT ts, value FROM samples WHERE vehicle = ? AND sensor = ? AND "
                "quantity = 'rpm' AND ts > ? ORDER BY ts", [vehicle, sensor, upto]).fetchall()
        for ts, value in rows:
            at = datetime.fromisoformat(ts)
            if last is not None and last[1]:
                seconds += min(at - last[0], hold).total_seconds()
            last = (at, (value or 0) > 0)
        if rows:
            upto = rows[-1][0]
        self._gps[key] = (upto, seconds, last)
        mine = sorted(k for k in self._gps if k[0] == vehicle and k[1].startswith("rpm:"))
        for old in mine[:-GPS_COUNTS_PER_BUS]:
            del self._gps[old]
        return seconds / 3600

    # -- helpers ---------------------------------------------------------------------------

    def _select(self, where: str, args: Sequence[Any]) -> list[Alert]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE {where}",
                                      list(args)).fetchall()
        return [_alert(r) for r in rows]

    def _write(self, sql: str, args: Sequence[Any]) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        with self._lock:
            return self._conn.execute(sql, list(args)).rowcount


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()  # UTC, so that stored times compare as strings


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _alert(row: Sequence[Any]) -> Alert:
    return Alert(
        id=int(row[0]), vehicle=row[1], rule=row[2], title_fr=row[3], title_en=row[4],
        severity=row[5], opened_at=datetime.fromisoformat(row[6]), value_at_open=row[7],
        acknowledged_by=row[8], acknowledged_at=_dt(row[9]), closed_at=_dt(row[10]),
        last_value=row[11], key=row[12], unit=row[13],
    )
