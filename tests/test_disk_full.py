"""The bus's disk full, on a real small filesystem (tests/small_disk.py) holding the bus's
data directory: positions are refused and counted, events (arrival/departure, tickets,
queue states) and readings are kept through the outbox's reserve, nothing is half-stored,
the agent keeps running, says so to the ground, and all goes back to normal once there is
room again."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ground.alerts import AlertStorage
from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.clock import AcceleratedClock
from medicobus.geo import offset
from medicobus.mqtt import BrokerSettings
from onboard.agent import Agent
from onboard.config import (
    GeofenceSettings,
    GpsSettings,
    OnboardSettings,
    OutboxSettings,
    ReportSettings,
)
from onboard.kiosk.queue import PatientQueue
from onboard.outbox import Outbox, OutboxFull
from onboard.telemetry.fix import Fix
from tests.harness import MONDAY_8AM, VEHICLE, clock_at, ground, position, stored_ids, wait_until
from tests.kiosk_writer import ticket
from tests.small_disk import SmallDisk, small_disk
from tests.test_outbox_processes import Kiosk

pytestmark = pytest.mark.timeout(180)
VISIT = "2026-11-23/noce/am"
NOCE = (48.3838, 0.6783)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", size_mb=48) as d:
        yield d


def events() -> list[contract.VisitEvent | contract.TicketEvent | contract.QueueState
                     | contract.Reading]:
    at = MONDAY_8AM
    return [
        contract.VisitEvent(vehicle=VEHICLE, ts=at, event="arrival", visit=VISIT,
                            stop="noce", lat=48.3838, lon=0.6783),
        ticket(1),
        contract.QueueState(vehicle=VEHICLE, ts=at, visit=VISIT, open=True, waiting=1,
                            consult_min=15.0, wait_min=15),
        contract.Reading(vehicle=VEHICLE, ts=at, sensor="fridge", values={"temp_c": 4.5}),
    ]  # fmt: skip


def stored(box: Outbox) -> list[str]:
    return [r.id for r in box.after(0, 100_000)]


def test_positions_are_refused_and_events_kept_until_there_is_room(
        disk: SmallDisk, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(disk.path / "outbox.db", reserve_mb=4)
    assert box.reserve.path.stat().st_blocks * 512 >= 4 * 2**20  # allocated, not sparse
    assert all(box.put(position(i)) for i in range(100))
    disk.fill()
    caplog.set_level(logging.WARNING, logger="onboard.outbox")

    # Room may be left in the write-ahead log (reused once checkpointed): until it is used
    # up, a full disk still takes rows.
    first = next(i for i in range(100, 20_000) if not box.put(position(i)))
    assert box.full and not box.reserve.path.exists()
    kept = events()
    for i in range(first + 1, first + 40):
        assert box.put(position(i)) is False  # refused at once, the reserve left alone
    for message in kept:
        assert box.put(message) is True
    assert box.refused == {"position": 40}
    assert stored(box) == [position(i).id for i in range(first)] + [m.id for m in kept]
    assert box.count() == first + 4
    assert any(r.levelno == logging.ERROR and "disk full" in r.getMessage()
               for r in caplog.records)
    assert sum("refused so far" in r.getMessage() for r in caplog.records) == 6  # 1,2,4..32

    disk.make_room()
    assert box.put(position(200)) is True
    assert not box.full and box.reserve.path.exists()
    assert stored(box)[-1] == position(200).id
    box.close()
    check = sqlite3.connect(disk.path / "outbox.db")
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    check.close()


def test_past_the_reserve_events_are_refused_whole_and_said_so(disk: SmallDisk) -> None:
    box = Outbox(disk.path / "outbox.db", reserve_mb=1)
    assert all(box.put(position(i)) for i in range(3000))
    disk.fill()
    assert not all(box.put(position(i)) for i in range(3000, 20_000))
    put = 0
    with pytest.raises(OutboxFull):
        for i in range(100_000):
            box.put(ticket(i))
            put += 1
    assert put > 10  # the reserve of 1 MB took some (its write-ahead log grows first)
    assert box.refused["ticket"] == 1
    tickets = [i for i in stored(box) if i.startswith("tkt")]
    assert tickets == [ticket(i).id for i in range(put)]  # every one that returned, and
    assert box.count() == len(stored(box))  # no other: nothing half-stored
    disk.make_room()
    assert box.put(ticket(put)) and box.put(position(4000))
    assert stored(box)[-2:] == [ticket(put).id, position(4000).id]
    box.close()


Step = tuple[float, float] | Callable[[], object]  # (metres east of Nocé, speed) or an action


class Drive:
    """The bus's GPS receiver: each read is the next fix of `script` stamped with the
    clock's time, or an action of the test run at that point; it waits for the day's plan
    first and sets `done` at the end."""

    def __init__(self, clock: AcceleratedClock, script: list[Step],
                 ready: Callable[[], bool]) -> None:
        self.clock = clock
        self.script = list(script)
        self.ready = ready
        self.done = threading.Event()
        self.fixes: list[tuple[str, Fix]] = []  # (phase, fix)
        self.phase = "before"

    def read(self) -> Fix | None:
        if not self.ready():
            return None
        if not self.script:
            self.done.set()
            return None
        item = self.script.pop(0)
        if callable(item):
            item()
            return None
        east_m, speed = item
        lat, lon = offset(*NOCE, east_m, 0.0)
        fix = Fix(self.clock.now(), lat, lon, speed=speed, acc=5.0)
        self.fixes.append((self.phase, fix))
        return fix

    def close(self) -> None:
        pass


def test_the_agent_rides_out_a_full_disk_and_the_ground_hears_of_it(
        tmp_path: Path, disk: SmallDisk, mosquitto: Mosquitto) -> None:
    clock = clock_at()
    service = ground(tmp_path, mosquitto.port, clock)
    settings = OnboardSettings(
        vehicle=VEHICLE, data_dir=disk.path, broker=BrokerSettings(port=mosquitto.port),
        gps=GpsSettings(poll_s=0.2), outbox=OutboxSettings(reserve_mb=4),
        report=ReportSettings(min_interval_s=0.1, distance_m=1.0),
        geofence=GeofenceSettings(dwell_s=2.0),
    )  # fmt: skip
    kiosk: Kiosk | None = None

    def phase(name: str, action: Callable[[], object] = lambda: None) -> Callable[[], None]:
        def run() -> None:
            action()
            drive.phase = name
        return run

    def tickets_at_the_kiosk() -> None:
        nonlocal kiosk
        kiosk = Kiosk(disk.path / "outbox.db")  # a process of its own, as on the bus
        assert kiosk.ask("put 0 5") == "done"

    full_report = lambda: service.store.db.execute(  # noqa: E731
        "SELECT COUNT(*) FROM readings WHERE sensor = 'storage' AND codes LIKE '%disk_full%'"
    ).fetchone()[0] > 0

    script: list[Step] = [
        phase("room"),
        *[(-300.0 + 5 * i, 10.0) for i in range(10)],  # driving towards Nocé
        phase("full", disk.fill),
        *[(-250.0 + 5 * i, 10.0) for i in range(40)],
        *[(-50.0, 0.0)] * 15,  # parked at Nocé: arrives after the dwell
        tickets_at_the_kiosk,
        lambda: wait_until(full_report, what="the ground told of the full disk"),
        phase("room again", disk.make_room),
        *[(-50.0 + 5 * i, 10.0) for i in range(50)],  # leaves: departure past 180 m
    ]
    agent: Agent | None = None
    drive = Drive(clock, script, ready=lambda: agent is not None
                  and agent.visits.plan is not None)
    agent = Agent(settings, drive, clock)
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert drive.done.wait(90), "the agent's loop stopped before the end of the drive"
        assert loop.is_alive() and agent.step_errors == 0
        wait_until(lambda: agent.outbox.count() == 0 and len(stored_ids(service, "events")) == 2,
                   what="everything the bus kept, at the ground")
        wait_until(lambda: service.store.db.execute(
            "SELECT COUNT(*) FROM readings WHERE sensor = 'storage' AND codes = '[]'"
        ).fetchone()[0] > 0, what="the ground told the disk has room again")

        # Events kept: the arrival while the disk was full, the departure after, the tickets.
        events = service.store.db.execute("SELECT event, visit FROM events ORDER BY ts").fetchall()
        assert events == [("arrival", VISIT), ("departure", VISIT)]
        assert sorted(stored_ids(service, "tickets")) == [ticket(i).id for i in range(5)]
        # Positions: what was refused is counted, and only the full disk's are missing.
        at_ground = {r[0] for r in service.store.db.execute("SELECT ts FROM positions")}
        sent = {ph: [f.ts.isoformat() for p, f in drive.fixes if p == ph]
                for ph in ("room", "full", "room again")}
        assert set(sent["room"]) <= at_ground
        assert not set(sent["full"]) & at_ground  # the log had no room left either
        # Each of the 40 fixes driving was due (5 m apart), then the stop and the arrival.
        assert 40 <= agent.outbox.refused["position"] <= len(sent["full"])
        assert len(set(sent["room again"]) & at_ground) >= 40  # moving again: stored again
        # The fleet manager was told: an alert opened for the full disk, closed with room.
        alerts = AlertStorage(service.settings.database)
        [full] = [a for a in alerts.history(VEHICLE, since=MONDAY_8AM - timedelta(days=1))
                  if a.key == "storage:disk_full"]
        alerts.close()
        assert full.closed_at is not None
    finally:
        stop.set()
        loop.join(timeout=15)
        if kiosk is not None:
            kiosk.close()
        service.stop()


def test_a_check_in_on_a_full_disk_still_gives_the_patient_a_ticket(
    disk: SmallDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The kiosk's own file has room, the outbox has none left (its reserve used up): the
    ticket is given and kept, staff can read it in the log, and the queue reaches the
    ground once there is room again."""
    box = Outbox(disk.path / "outbox.db", reserve_mb=1)
    queue = PatientQueue(tmp_path / "kiosk.db", box, VEHICLE, clock_at())
    queue.open(VISIT)
    disk.fill()
    with pytest.raises(OutboxFull):
        for i in range(100_000):
            box.put(ticket(i))
    with caplog.at_level(logging.ERROR, logger="onboard.kiosk.queue"):
        first = queue.check_in_walk_in("JD", 1944, "renewal")
    assert first.number == 1 and [t.number for t in queue.waiting()] == [1]
    assert queue.unsent == 1 and "outbox is full" in caplog.text
    disk.make_room()
    second = queue.check_in_walk_in("MB", 1939, "renewal")
    queues = [r.payload for r in box.after(0, 200_000) if r.kind == "queue"]
    assert second.number == 2 and json.loads(queues[-1])["waiting"] == 2
    box.close()
    queue.db.close()
