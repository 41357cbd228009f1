"""One way to open a SQLite file and bring its schema up to date, on the bus and the ground.

Every database file is opened by `open_database`: write-ahead log (readers never block the
writer, and a second process may write the same file), the synchronous level the caller
needs (FULL where a returned write must survive a power cut), a busy timeout (another
process holding the write lock is waited for, not an error), foreign keys enforced, and
autocommit: a statement commits on its own, several go together in `write_transaction(db)`.

Schemas are versioned with sqlite-utils' named migrations (`sqlite_utils.Migrations`, the
former sqlite-migrate, part of sqlite-utils since 4.0): each module that owns tables
declares its own migration set, named after it, and a set's migrations are named and
applied in order, each once, recorded in the file's `_sqlite_migrations` table. One file
may hold several independent sets (ground.db: the store's and the alerts'): pass them all
to `open_database`, or call `migrate` on an opened database with a module's own set.

The first migration of every set is the schema as it was before versions, written with
`IF NOT EXISTS`: on a file a bus or a ground wrote before (its tables there, no version
recorded) it leaves tables and rows as they are and records the version, so the files in
service are adopted; on a new file it creates them. Later migrations change the schema for
real (plain `CREATE`, `ALTER`, or sqlite-utils' `table.transform`).

A damaged file (a power cut while an SD card wrote, a card wearing out) is found on open:
`PRAGMA quick_check` on every open, before anything else touches the file. A file that is
not a database or fails the check is set aside with its `-wal` and `-shm` (renamed
`<name>.corrupt-<UTC time>`, not deleted: someone may recover rows from it; only the
kiosk deletes its own once past the check-ins' retention, `delete_set_aside`), logged at
ERROR, and a new file is made in its place: the bus and the ground keep running, and
`set_aside` lists what was set aside so that it can be reported. The check and the rename
are done under a lock on the directory (`flock`, not a lock on the file: closing any
descriptor of a SQLite file drops the process's POSIX locks on it), so that two processes
opening the same damaged file set it aside once, never the new one the other just made.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlite_utils import Database, Migrations

from medicobus.clock import Clock, SystemClock

__all__ = ["Database", "Migrations", "damaged", "delete_set_aside", "migrate", "open_database",
           "run_script", "set_aside", "set_aside_at"]

log = logging.getLogger(__name__)

SET_ASIDE = ".corrupt-"  # between a file's name and the time it was set aside
_STAMP = "%Y%m%dT%H%M%SZ"
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


def open_database(path: Path | str, *migrations: Migrations, synchronous: Synchronous,
                  busy_timeout_s: float = 5.0, clock: Clock | None = None) -> Database:
    """Open (creating if need be) the SQLite file at `path`, setting it aside first if it
    is damaged, and apply the pending migrations of each set. The connection may be used
    from several threads, one at a time (callers hold their own lock)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _set_aside_if_damaged(Path(path), busy_timeout_s, clock or SystemClock())
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                           timeout=busy_timeout_s)
    db = Database(conn)
    _enable_wal(db, busy_timeout_s)
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA foreign_keys=ON")
    migrate(db, *migrations)
    return db


def _enable_wal(db: Database, timeout_s: float) -> None:
    """WAL mode, waiting for another process that holds the file: switching the journal
    mode can fail at once with "database is locked" (its busy handler not called) while
    another process creates the same file, as two started together do."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def set_aside(directory: Path | str) -> list[Path]:
    """The files set aside as damaged in `directory`, oldest first (their names sort by
    time); not their `-wal` and `-shm`."""
    found = Path(directory).glob(f"*{SET_ASIDE}*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm")))


def set_aside_at(path: Path) -> datetime:
    """When the file `path` (one `set_aside` lists) was set aside, by its name."""
    stamp = path.name.split(SET_ASIDE, 1)[1][:16]
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)


def delete_set_aside(path: Path) -> None:
    """Delete a file set aside, with its -wal and -shm: for data that must not outlive its
    retention (the kiosk's check-ins), never for the rest."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is bad (corrupt, or not a database)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _DAMAGED


def _set_aside_if_damaged(path: Path, busy_timeout_s: float, clock: Clock) -> None:
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        problem = _check(path, busy_timeout_s)
        if problem is None:
            return
        stamp = clock.now().strftime(_STAMP)
        target = path.with_name(f"{path.name}{SET_ASIDE}{stamp}")
        n = 1
        while target.exists():  # set aside twice in one second: both kept
            n += 1
            target = path.with_name(f"{path.name}{SET_ASIDE}{stamp}-{n}")
        for suffix in ("-wal", "-shm", ""):  # the log first: never replayed into a new file
            part = path.with_name(path.name + suffix)
            if part.exists():
                part.rename(target.with_name(target.name + suffix))
        log.error("%s is damaged (%s): set aside as %s, a new one is made in its place",
                  path, problem, target.name)
    finally:
        os.close(directory)  # releases the lock


def _check(path: Path, busy_timeout_s: float) -> str | None:
    """What is wrong with the file at `path`, or None when it is sound (or absent)."""
    if not path.exists() or path.stat().st_size == 0:
        return None  # SQLite's own view of an empty file: a new database
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if not damaged(exc):
            raise  # locked, I/O: not the file's fault, not a reason to set it aside
        return str(exc)
    finally:
        conn.close()
    result = "; ".join(str(r[0]) for r in rows[:3])
    return None if result == "ok" else result


def migrate(db: Database, *migrations: Migrations) -> None:
    """Apply the pending migrations of each set, in order.

    All under one write lock taken first (`BEGIN IMMEDIATE`): the agent and the kiosk open
    the same files at the same start, and each must see the other's record, not run a
    migration a second time. sqlite-utils runs each migration in a savepoint within it, so
    a failing one leaves the file as it was."""
    with write_transaction(db):
        for m in migrations:
            m.apply(db)


def run_script(db: Database, sql: str) -> None:
    """Run `sql` (several statements) inside the current transaction: a migration's body.

    Hand-written because sqlite3's `executescript` commits any open transaction first,
    which would break the migration's atomicity and the write lock of `migrate`."""
    *pieces, rest = sql.split(";")
    statement = ""
    for piece in pieces:
        statement += piece + ";"
        if sqlite3.complete_statement(statement):  # not a ";" in a comment or a string
            db.execute(statement)
            statement = ""
    if (statement + rest).strip():
        raise ValueError(f"incomplete SQL statement: {(statement + rest).strip()!r}")


@contextmanager
def write_transaction(db: Database) -> Iterator[None]:
    """Statements that go together, all or none, under the write lock taken first.

    Not `db.atomic()`: its plain BEGIN takes the write lock only at the first write, and a
    transaction that has read first (sqlite-utils' `upsert` reads the table's columns)
    cannot then wait for another writer in WAL mode: SQLITE_BUSY at once, the busy timeout
    does not apply. `BEGIN IMMEDIATE` waits for the lock up to the busy timeout instead."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")
