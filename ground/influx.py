"""Telemetry to InfluxDB (when configured), through a durable spool.

SQLite stays the ground's record; InfluxDB is for long series and Grafana. Ingest must
never wait for InfluxDB nor lose points while it is down, so `submit` only appends line
protocol to a spool (its own SQLite file), and a writer thread sends the oldest points in
batches, deleting them only once the server accepted them, retrying with backoff while it
is unreachable. A point the server refuses for what it is (a 400: a field type conflict)
is isolated by halving the batch and set aside, so it cannot block the ones behind it.

Measurements: `medicobus_reading` (tags vehicle, sensor; one float field per quantity,
flagged ones left out; string fields `flags` "quantity=flag,..." and `codes`), and
`medicobus_position` (tag vehicle; fields lat, lon, speed, heading, acc).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ground.store import Store
from medicobus import contract
from medicobus.clock import Clock
from medicobus.storage import Database, Migrations, open_database, write_transaction

log = logging.getLogger(__name__)

migrations = Migrations("influx_spool")


@migrations()
def m001_influx_spool(db: Database) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS influx_spool ("
               "seq INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL)")

READING = "medicobus_reading"
POSITION = "medicobus_position"


class InfluxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    org: Annotated[str, Field(min_length=1)]
    bucket: Annotated[str, Field(min_length=1)]
    token: str | None = None
    token_file: Path | None = None  # preferred over `token` in production
    batch_size: Annotated[int, Field(ge=1, le=50_000)] = 5000
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    retry_initial_s: Annotated[float, Field(ge=0, le=600)] = 1.0  # doubles at each failure
    retry_max_s: Annotated[float, Field(ge=0, le=3600)] = 60.0  # ...up to this
    # Where points wait for the server; default: beside the ground's database.
    spool: Path | None = None
    # A cap so a server gone for weeks cannot fill the disk: beyond it the oldest go.
    max_spool_points: Annotated[int, Field(ge=1000)] = 5_000_000

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_token(self) -> InfluxSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        return self

    def secret(self) -> str:
        if self.token_file is not None:
            return self.token_file.read_text(encoding="utf-8").strip()
        return self.token or ""


def to_lines(messages: Iterable[Any]) -> list[str]:
    """Line protocol for the readings and positions among `messages` (others skipped)."""
    lines: list[str] = []
    for m in messages:
        point: Point | None = None
        if isinstance(m, contract.Reading):
            point = Point(READING).tag("vehicle", m.vehicle).tag("sensor", m.sensor)
            fields = 0
            for quantity, value in sorted(m.values.items()):
                if value is not None and quantity not in m.flags:
                    point.field(quantity, float(value))  # always float: no type conflicts
                    fields += 1
            if m.flags:
                point.field("flags", ",".join(f"{q}={f}" for q, f in sorted(m.flags.items())))
                fields += 1
            if m.codes is not None:
                point.field("codes", ",".join(m.codes))
                fields += 1
            if not fields:
                continue
        elif isinstance(m, contract.Position):
            point = (Point(POSITION).tag("vehicle", m.vehicle)
                     .field("lat", float(m.lat)).field("lon", float(m.lon)))
            for name in ("speed", "heading", "acc"):
                value = getattr(m, name)
                if value is not None:
                    point.field(name, float(value))
        if point is not None:
            lines.append(point.time(m.ts, WritePrecision.NS).to_line_protocol())
    return lines


class InfluxExporter:
    def __init__(self, settings: InfluxSettings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._stats = {"spooled": 0, "written": 0, "batches": 0, "failures": 0,
                       "rejected": 0, "dropped": 0}
        self.last_error: str | None = None
        path = settings.spool or _beside(store)
        # Its own file: the writer deletes sent points all day, and in the store's file it
        # would contend for ingest's lock. WAL + NORMAL: a crash of the process loses
        # nothing committed; the store keeps the truth in any case.
        self._db = open_database(path, migrations, synchronous="NORMAL", busy_timeout_s=30)
        self._lock = threading.Lock()
        self._pending = self._count()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = InfluxDBClient(url=settings.url, token=settings.secret(),
                                      org=settings.org, timeout=int(settings.timeout_s * 1000))
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    @property
    def stats(self) -> dict[str, int]:
        return {**self._stats, "pending": self._pending}

    def submit(self, messages: Iterable[contract.Reading | contract.Position | Any]) -> None:
        """Spool the readings and positions among `messages`; never raises, never waits
        for the server (call it with what ingest stored, after each batch)."""
        try:
            lines = to_lines(messages)
            if not lines:
                return
            with self._lock, write_transaction(self._db):
                self._db.conn.executemany("INSERT INTO influx_spool (line) VALUES (?)",
                                          [(line,) for line in lines])
                self._pending += len(lines)
                overflow = self._pending - self.settings.max_spool_points
                if overflow > 0:
                    self._db.execute("DELETE FROM influx_spool WHERE seq IN (SELECT seq FROM "
                                     "influx_spool ORDER BY seq LIMIT ?)", [overflow])
                    self._pending -= overflow
                    self._stats["dropped"] += overflow
                    log.error("influx spool full: %d oldest points dropped", overflow)
            self._stats["spooled"] += len(lines)
            self._wake.set()
        except Exception:  # ingest must go on even if the spool's disk is full
            log.exception("could not spool points for InfluxDB")
            self._stats["dropped"] += 1

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="influx", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer; what is not sent stays spooled for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._client.close()
        with self._lock:
            self._db.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the spool is empty; False on timeout (the server is down)."""
        deadline = time.monotonic() + timeout
        while self._pending:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.05)
        return True

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            batch = self._oldest(self.settings.batch_size)
            if not batch:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            if self._send(batch):
                failures = 0
                continue
            failures += 1
            delay = min(self.settings.retry_initial_s * 2 ** (failures - 1),
                        self.settings.retry_max_s)
            log.warning("InfluxDB write failed (%s); %d points spooled, retry in %.1f s",
                        self.last_error, self._pending, delay)
            self._stop.wait(delay)

    def _send(self, batch: list[tuple[int, str]]) -> bool:
        """Write a batch; True when the spool moved on (sent, or refused points set aside)."""
        try:
            self._write_api.write(bucket=self.settings.bucket, org=self.settings.org,
                                  record=[line for _, line in batch],
                                  # The constant is a str; the library's hint says otherwise.
                                  write_precision=WritePrecision.NS)  # type: ignore[arg-type]
        except ApiException as exc:
            self._stats["failures"] += 1
            self.last_error = f"HTTP {exc.status}: {str(exc.body or exc.reason)[:200]}"
            if exc.status in (400, 413, 422):  # refused for its content: never will pass
                return self._split(batch)
            return False
        except Exception as exc:  # unreachable, timeout: the points wait in the spool
            self._stats["failures"] += 1
            self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            return False
        self._delete(batch)
        self._stats["written"] += len(batch)
        self._stats["batches"] += 1
        return True

    def _split(self, batch: list[tuple[int, str]]) -> bool:
        if len(batch) == 1:
            log.error("InfluxDB refused a point, set aside: %s (%s)", batch[0][1][:200],
                      self.last_error)
            self._delete(batch)
            self._stats["rejected"] += 1
            return True
        half = len(batch) // 2
        return self._send(batch[:half]) and self._send(batch[half:])

    def _oldest(self, limit: int) -> list[tuple[int, str]]:
        with self._lock:
            if self._stop.is_set():
                return []
            return [(int(seq), str(line)) for seq, line in self._db.execute(
                "SELECT seq, line FROM influx_spool ORDER BY seq LIMIT ?", [limit])]

    def _delete(self, batch: list[tuple[int, str]]) -> None:
        with self._lock, write_transaction(self._db):
            cur = self._db.conn.executemany("DELETE FROM influx_spool WHERE seq = ?",
                                            [(seq,) for seq, _ in batch])
            self._pending -= max(0, cur.rowcount)

    def _count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM influx_spool").fetchone()[0])


def _beside(store: Store) -> Path | str:
    for _, name, file in store.db.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file).with_name(Path(file).stem + "-influx-spool.db")
    return ":memory:"  # a store in memory (tests): a spool in memory too
