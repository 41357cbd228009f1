"""Databases written before schema versions (by commit fa45271, see tests/fixtures/) opened
by today's code: every row still there, the schema the one a new file gets, the version
recorded, and opening again changes nothing. A bus updated mid-tournée carries on."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from ground import eta_record, influx, store
from ground.alerts import DEFAULT_RULES, Alert, AlertEngine, AlertStorage
from ground.alerts import storage as alert_storage
from ground.fleet import load_fleet
from ground.state import LiveState
from medicobus import contract
from medicobus.clock import SystemClock
from medicobus.storage import Migrations, migrate, open_database, run_script
from onboard import outbox, plan
from onboard.kiosk import queue
from onboard.kiosk.matching import InputError
from tests.clocks import ManualClock
from tests.harness import FLEET, VEHICLE

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "databases_fa45271"
# The fixtures' scene: perche-1 at Nocé on Monday 23 November 2026 (09:30 Paris).
AT_NOCE = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
MIGRATIONS_TABLE = Migrations.migrations_table


class _Silent:
    def notify(self, event: str, alert: Alert) -> None:
        pass


def _open_ground(path: Path) -> None:
    """As the ground service opens ground.db: the store, then the alerts and the ETA
    record on its file."""
    db = store.Store(path)
    AlertEngine(DEFAULT_RULES, AlertStorage(path), LiveState(), load_fleet(FLEET),
                ManualClock(AT_NOCE), _Silent()).close()
    eta_record.EtaRecord(path).close()
    db.close()


def _open_spool(path: Path) -> None:
    settings = influx.InfluxSettings.model_validate({
        "url": "http://127.0.0.1:9", "org": "medicobus", "bucket": "telemetry",
        "token": "secret", "spool": path})  # fmt: skip
    beside = store.Store(":memory:")
    exporter = influx.InfluxExporter(settings, beside, SystemClock())
    exporter.stop(timeout=1)
    beside.close()


@dataclass(frozen=True)
class Kind:
    file: str
    open: Callable[[Path], None]
    sets: tuple[Migrations, ...]  # every set whose tables live in the file


KINDS = [
    Kind("outbox.db", lambda p: outbox.Outbox(p).close(), (outbox.migrations,)),
    Kind("plan.db", lambda p: plan.PlanStore(p).db.close(), (plan.migrations,)),
    Kind("kiosk.db",
         lambda p: queue.PatientQueue(p, None, VEHICLE, ManualClock(AT_NOCE)).close(),
         (queue.migrations,)),
    Kind("ground.db", _open_ground, (store.migrations, alert_storage.migrations,
                                     eta_record.migrations)),
    Kind("ground-influx-spool.db", _open_spool, (influx.migrations,)),
]


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the migrations' record, in a stable order."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != ?",
            [MIGRATIONS_TABLE])]
        return {t: sorted(conn.execute(f"SELECT * FROM [{t}]").fetchall(), key=repr)
                for t in tables}


def _schema(path: Path) -> set[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        return set(conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name != ?",
            [MIGRATIONS_TABLE]).fetchall())


def _record(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM [{MIGRATIONS_TABLE}] ORDER BY id").fetchall()


def _legacy(tmp_path: Path, name: str) -> Path:
    copy = tmp_path / "legacy" / name
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / name, copy)
    return copy


@pytest.mark.parametrize("kind", KINDS, ids=[k.file for k in KINDS])
def test_a_file_written_before_versions_is_adopted_with_every_row(
        tmp_path: Path, kind: Kind) -> None:
    legacy = _legacy(tmp_path, kind.file)
    rows, schema = _rows(legacy), _schema(legacy)
    assert MIGRATIONS_TABLE not in rows and sum(map(len, rows.values())) > 0
    kind.open(legacy)
    after = _rows(legacy)
    # Every row kept as it was; what later migrations added (tables, columns) is empty.
    assert {t: [r[:len(rows[t][0])] for r in after[t]] if rows[t] else after[t]
            for t in rows} == rows
    assert all(set(r[len(rows[t][0]):]) <= {None} for t in rows if rows[t] for r in after[t])
    assert all(after[t] == [] for t in after.keys() - rows.keys())
    fresh = tmp_path / "fresh" / kind.file
    fresh.parent.mkdir()
    kind.open(fresh)
    # The first migration of each set is the schema of before: a new file and an adopted
    # one are the same, and the adopted one kept every table and index it had.
    assert _schema(legacy) == _schema(fresh)
    assert {name for _, name, _ in schema} <= {name for _, name, _ in _schema(fresh)}
    db = open_database(legacy, synchronous="FULL")
    for migrations in kind.sets:
        every = [m.name for m in migrations.pending(Database(memory=True))]
        assert [m.name for m in migrations.applied(db)] == every
        assert migrations.pending(db) == []
    db.close()


@pytest.mark.parametrize("kind", KINDS, ids=[k.file for k in KINDS])
def test_opening_again_changes_nothing(tmp_path: Path, kind: Kind) -> None:
    legacy = _legacy(tmp_path, kind.file)
    kind.open(legacy)
    rows, schema, record = _rows(legacy), _schema(legacy), _record(legacy)
    kind.open(legacy)
    assert (_rows(legacy), _schema(legacy), _record(legacy)) == (rows, schema, record)


def test_the_alert_rows_of_ground_db_are_still_read(tmp_path: Path) -> None:
    path = _legacy(tmp_path, "ground.db")
    db = store.Store(path)
    engine = AlertEngine(DEFAULT_RULES, AlertStorage(path), LiveState(), load_fleet(FLEET),
                         ManualClock(AT_NOCE), _Silent())
    alerts = engine.history(VEHICLE, AT_NOCE - timedelta(days=1))
    assert [(a.rule, a.acknowledged_by, a.closed_at is None) for a in alerts] == [
        ("fridge_temp", "Dr Martin", True), ("fridge_temp", None, False)]
    assert db.count("dead_letters") == 2
    engine.close()
    db.close()


# ----- the kernel: sets sharing a file, concurrent openers, a failing migration ----------


def _step(sql: str) -> Callable[[Database], None]:
    return lambda db: run_script(db, sql)


def _set(name: str, *steps: str) -> Migrations:
    migrations = Migrations(name)
    for i, sql in enumerate(steps, 1):
        migrations(name=f"m{i:03d}")(_step(sql))
    return migrations


def test_independent_sets_share_a_file_and_grow_on_their_own(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first = _set("first", "CREATE TABLE a (x INTEGER);")
    second = _set("second", "CREATE TABLE b (y TEXT);")
    open_database(path, first, synchronous="FULL").close()
    db = open_database(path, synchronous="FULL")
    migrate(db, second)  # a module adding its own set to a file another opened
    db.execute("INSERT INTO a VALUES (1)")
    db.close()
    grown = _set("first", "CREATE TABLE a (x INTEGER);", "ALTER TABLE a ADD COLUMN z TEXT;")
    db = open_database(path, grown, second, synchronous="FULL")
    assert db.execute("SELECT x, z FROM a").fetchall() == [(1, None)]
    assert [(r[1], r[2]) for r in _record(path)] == [
        ("first", "m001"), ("second", "m001"), ("first", "m002")]
    db.close()


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    open_database(path, _set("s", "CREATE TABLE a (x INTEGER);"), synchronous="FULL").close()
    broken = _set("s", "CREATE TABLE a (x INTEGER);",
                  "CREATE TABLE c (x INTEGER); INSERT INTO nowhere VALUES (1);")
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        open_database(path, broken, synchronous="FULL")
    assert [r[2] for r in _record(path)] == ["m001"]
    assert "c" not in {t for _, t, _ in _schema(path)}


def _open_many(path: str, n: int) -> None:
    for _ in range(n):
        outbox.Outbox(path).close()


def test_two_processes_starting_together_apply_each_migration_once(tmp_path: Path) -> None:
    path = str(tmp_path / "outbox.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_many, args=(path, 20)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [(r[1], r[2]) for r in _record(Path(path))] == [("outbox", "m001_outbox")]


# ----- a bus updated mid-tournée ----------------------------------------------------------


@pytest.fixture
def bus_data(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "bus"
    data.mkdir()
    for name in ("outbox.db", "plan.db", "kiosk.db"):
        shutil.copy(FIXTURES / name, data / name)
    yield data


def test_a_bus_updated_mid_tournee_keeps_outbox_plan_queue_and_check_ins(
        bus_data: Path) -> None:
    with sqlite3.connect(bus_data / "outbox.db") as conn:
        waiting = conn.execute("SELECT seq, id FROM outbox ORDER BY seq").fetchall()
    clock = ManualClock(AT_NOCE + timedelta(minutes=30))

    plans = plan.PlanStore(bus_data / "plan.db")
    today = plans.load()
    booked = plans.load_appointments()
    assert today is not None and booked is not None
    assert (today.vehicle, today.day) == (VEHICLE, date(2026, 11, 23)) and today.visits
    first = today.visits[0]
    assert len(booked.items) == 4
    assert set(plans.progress()) == {(first.visit, "arrival")}

    box = outbox.Outbox(bus_data / "outbox.db")
    assert [(r.seq, contract.parse_uplink(r.payload).id) for r in box.after(0, 1000)] == waiting
    assert box.count() == len(waiting)

    q = queue.PatientQueue(bus_data / "kiosk.db", box, VEHICLE, clock)
    assert queue.current_visit(today, plans.progress(), clock.now()) == first
    q.open(first.visit, booked.items)  # the kiosk resumes its session after the update
    assert [(t.number, t.kind, t.status) for t in q.tickets()] == [
        (1, "walk_in", "seen"), (2, "walk_in", "waiting"), (3, "walk_in", "absent"),
        (4, "appointment", "called")]
    with pytest.raises(InputError):
        q.check_in_appointment(booked.items[0], "D.")  # checked in before the update
    assert q.check_in_appointment(booked.items[1], "E.").number == 5
    assert q.check_in_walk_in("F.", 1962, "renewal").number == 6
    # Nothing waiting was lost and what the kiosk says now queues behind it.
    after = box.after(0, 1000)
    assert [(r.seq, contract.parse_uplink(r.payload).id) for r in after[:len(waiting)]] \
        == waiting
    assert box.count() == len(after) > len(waiting)
    assert {r.kind for r in after[len(waiting):]} == {"ticket", "queue"}
    q.close()
    box.close()
