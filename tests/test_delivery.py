"""Nothing lost, nothing stored twice: the bus's outbox through a real Mosquitto to the
ground's SQLite store, while the broker, the ground or the bus itself goes down. The bus
deletes a row only once the ground says it committed it, so even a broker that crashes
with messages it had acknowledged loses nothing."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings
from onboard.link import Link
from onboard.outbox import Outbox
from tests.harness import (
    MONDAY_8AM,
    VEHICLE,
    clock_at,
    ground,
    position,
    stored_ids,
    wait_until,
)

N = 3000
# The synthetic drives are positions a second apart from Monday 08:00 (up to 6,000 of them):
# the ground receives them after they were taken (it judges a time against when it came).
AFTER_THE_DRIVE = MONDAY_8AM + timedelta(seconds=6001)


def _ids(n: int, first: int = 0) -> list[str]:
    return [f"pos{i:08d}" for i in range(first, first + n)]


def _feed(outbox: Outbox, n: int) -> threading.Thread:
    def run() -> None:
        for i in range(n):
            outbox.put(position(i))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _bus(tmp_path: Path, port: int, ack_timeout_s: float = 60.0) -> tuple[Outbox, Link]:
    outbox = Outbox(tmp_path / "bus" / "outbox.db")
    link = Link(BrokerSettings(port=port, keepalive_s=5), VEHICLE, outbox, lambda plan: None,
                ack_timeout_s=ack_timeout_s)
    link.start()
    return outbox, link


def _stored_on_disk(tmp_path: Path) -> set[str]:
    """What the ground committed, read from its file (the ground itself is stopped)."""
    with sqlite3.connect(tmp_path / "ground.db") as db:
        return {r[0] for r in db.execute("SELECT id FROM positions")}


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto that saves nothing before a crash: persistence on, but the autosave an
    hour away, so SIGKILL takes every session and queued message with it."""
    broker = Mosquitto(tmp_path / "crashable",
                       "allow_anonymous true\nautosave_interval 3600\n").start()
    yield broker
    broker.stop()


def test_broker_restarted_mid_stream(tmp_path: Path, mosquitto: Mosquitto) -> None:
    g = ground(tmp_path, mosquitto.port, clock_at(AFTER_THE_DRIVE))
    outbox, link = _bus(tmp_path, mosquitto.port)
    feeding = _feed(outbox, N)
    wait_until(lambda: len(stored_ids(g)) > N // 4, what="a first part stored")
    mosquitto.restart()
    feeding.join()
    wait_until(lambda: outbox.count() == 0 and len(stored_ids(g)) >= N, timeout=90,
               what="outbox drained and everything stored")
    assert sorted(stored_ids(g)) == _ids(N)
    assert g.ingest.stats["dead_letters"] == 0
    link.stop()
    g.stop()


def test_ground_down_the_rows_stay_in_the_outbox_until_it_commits_them(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    g = ground(tmp_path, mosquitto.port, clock_at(AFTER_THE_DRIVE))
    outbox, link = _bus(tmp_path, mosquitto.port)
    feeding = _feed(outbox, N)
    wait_until(lambda: len(stored_ids(g)) > N // 4, what="a first part stored")
    g.stop()  # meanwhile the broker keeps the ground's session and queues for it
    feeding.join()
    wait_until(lambda: link.stats["broker_acked_rows"] >= N,
               what="the broker acknowledged every row")
    # The broker has them all, the ground not: each row it has not stored is still on the bus.
    kept = {r.id for r in outbox.after(0, 2 * N)}
    assert set(_ids(N)) - _stored_on_disk(tmp_path) <= kept
    assert len(kept) > N // 2
    g = ground(tmp_path, mosquitto.port, clock_at(AFTER_THE_DRIVE))
    wait_until(lambda: outbox.count() == 0, timeout=60,
               what="every row deleted once the ground committed it")
    assert sorted(stored_ids(g)) == _ids(N)
    link.stop()
    g.stop()


def test_broker_killed_mid_stream_loses_nothing(tmp_path: Path, crashable: Mosquitto) -> None:
    g = ground(tmp_path, crashable.port, clock_at(AFTER_THE_DRIVE))
    outbox, link = _bus(tmp_path, crashable.port, ack_timeout_s=2.0)
    feeding = _feed(outbox, N)
    wait_until(lambda: len(stored_ids(g)) > N // 4, what="a first part stored")
    crashable.stop(signal.SIGKILL)  # no save: its sessions and queues are gone
    crashable.start()
    feeding.join()
    wait_until(lambda: outbox.count() == 0, timeout=90,
               what="every row committed by the ground and deleted on the bus")
    assert sorted(stored_ids(g)) == _ids(N)  # none lost, none stored twice
    assert g.ingest.stats["dead_letters"] == 0
    link.stop()
    g.stop()


def test_broker_killed_holding_what_it_acknowledged_loses_nothing(
    tmp_path: Path, crashable: Mosquitto
) -> None:
    """The case PUBACK alone loses: the ground is away, the broker has acknowledged rows it
    holds for the ground's session, and dies before saving them."""
    g = ground(tmp_path, crashable.port, clock_at(AFTER_THE_DRIVE))
    outbox, link = _bus(tmp_path, crashable.port, ack_timeout_s=2.0)
    feeding = _feed(outbox, N)
    wait_until(lambda: len(stored_ids(g)) > N // 4, what="a first part stored")
    g.stop()
    wait_until(lambda: link.stats["broker_acked_rows"] >= N // 2,
               what="the broker acknowledged rows it holds for the ground")
    held = link.stats["broker_acked_rows"] - len(_stored_on_disk(tmp_path))
    crashable.stop(signal.SIGKILL)  # mid-stream, with them
    crashable.start()
    feeding.join()
    # A new session: the old one died with the broker.
    g = ground(tmp_path, crashable.port, clock_at(AFTER_THE_DRIVE))
    wait_until(lambda: outbox.count() == 0, timeout=90,
               what="every row committed by the ground and deleted on the bus")
    assert held > 0
    assert sorted(stored_ids(g)) == _ids(N)  # none lost, none stored twice
    link.stop()
    g.stop()


def test_bus_killed_with_sigkill_loses_nothing_it_had_accepted(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    g = ground(tmp_path, mosquitto.port, clock_at(AFTER_THE_DRIVE))
    data = tmp_path / "bus"
    cmd = [sys.executable, "-m", "tests.bus_process", str(data), str(mosquitto.port)]
    bus = subprocess.Popen([*cmd, "0", str(N)], stdout=subprocess.PIPE, text=True,
                           cwd=Path(__file__).resolve().parents[1])
    assert bus.stdout is not None
    accepted = []
    for line in bus.stdout:
        accepted.append(line.strip())
        if len(accepted) == N // 2:
            bus.kill()  # SIGKILL: no goodbye, paho's in-memory queue dies with it
            break
    bus.wait()
    assert bus.returncode == -9

    again = subprocess.Popen([*cmd, "0", "0"], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    assert again.stdout is not None
    try:
        for line in again.stdout:
            if line.strip() == "left 0":
                break
        wait_until(lambda: set(accepted) <= set(stored_ids(g)), what="all accepted stored")
    finally:
        again.kill()
        again.wait()
    stored = stored_ids(g)
    assert set(accepted) <= set(stored)
    assert set(stored) <= set(_ids(N))  # nothing invented
    g.stop()


def test_backlog_drains_oldest_first_without_starving_live_data(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    backlog = 6000
    outbox = Outbox(tmp_path / "bus" / "outbox.db")
    for i in range(backlog):  # a long outage: everything waited on the bus
        outbox.put(position(i))
    g = ground(tmp_path, mosquitto.port, clock_at(AFTER_THE_DRIVE))
    link = Link(BrokerSettings(port=mosquitto.port), VEHICLE, outbox, lambda plan: None,
                batch_size=20, inflight_batches=1)  # 300 round trips: the live fix comes mid-drain
    link.start()
    wait_until(link.connected.is_set, what="the bus connected")
    outbox.put(position(backlog))  # where the bus is now
    wait_until(lambda: len(stored_ids(g)) == backlog + 1, timeout=60, what="all stored")
    received = {
        r["id"]: r["received"]
        for r in g.store.db.query("SELECT id, received FROM positions")
    }
    live = received[f"pos{backlog:08d}"]
    # The live fix did not wait for the drain: a good part of the backlog arrived after it
    # (how much depends on how far the drain got before the test saw the connection)...
    assert sum(received[i] > live for i in _ids(backlog)) > backlog // 10
    # ...which itself arrived oldest first, batch after batch.
    order = sorted(_ids(backlog), key=lambda i: (received[i], i))
    assert order == _ids(backlog)
    link.stop()
    g.stop()


def test_rows_the_broker_dropped_are_sent_again_once_the_ground_is_silent(
    tmp_path: Path, crashable: Mosquitto
) -> None:
    """A ground that never connected has no session: the broker acknowledges and drops what
    the bus sends. With no reconnection to trigger a resend, the ack timeout does; its
    doubling keeps a long wait to a few resends."""
    outbox, link = _bus(tmp_path, crashable.port, ack_timeout_s=0.25)
    for i in range(200):
        outbox.put(position(i))
    wait_until(lambda: link.stats["broker_acked_rows"] >= 200, what="the broker took them all")
    time.sleep(3.0)  # silence: resends after 0.25, 0.75, 1.75 s, then not before 3.75 s
    assert 1 <= link.stats["resends"] <= 3, link.stats
    assert outbox.count() == 200
    g = ground(tmp_path, crashable.port, clock_at(AFTER_THE_DRIVE))
    wait_until(lambda: outbox.count() == 0, timeout=30, what="resent, stored and deleted")
    assert sorted(stored_ids(g)) == _ids(200)
    link.stop()
    g.stop()
