"""The bus's disk full, on a real small filesystem (tests/small_disk.py) holding the bus's
data directory: positions are refused and counted, events (arrival/departure, tickets,
queue states) and readings are kept through the outbox's reserve, nothing is half-stored,
the agent keeps running, says so to the ground, and all goes back to normal once there is
room again."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings
from onboard.agent import Agent
from onboard.config import GeofenceSettings, GpsSettings, OnboardSettings, OutboxSettings, \
    ReportSettings
from onboard.outbox import Outbox, OutboxFull
from onboard.telemetry.fix import Fix
from tests.clocks import ManualClock
from tests.harness import MONDAY_8AM, VEHICLE, clock_at, ground, position, stored_ids, \
    wait_until
from tests.kiosk_writer import ticket
from tests.small_disk import SmallDisk, small_disk
from tests.test_outbox_processes import Kiosk

pytestmark = pytest.mark.timeout(180)
VISIT = "2026-11-23/noce/am"


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
