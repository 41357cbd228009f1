"""One way to open a SQLite file and bring its schema up to date, on the bus and the ground.

Every database file is opened by `open_database`: write-ahead log (readers never block the
writer, and a second process may write the same file), the synchronous level the caller
needs (FULL where a returned write must survive a power cut), a busy timeout (another
process holding the write lock is waited for, not an error), foreign keys enforced, and
autocommit: a statement commits on its own, several go together in `db.atomic()`.

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
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from sqlite_utils import Database, Migrations

__all__ = ["Database", "Migrations", "migrate", "open_database", "run_script"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


def open_database(path: Path | str, *migrations: Migrations, synchronous: Synchronous,
                  busy_timeout_s: float = 5.0) -> Database:
    """Open (creating if need be) the SQLite file at `path` and apply the pending
    migrations of each set. The connection may be used from several threads, one at a
    time (callers hold their own lock)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                           timeout=busy_timeout_s)
    db = Database(conn)
    db.enable_wal()
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA foreign_keys=ON")
    migrate(db, *migrations)
    return db


def migrate(db: Database, *migrations: Migrations) -> None:
    """Apply the pending migrations of each set, in order.

    All under one write lock taken first (`BEGIN IMMEDIATE`): the agent and the kiosk open
    the same files at the same start, and each must see the other's record, not run a
    migration a second time. sqlite-utils runs each migration in a savepoint within it, so
    a failing one leaves the file as it was."""
    with _write_lock(db):
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
def _write_lock(db: Database) -> Iterator[None]:
    # Not db.atomic(): its plain BEGIN takes the write lock only at the first write, and a
    # read-then-write transaction cannot wait for another writer in WAL mode (SQLITE_BUSY
    # at once, the busy timeout does not apply).
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")
