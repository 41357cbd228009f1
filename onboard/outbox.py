"""The durable outbox: everything the bus sends waits here until the ground has committed it.

One SQLite file opened with `synchronous=FULL` (see medicobus/storage.py), so a row that
`put` returned for is on disk and survives `kill -9` and a power cut. Rows leave only
through `remove`, which the link calls when the ground's acknowledgement for them arrives
(not the broker's PUBACK: a broker that crashes loses what it had acknowledged).

Two processes write it: the agent (positions, events, readings; its link drains) and the
kiosk (tickets, queue states). What another process committed is seen through SQLite's
`PRAGMA data_version`, which changes when another connection commits: the row count is
taken again from the table then (and only then: counting is O(n)), and a link waiting for
rows polls it every OTHER_WRITERS_POLL_S, so a check-in at the kiosk leaves within that.

Bounded on disk: past `max_rows`, old positions are thinned (every other one of the oldest
half goes, so the track keeps its shape at a coarser step); events are never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medicobus import contract
from medicobus.storage import Database, Migrations, open_database, run_script

log = logging.getLogger(__name__)

# How soon a waiting link sees rows another process put: a PRAGMA every 50 ms is a few
# microseconds of work, and a check-in's ticket is on its way well within a second.
OTHER_WRITERS_POLL_S = 0.05

migrations = Migrations("outbox")


@migrations()
def m001_outbox(db: Database) -> None:
    run_script(db, """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox(kind, seq);
""")


@dataclass(frozen=True)
class Row:
    seq: int
    kind: str
    payload: str
    id: str  # the message's id, which the ground acknowledges


class Outbox:
    def __init__(self, path: Path | str, max_rows: int = 200_000) -> None:
        self.path = Path(path)
        self.max_rows = max_rows
        # One connection per process, shared by its writers and (in the agent) the link.
        self.db = open_database(self.path, migrations, synchronous="FULL")
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self.thinned = 0
        # The row count as of data version `_counted_at`, plus this process's own changes
        # since (which do not change the data version): counting on every put is O(n).
        self._counted_at = self._data_version()
        self._rows = self._count()
        # What the link last read, to tell whether anything was put since: this process's
        # puts (a counter, they notify at once) and other processes' commits.
        self._puts = 0
        self._seen: tuple[int, int] = (0, self._counted_at)

    def put(self, message: contract.Position | contract.VisitEvent | contract.TicketEvent
            | contract.QueueState | contract.Reading) -> None:
        """Store durably; returns once the row is on disk."""
        with self._lock:
            self._recount_if_others_wrote()
            cur = self.db.execute(
                "INSERT OR IGNORE INTO outbox (id, kind, payload, created) VALUES (?, ?, ?, ?)",
                [message.id, message.kind, message.to_json().decode(), message.ts.isoformat()],
            )
            self._rows += cur.rowcount
            if self._rows > self.max_rows:
                self._thin()
            self._puts += 1
            self._added.notify_all()

    def wait_for_rows(self, timeout: float) -> None:
        """Block until a row is put after the last `after` read (by this process: woken
        at once; by another: seen within OTHER_WRITERS_POLL_S), or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        with self._added:
            while (self._puts, self._data_version()) == self._seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._added.wait(min(left, OTHER_WRITERS_POLL_S))

    def last_seq(self) -> int:
        with self._lock:
            row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()
        return int(row[0])

    def after(self, seq: int, limit: int, upto: int | None = None) -> list[Row]:
        """Rows after `seq` (and up to `upto`), oldest first."""
        sql = "SELECT seq, kind, payload, id FROM outbox WHERE seq > ?"
        args: list[int] = [seq]
        if upto is not None:
            sql += " AND seq <= ?"
            args.append(upto)
        with self._lock:
            # Noted before reading: a commit in between wakes the next wait, never is missed.
            self._seen = (self._puts, self._data_version())
            rows = self.db.execute(sql + " ORDER BY seq LIMIT ?", [*args, limit]).fetchall()
        return [Row(*r) for r in rows]

    def remove(self, seqs: Iterable[int]) -> int:
        """Delete these rows (those still there: thinning may have taken some); how many."""
        seqs = list(seqs)
        if not seqs:
            return 0
        with self._lock:
            self._recount_if_others_wrote()
            cur = self.db.execute(
                f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(seqs))})", seqs
            )
            self._rows -= cur.rowcount
        return int(cur.rowcount)

    def count(self) -> int:
        """Rows waiting, whichever process put them."""
        with self._lock:
            self._recount_if_others_wrote()
            return self._rows

    def _data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def _recount_if_others_wrote(self) -> None:
        # The version is read before counting: a commit in between is counted now and
        # makes the next call count again, which is harmless; the reverse would miss it.
        version = self._data_version()
        if version != self._counted_at:
            self._counted_at = version
            self._rows = self._count()

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
