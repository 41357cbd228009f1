"""The durable outbox: everything the bus sends waits here until the broker acknowledges it.

One SQLite file in WAL mode with `synchronous=FULL`, so a row that `put` returned for is on
disk and survives `kill -9` and a power cut. Rows leave only through `remove`, which the
link calls when the broker's PUBACK for them arrives.

Bounded on disk: past `max_rows`, old positions are thinned (every other one of the oldest
half goes, so the track keeps its shape at a coarser step); events are never dropped.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from medicobus import contract

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox(kind, seq);
"""


@dataclass(frozen=True)
class Row:
    seq: int
    kind: str
    payload: str


class Outbox:
    def __init__(self, path: Path | str, max_rows: int = 200_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        # One connection shared by the agent (writer) and the link (reader, remover).
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self.thinned = 0
        self._rows = self._count()  # kept up to date: counting the table on every put is O(n)

    def put(self, message: contract.Position | contract.VisitEvent | contract.TicketEvent
            | contract.QueueState | contract.Reading) -> None:
        """Store durably; returns once the row is on disk."""
        with self._lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO outbox (id, kind, payload, created) VALUES (?, ?, ?, ?)",
                [message.id, message.kind, message.to_json().decode(), message.ts.isoformat()],
            )
            self._rows += cur.rowcount
            if self._rows > self.max_rows:
                self._thin()
            self._added.notify_all()

    def wait_for_rows(self, timeout: float) -> None:
        """Block until something is put, or `timeout` seconds pass."""
        with self._added:
            self._added.wait(timeout)

    def last_seq(self) -> int:
        with self._lock:
            row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()
        return int(row[0])

    def after(self, seq: int, limit: int, upto: int | None = None) -> list[Row]:
        """Rows after `seq` (and up to `upto`), oldest first."""
        sql = "SELECT seq, kind, payload FROM outbox WHERE seq > ?"
        args: list[int] = [seq]
        if upto is not None:
            sql += " AND seq <= ?"
            args.append(upto)
        with self._lock:
            rows = self.db.execute(sql + " ORDER BY seq LIMIT ?", [*args, limit]).fetchall()
        return [Row(*r) for r in rows]

    def remove(self, seqs: Iterable[int]) -> None:
        seqs = list(seqs)
        if not seqs:
            return
        with self._lock:
            cur = self.db.execute(
                f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(seqs))})", seqs
            )
            self._rows -= cur.rowcount

    def count(self) -> int:
        with self._lock:
            return self._rows

    def _count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def _thin(self) -> None:
        positions = int(
            self.db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'position'").fetchone()[0]
        )
        if positions < 2:
            log.warning("outbox over %d rows but holds only events; keeping them all",
                        self.max_rows)
            return
        cur = self.db.execute(
            """DELETE FROM outbox WHERE seq IN (
                 SELECT seq FROM (
                   SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) AS n
                   FROM outbox WHERE kind = 'position' ORDER BY seq LIMIT ?)
                 WHERE n % 2 = 0)""",
            [max(2, positions // 2)],
        )
        self.thinned += cur.rowcount
        self._rows -= cur.rowcount
        log.warning("outbox full (%d rows): thinned %d old positions", self.max_rows,
                    cur.rowcount)

    def close(self) -> None:
        with self._lock:
            self.db.close()
