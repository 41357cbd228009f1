"""A damaged SQLite file at start (a power cut while the SD card wrote, a worn card): every
kind of file the bus and the ground keep, damaged three ways (garbage bytes, a truncated
file, a page in the middle overwritten), is set aside as it was (renamed with the time,
never deleted), logged at ERROR, and a new file is made in its place that works. Through
the real processes: the agent (`medicobus onboard`) sets aside its outbox and plan and
reports them, with the kiosk's, to the real ground over Mosquitto, which opens an alert;
the ground (`medicobus ground`) sets aside its own database and says so on the dashboard."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ground.alerts import AlertStorage
from ground.store import Store
from medicobus import contract
from medicobus.brokers import Mosquitto, free_port
from medicobus.storage import SET_ASIDE, open_database, set_aside, set_aside_at
from onboard.kiosk.queue import PatientQueue
from onboard.outbox import Outbox
from onboard.plan import PlanStore
from tests.clocks import ManualClock
from tests.harness import FLEET, MONDAY_8AM, VEHICLE, position, wait_until
from tests.test_fleet_pages import FleetScene, login

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]
PAGE = 4096


def _outbox(path: Path) -> None:
    box = Outbox(path, reserve_mb=1)
    for i in range(1500):
        box.put(position(i))
    box.close()


def _plan(path: Path) -> None:
    store = PlanStore(path)
    for i in range(1500):
        store.mark(f"2026-11-23/stop-{i:04d}/am", "arrival", MONDAY_8AM)
    store.db.close()


def _kiosk(path: Path) -> None:
    queue = PatientQueue(path, None, VEHICLE, ManualClock(MONDAY_8AM))
    for i in range(1500):  # a file of many pages
        queue.open(f"2026-11-23/stop-{i:04d}/am")
    queue.db.close()


def _ground(path: Path) -> None:
    store = Store(path)
    store.record([(position(i), MONDAY_8AM) for i in range(1500)])
    AlertStorage(path).close()
    store.close()


# Each opener writes one row through the module's own API and says how many it found.

def _open_outbox(path: Path) -> int:
    box = Outbox(path, reserve_mb=1)
    found = box.count()
    assert box.put(position(found)) and box.count() == found + 1
    box.close()
    return found


def _open_plan(path: Path) -> int:
    store = PlanStore(path)
    found = len(store.progress())
    store.mark(f"v{found}", "arrival", MONDAY_8AM)
    assert len(store.progress()) == found + 1
    store.db.close()
    return found


def _open_kiosk(path: Path) -> int:
    queue = PatientQueue(path, None, VEHICLE, ManualClock(MONDAY_8AM))
    found = int(queue.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])
    queue.open(f"2026-11-23/noce-{found}/am")
    queue.db.close()
    return found


def _open_ground(path: Path) -> int:
    store = Store(path)  # then the alerts on the same file, as the service opens it
    alerts = AlertStorage(path)
    found = store.count("positions")
    store.record([(position(found), MONDAY_8AM)])
    assert store.count("positions") == found + 1
    assert alerts.open_alerts() == []
    alerts.close()
    store.close()
    return found


KINDS: dict[str, tuple[Callable[[Path], None], Callable[[Path], int]]] = {
    "outbox.db": (_outbox, _open_outbox),
    "plan.db": (_plan, _open_plan),
    "kiosk.db": (_kiosk, _open_kiosk),
    "ground.db": (_ground, _open_ground),
}


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2 + 100)


def page_overwritten(path: Path) -> None:
    middle = path.stat().st_size // PAGE // 2
    with path.open("r+b") as f:
        f.seek(middle * PAGE)
        f.write(os.urandom(PAGE))


DAMAGES = [garbage, truncated, page_overwritten]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", list(KINDS))
def test_a_damaged_file_is_set_aside_and_a_new_one_works(
        tmp_path: Path, name: str, damage: Callable[[Path], None],
        caplog: pytest.LogCaptureFixture) -> None:
    make, use = KINDS[name]
    path = tmp_path / name
    make(path)
    assert not path.with_name(name + "-wal").exists()  # closed cleanly: all in the file
    damage(path)
    damaged = path.read_bytes()
    caplog.set_level(logging.ERROR, logger="medicobus.storage")
    assert use(path) == 0  # a new, empty file
    [aside] = set_aside(tmp_path)
    assert aside.name.startswith(name + SET_ASIDE)
    assert aside.read_bytes() == damaged  # kept as it was, for whoever recovers it
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0] and aside.name in errors[0]
    assert use(path) == 1  # the new file is sound: opened again, nothing set aside
    assert set_aside(tmp_path) == [aside]


def test_a_sound_file_is_opened_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    _outbox(path)
    assert Outbox(path, reserve_mb=1).count() == 1500
    assert set_aside(tmp_path) == []


def test_the_log_is_set_aside_with_its_file(tmp_path: Path) -> None:
    """A damaged file's write-ahead log would be replayed into the new file: it goes with
    it (a process killed with its log not yet checkpointed)."""
    path = tmp_path / "outbox.db"
    _outbox(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO outbox (id, kind, payload, created) VALUES "
                   "('x', 'position', '{}', '')")
    wal = path.with_name("outbox.db-wal")
    kept = wal.read_bytes()
    assert kept  # the row is in the log only
    garbage(path)
    _open_outbox(path)
    [aside] = set_aside(tmp_path)
    assert aside.with_name(aside.name + "-wal").read_bytes() == kept
    writer.close()


def test_two_processes_opening_one_damaged_file_set_it_aside_once(tmp_path: Path) -> None:
    """The agent and the kiosk start together and both open outbox.db."""
    path = tmp_path / "outbox.db"
    _outbox(path)
    garbage(path)
    code = ("import sys; from onboard.outbox import Outbox; "
            "b = Outbox(sys.argv[1], reserve_mb=1); print(b.count()); b.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=30)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0] and outs == ["0"] * 4
    assert len(set_aside(tmp_path)) == 1


def test_a_locked_file_is_not_taken_for_a_damaged_one(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    PlanStore(path).db.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        open_database(path, synchronous="FULL", busy_timeout_s=0.2)
    holder.execute("ROLLBACK")
    holder.close()
    assert set_aside(tmp_path) == []


class Process:
    """A medicobus command in a process of its own, its log lines gathered from stderr."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "medicobus.cli", *args], cwd=ROOT,
                                     stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return err


def _errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line]


def test_the_bus_and_the_ground_set_aside_their_damaged_files_and_the_ground_hears(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    bus, base = tmp_path / "bus", tmp_path / "ground"
    bus.mkdir()
    base.mkdir()
    damaged: dict[Path, bytes] = {}
    for path, make, damage in [(bus / "outbox.db", _outbox, garbage),
                               (bus / "plan.db", _plan, truncated),
                               (bus / "kiosk.db", _kiosk, page_overwritten),
                               (base / "ground.db", _ground, garbage)]:
        make(path)
        damage(path)
        damaged[path] = path.read_bytes()
    (bus / "onboard.toml").write_text(
        f'vehicle = "{VEHICLE}"\ndata_dir = "{bus}"\n[broker]\nport = {mosquitto.port}\n'
        f"[gps]\nport = {free_port()}\ntimeout_s = 0.5\n")  # no gpsd: the agent runs anyway
    (base / "ground.toml").write_text(
        f'fleet = "{FLEET}"\ndatabase = "{base / "ground.db"}"\n'
        f"[broker]\nport = {mosquitto.port}\n[http]\nport = {free_port()}\n")

    # The kiosk opens its queue as `medicobus kiosk` does, in a process of its own (its
    # Textual screen is not run: there is no terminal here).
    kiosk = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from medicobus.clock import SystemClock; from onboard.kiosk.queue import "
         "PatientQueue; PatientQueue(Path(sys.argv[1]), None, 'perche-1', SystemClock())",
         str(bus / "kiosk.db")], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert kiosk.returncode == 0 and len(_errors(kiosk.stderr)) == 0  # logging not set up
    ground_proc = Process("ground", "--config", str(base / "ground.toml"))
    # The ground publishes the bus's plan once subscribed: before it, the bus's first
    # messages would wait for the ground's persistent session (docs/architecture.md).
    subprocess.run(["mosquitto_sub", "-p", str(mosquitto.port), "-C", "1", "-W", "30", "-t",
                    contract.topic(VEHICLE, contract.Channel.PLAN)], check=True,
                   capture_output=True, timeout=40)
    agent = Process("onboard", "--config", str(bus / "onboard.toml"))
    stopped: dict[str, str] = {}
    try:
        def alerts() -> set[str]:
            db = sqlite3.connect(f"file:{base / 'ground.db'}?mode=ro", uri=True)
            try:
                return {k for (k,) in db.execute("SELECT key FROM alerts WHERE closed_at "
                                                 "IS NULL AND rule = 'trouble_code'")}
            except sqlite3.DatabaseError:  # not set aside yet, or no table yet
                return set()
            finally:
                db.close()

        wanted = {"storage:set_aside_outbox", "storage:set_aside_plan",
                  "storage:set_aside_kiosk"}
        wait_until(lambda: alerts() == wanted, timeout=60,
                   what="the ground's alerts for the bus's damaged files")
    finally:
        stopped["agent"] = agent.stop()
        stopped["ground"] = ground_proc.stop()

    for path, content in damaged.items():
        [aside] = set_aside(path.parent) if path.parent == base else [
            p for p in set_aside(bus) if p.name.startswith(path.name)]
        assert aside.read_bytes() == content
    agent_errors = _errors(stopped["agent"])
    assert [e for e in agent_errors if "is damaged" in e and "outbox.db" in e]
    assert [e for e in agent_errors if "is damaged" in e and "plan.db" in e]
    assert [e for e in _errors(stopped["ground"]) if "is damaged" in e and "ground.db" in e]
    assert len(set_aside(bus)) == 3 and len(set_aside(base)) == 1  # once each


def test_a_damaged_queue_file_goes_with_its_check_ins_retention(tmp_path: Path) -> None:
    """Privacy first: the kiosk's file holds patients' initials, birth years and reasons,
    kept 24 hours at most (docs/privacy.md); set aside, it is kept as long, not forever."""
    path = tmp_path / "kiosk.db"
    _kiosk(path)
    page_overwritten(path)
    clock = ManualClock(MONDAY_8AM)
    queue = PatientQueue(path, None, VEHICLE, clock, retention=timedelta(hours=24))
    [aside] = set_aside(tmp_path)
    assert set_aside_at(aside) == MONDAY_8AM
    clock.advance(23 * 3600)
    queue.purge()
    assert set_aside(tmp_path) == [aside]
    clock.advance(3600 + 1)
    queue.purge()
    assert set_aside(tmp_path) == [] and not list(tmp_path.glob("*" + SET_ASIDE + "*"))
    queue.close()


def test_the_other_files_set_aside_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    _plan(path)
    garbage(path)
    clock = ManualClock(MONDAY_8AM)
    PlanStore(path).db.close()
    queue = PatientQueue(tmp_path / "kiosk.db", None, VEHICLE, clock)
    clock.advance(30 * 86_400)
    queue.purge()
    assert [p.name.split(SET_ASIDE)[0] for p in set_aside(tmp_path)] == ["plan.db"]
    queue.close()


def test_the_fleet_page_says_the_ground_database_was_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "ground.db"
    _ground(path)
    truncated(path)
    scene = FleetScene(path)
    [aside] = set_aside(tmp_path)
    with TestClient(scene.app()) as client:
        login(client)
        page = client.get("/fleet/").text
    assert "Base de données du sol endommagée" in page and aside.name in page
    scene.store.close()
    healthy = FleetScene(tmp_path / "other" / "ground.db")
    with TestClient(healthy.app()) as client:
        login(client)
        assert 'id="set-aside"' not in client.get("/fleet/").text
    healthy.store.close()
