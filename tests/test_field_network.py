"""The field's network faults, on the real components: the bus's outbox and link in a
process of its own inside a network namespace of its own (tests/field_bus.py), a real
Mosquitto and the real ground service with its SQLite store on the host.

The bus reaches the broker over a veth pair whose loss the kernel makes (nftables, in the
bus's namespace: tests/netns.py) and through a relay that adds the latency (tests/
delay_relay.py: the kernel here has no netem). Nothing leaves the machine: the only
addresses are loopback and the namespace's own /30.

What the mairies and the fleet manager rely on: every position, event and reading stored
once, the arrivals and departures in the order they happened, the outbox emptied, the link
back by itself after losing its connection, and the live position ahead of a backlog.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from ground.service import GroundService
from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings
from onboard.link import Link
from onboard.outbox import Outbox
from tests import field_day
from tests.delay_relay import delay_relay
from tests.harness import VEHICLE, clock_at, ground, wait_until
from tests.netns import BusNamespace, bus_namespace

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"position": "positions", "event": "events", "reading": "readings"}
LOSS_PCT = 30  # each way
LATENCY_S = 2.0  # each way, while driving
OUTAGE_LATENCY_S = 0.5  # each way, the cell back after the outage
HOUR_SPEED = 60  # the hour of driving fed in a minute

pytestmark = pytest.mark.timeout(170)


@pytest.fixture
def bus_ns() -> Iterator[BusNamespace]:
    with bus_namespace() as ns:
        yield ns


class BusProcess:
    """tests/field_bus.py running in the namespace, its output read as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.fed = threading.Event()
        self.parked = threading.Event()
        self.left: int | None = None  # rows in its outbox, as it last said
        self.connected = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, *rest = line.split()
            self.lines.append(line.strip())
            if word == "fed":
                self.fed.set()
            elif word == "parked":
                self.parked.set()
            elif word == "left":
                self.left, self.connected = int(rest[0]), rest[1] == "1"

    def live_ids(self) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith("live ")]


@contextmanager
def field_bus(ns: BusNamespace, data: Path, host: str, port: int, stretch: str,
              speed: float) -> Iterator[BusProcess]:
    proc = subprocess.Popen(
        ns.command(sys.executable, "-m", "tests.field_bus", str(data), host, str(port),
                   stretch, str(speed)),
        stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    try:
        yield BusProcess(proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stored(g: GroundService, table: str) -> list[tuple[str, str]]:
    """(id, received) of what the ground committed, in the order it received it (the items
    of one MQTT batch share their receipt time: they follow the bus's order)."""
    rows = g.store.db.query(f"SELECT id, received FROM {table} ORDER BY received, ts")
    return [(r["id"], r["received"]) for r in rows]


def all_stored(g: GroundService, expected: list[field_day.Message]) -> bool:
    """Whether the ground has as many of the stretch's rows as it made (live ones apart)."""
    made = sum(g.store.db.execute(f"SELECT COUNT(*) FROM {t} WHERE id NOT LIKE 'live%'")
               .fetchone()[0] for t in TABLES.values())
    return made >= len(expected)


def assert_each_stored_once(g: GroundService, expected: list[field_day.Message]) -> None:
    for kind, table in TABLES.items():
        ids = [i for i, _ in stored(g, table)]
        assert len(ids) == len(set(ids)), f"{table}: stored twice"
        assert sorted(ids) == sorted(m.id for m in expected if m.kind == kind), table
    assert g.ingest.stats["dead_letters"] == 0


def assert_events_in_order(g: GroundService, expected: list[field_day.Message]) -> None:
    """The stops' arrivals and departures reached the ground in the order they happened,
    and its live state has each at its time."""
    events = [m for m in expected if isinstance(m, contract.VisitEvent)]
    assert [i for i, _ in stored(g, "events")] == [e.id for e in events]
    state = g.state.get(VEHICLE)
    for e in events:
        times = state.arrivals if e.event == "arrival" else state.departures
        assert times[e.visit] == e.ts, (e.event, e.visit)


def outbox_rows(data: Path) -> int:
    outbox = Outbox(data / "outbox.db")
    try:
        return outbox.count()
    finally:
        outbox.close()


def connections(broker: Mosquitto) -> int:
    """How many times the bus connected to the broker."""
    return broker.log_text().count(f"as medicobus-{VEHICLE} ")


def test_an_hour_of_driving_over_a_lossy_slow_link(
    tmp_path: Path, mosquitto: Mosquitto, bus_ns: BusNamespace
) -> None:
    start, end = field_day.drive_hour()
    expected = field_day.messages(start, end, 1, 1)
    g = ground(tmp_path, mosquitto.port, clock_at(end + timedelta(hours=1)))
    data = tmp_path / "bus"
    try:
        with delay_relay(bus_ns.host_ip, mosquitto.port, LATENCY_S) as relay, \
                field_bus(bus_ns, data, bus_ns.host_ip, relay.port, "hour", HOUR_SPEED) as bus:
            began = time.monotonic()
            # Connected at the stop, then the poor coverage of the drive (under 30 % loss a
            # first connection alone can take a minute of TCP and paho backoffs).
            wait_until(lambda: bus.connected, what="the bus connected")
            bus_ns.loss(LOSS_PCT)
            wait_until(lambda: g.store.count("positions") > 1000, timeout=60,
                       what="a first part stored")
            relay.cut()  # the connection lost mid-drive: the link must come back by itself
            wait_until(bus.fed.is_set, timeout=120, what="the hour fed to the outbox")
            fed = time.monotonic()
            wait_until(lambda: all_stored(g, expected), timeout=120,
                       what="everything stored by the ground")
            drained = time.monotonic()
            wait_until(lambda: bus.left == 0, timeout=30, what="the outbox emptied")
            dropped = bus_ns.dropped()
        print(f"\nhour of driving: {len(expected)} rows fed in {fed - began:.0f} s, all "
              f"stored {drained - fed:.1f} s after the last was put; {dropped} packets "
              f"dropped, {connections(mosquitto)} connections, "
              f"{g.ingest.stats['duplicates']} resent rows dropped by the ground")
        assert_each_stored_once(g, expected)
        assert_events_in_order(g, expected)
        last = max((m for m in expected if m.kind == "position"), key=lambda m: m.ts)
        position = g.state.get(VEHICLE).position
        assert position is not None and position.id == last.id  # the map shows where it is
        assert outbox_rows(data) == 0
        assert dropped > 0  # the loss was real
        assert connections(mosquitto) >= 2 and relay.connections >= 2
    finally:
        g.stop()


def test_a_day_long_outage_drains_once_with_live_data_first(
    tmp_path: Path, mosquitto: Mosquitto, bus_ns: BusNamespace
) -> None:
    start, end = field_day.whole_day()
    expected = field_day.messages(start, end, 30, 600)
    g = ground(tmp_path, mosquitto.port, clock_at(end + timedelta(hours=1)))
    data = tmp_path / "bus"
    bus_ns.loss(100)  # no coverage: the broker is unreachable the whole day
    try:
        with delay_relay(bus_ns.host_ip, mosquitto.port, OUTAGE_LATENCY_S) as relay, \
                field_bus(bus_ns, data, bus_ns.host_ip, relay.port, "day", 0) as bus:
            wait_until(bus.fed.is_set, timeout=90, what="the day's data in the outbox")
            assert g.store.count("positions") == 0 and not bus.connected
            wait_until(lambda: (bus.left or 0) >= len(expected),
                       what="the day waiting in the outbox (and the first live positions)")
            bus_ns.loss(0)  # back in coverage
            back = time.monotonic()
            wait_until(lambda: bus.connected, timeout=90, what="the link back by itself")
            reconnected = time.monotonic()
            wait_until(lambda: all_stored(g, expected), timeout=120,
                       what="the whole day stored by the ground")
            drained = time.monotonic()
            bus.proc.send_signal(signal.SIGUSR1)  # no more live positions: the last are known
            wait_until(bus.parked.is_set, what="the bus parked")
            live = set(bus.live_ids())
            wait_until(lambda: live <= {i for i, _ in stored(g, "positions")}, what="the live "
                       "positions stored")
            wait_until(lambda: bus.left == 0, what="the outbox emptied")
        print(f"\nday-long outage: {len(expected)} rows waiting; link back {reconnected - back:.1f}"
              f" s after coverage, all stored {drained - reconnected:.1f} s later")
        assert_each_stored_once(g, [*expected, *(field_day.live_position(int(i[4:]), end)
                                                 for i in live)])
        assert_events_in_order(g, expected)
        received = dict(stored(g, "positions")) | dict(stored(g, "readings"))
        first_live = min(received[i] for i in live)
        backlog_ids = [m.id for m in expected if m.kind in ("position", "reading")]
        # The live position did not wait for the day's backlog: most of it came after...
        assert sum(received[i] > first_live for i in backlog_ids) > len(backlog_ids) // 2
        # ...which itself came oldest first.
        made = {i: n for n, i in enumerate(backlog_ids)}
        assert sorted(backlog_ids, key=lambda i: (received[i], made[i])) == backlog_ids
        assert outbox_rows(data) == 0
    finally:
        g.stop()



def test_live_rows_put_faster_than_a_slow_link_carries_them_do_not_queue(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A slow link carries only a few messages per round trip: live rows put faster than
    that wait in the outbox and go in one batch, rather than one by one in paho's memory,
    where each would wait behind all the others (the hour of driving once took minutes to
    drain, and the map showed where the bus had been)."""
    rows = 400
    start, end = field_day.drive_hour()
    g = ground(tmp_path, mosquitto.port, clock_at(end + timedelta(hours=1)))
    outbox = Outbox(tmp_path / "bus" / "outbox.db")
    with delay_relay("127.0.0.1", mosquitto.port, 1.0) as relay:
        link = Link(BrokerSettings(port=relay.port), VEHICLE, outbox, lambda plan: None)
        link.start()
        try:
            wait_until(link.connected.is_set, what="the bus connected")
            began = time.monotonic()
            for message in field_day.messages(start, end, 1, 1)[:rows]:
                outbox.put(message)
            wait_until(lambda: outbox.count() == 0, timeout=30, what="all acknowledged")
            took = time.monotonic() - began
        finally:
            link.stop()
    assert sum(g.store.count(t) for t in TABLES.values()) == rows
    # One by one, with paho's 20 in flight and a 2 s round trip, 400 rows take 40 s.
    assert took < 20, took
    assert link.stats["sent"] < rows // 4, link.stats
    g.stop()
