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

A full disk (the card filled by logs, a core dump, weeks offline): positions are a series,
the next one says where the bus is, but an arrival, a ticket, a queue state or a reading
(the fridge's log) said once is not said again. So the outbox keeps a reserve beside its
file (`outbox.db.reserve`, `reserve_mb` allocated on the disk, shared by the agent and the
kiosk). When a put fails for want of space (SQLITE_FULL) the outbox is *full*: the reserve
is freed for what is not a position, positions are refused and counted (`refused`, by
kind; the agent reports it to the ground). A failed insert leaves nothing behind (SQLite
rolls the statement back). Thinning old positions would not make room: deleting rows needs
room in the write-ahead log too. Once the disk has room for the reserve and as much
again, the reserve is made again and positions are stored again. What still cannot be
stored raises `OutboxFull`.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medicobus import contract
from medicobus.storage import Database, Migrations, open_database, run_script

log = logging.getLogger(__name__)

# How soon a waiting link sees rows another process put: a PRAGMA every 50 ms is a few
# microseconds of work, and a check-in's ticket is on its way well within a second.
OTHER_WRITERS_POLL_S = 0.05

# What a full disk may refuse: positions (a series: the next one tells where the bus is).
EXPENDABLE = frozenset({"position"})
DEFAULT_RESERVE_MB = 32.0  # a few thousand events while the write-ahead log grows, far more after

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


class OutboxFull(Exception):
    """A message that is not a position could not be stored: the disk is full and the
    reserve is used up."""


Message = (contract.Position | contract.VisitEvent | contract.TicketEvent
           | contract.QueueState | contract.Reading | contract.VisitSummary)  # fmt: skip


class Outbox:
    def __init__(self, path: Path | str, max_rows: int = 200_000,
                 reserve_mb: float = DEFAULT_RESERVE_MB) -> None:
        self.path = Path(path)
        self.max_rows = max_rows
        # One connection per process, shared by its writers and (in the agent) the link.
        self.db = open_database(self.path, migrations, synchronous="FULL")
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self.thinned = 0
        self.refused: Counter[str] = Counter()  # by kind, for want of disk space
        self.reserve = _Reserve(self.path.with_name(self.path.name + ".reserve"),
                                int(reserve_mb * 1024 * 1024))
        self.full = not self.reserve.make()
        if self.full:
            log.error("no room on the disk for the outbox's reserve (%s): positions are "
                      "refused until there is", self.reserve.path)
        # The row count as of data version `_counted_at`, plus this process's own changes
        # since (which do not change the data version): counting on every put is O(n).
        self._counted_at = self._data_version()
        self._rows = self._count()
        # What the link last read, to tell whether anything was put since: this process's
        # puts (a counter, they notify at once) and other processes' commits.
        self._puts = 0
        self._seen: tuple[int, int] = (0, self._counted_at)

    def put(self, message: Message) -> bool:
        """Store durably; returns once the row is on disk: True, or False for a position
        refused because the disk is full. Raises OutboxFull when anything else cannot be
        stored even with the reserve."""
        expendable = message.kind in EXPENDABLE
        with self._lock:
            if self.full:
                self._resume_if_room()
            if self.full and expendable:
                return self._refuse(message)
            if self._stored(message):
                return True
            self._become_full()
            if expendable:
                return self._refuse(message)
            if self._stored(message):  # with the reserve freed
                return True
            self._rollback()
            self.refused[message.kind] += 1
            log.error("the disk is full and so is the outbox's reserve: a %s could not be "
                      "stored", message.kind)
            raise OutboxFull(f"no room on the disk for a {message.kind}")

    def _insert(self, message: Message) -> None:
        self._recount_if_others_wrote()
        try:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO outbox (id, kind, payload, created) VALUES (?, ?, ?, ?)",
                [message.id, message.kind, message.to_json().decode(), message.ts.isoformat()],
            )
        except sqlite3.OperationalError:
            self._rollback()
            raise
        self._rows += cur.rowcount
        self._puts += 1
        self._added.notify_all()
        if self._rows > self.max_rows:
            self._thin()

    def _rollback(self) -> None:
        # SQLite may leave the connection in a transaction after SQLITE_FULL.
        if self.db.conn.in_transaction:
            self.db.conn.rollback()

    def _refuse(self, message: Message) -> bool:
        self.refused[message.kind] += 1
        n = self.refused[message.kind]
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th...: a full disk does not flood the log
            log.warning("disk full: %d %s(s) refused so far", n, message.kind)
        return False

    def _stored(self, message: Message) -> bool:
        """Insert `message`; False when the disk is full (any other error raises)."""
        try:
            self._insert(message)
            return True
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            return False

    def _become_full(self) -> None:
        self._rollback()
        if not self.full:
            log.error("disk full under %s: the outbox's reserve is freed for events, "
                      "positions are refused until there is room again", self.path.parent)
        self.full = True
        self.reserve.free()

    def _resume_if_room(self) -> None:
        if self.reserve.make():
            self.full = False
            log.warning("room on the disk again: positions are stored again (%d refused)",
                        self.refused["position"])

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


def _disk_full(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL


class _Reserve:
    """Disk space held for the outbox's events: a file of `size` bytes allocated on the
    disk (not sparse), freed when the disk is full."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def make(self) -> bool:
        """Allocate it (if it is not already); False when the disk has no room for it and
        as much again (a process starting on a full disk must not take back what another
        freed for its events)."""
        if not self.path.exists() and shutil.disk_usage(self.path.parent).free < 2 * self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            os.posix_fallocate(fd, 0, self.size)
            os.fsync(fd)
            return True
        except OSError:
            os.close(fd)
            fd = -1
            self.free()  # a half-made reserve would only hold what the events need
            return False
        finally:
            if fd >= 0:
                os.close(fd)

    def free(self) -> None:
        self.path.unlink(missing_ok=True)
