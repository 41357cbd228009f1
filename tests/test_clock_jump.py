"""A Pi booted with no real-time clock and no network, its clock months behind, corrected
later (NTP, or the agent stepping to GPS time). The outbox drains by insertion, not by
time: the backlog leaves oldest first across the jump, nothing lost, and a resend is
stored once. What the wrong clock stamped reaches the ground, which sets it aside as dead
letters saying the bus's clock was behind; the agent stamps with GPS time as soon as it
has a fix, so its readings are not set aside."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ground.timebounds import TimeBounds
from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.clock import AcceleratedClock, GpsSteppedClock
from medicobus.geo import offset
from medicobus.mqtt import BrokerSettings
from onboard.agent import Agent
from onboard.config import OnboardSettings
from onboard.link import Link
from onboard.outbox import Outbox
from onboard.telemetry.fix import Fix
from tests.brokers import free_port
from tests.clocks import ManualClock
from tests.harness import MONDAY_8AM, VEHICLE, ground, position, stored_ids, wait_until
from tests.test_outbox_processes import Receiver

pytestmark = pytest.mark.timeout(120)
MONTHS = timedelta(days=150)
GPS_START = MONDAY_8AM - timedelta(minutes=10)  # the drive's fixes, by the receiver


def reading(ts: datetime, i: int) -> contract.Reading:
    return contract.Reading(id=f"rdg{i:08d}", vehicle=VEHICLE, ts=ts, sensor="fridge",
                            values={"temp_c": 4.0 + (i % 10) / 10})


def test_the_backlog_drains_by_insertion_across_the_jump_once_each(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    service = ground(tmp_path, mosquitto.port)  # the ground's clock is right
    bus = ManualClock(MONDAY_8AM - MONTHS)  # the Pi's: booted offline, months behind
    outbox = Outbox(tmp_path / "bus" / "outbox.db", reserve_mb=1)
    order: list[str] = []
    for i in range(400):
        if i == 200:
            bus.set(MONDAY_8AM)  # corrected mid-run: a jump of months forward
        for message in (position(i, GPS_START), reading(bus.now(), i)):  # GPS; the Pi's
            assert outbox.put(message)
            order.append(message.id)
        bus.advance(0.5)

    receiver = Receiver(mosquitto.port)  # sees what goes on the air, in order
    settings = BrokerSettings(port=mosquitto.port)
    first = Link(settings, VEHICLE, outbox, lambda m: None, clock=bus, batch_size=50)
    first.start()
    wait_until(lambda: len(receiver.ids()) >= 100, what="part of the backlog sent")
    first.stop()  # gone before every ack came back: the next link sends those again
    second = Link(settings, VEHICLE, outbox, lambda m: None, clock=bus, batch_size=50)
    second.start()
    try:
        wait_until(lambda: outbox.count() == 0, timeout=60, what="the backlog acknowledged")
        wait_until(lambda: service.store.count("positions") == 400
                   and service.store.count("readings") == 200, what="all at the ground")
        seen = list(dict.fromkeys(receiver.ids()))  # first time each went on the air
        assert seen == order  # oldest first by insertion, not by the stamps' order

        assert sorted(stored_ids(service)) == sorted(position(i).id for i in range(400))
        assert sorted(stored_ids(service, "readings")) == [f"rdg{i:08d}" for i in
                                                           range(200, 400)]
        letters = service.store.db.execute(
            "SELECT payload, error FROM dead_letters ORDER BY seq").fetchall()
        # Every reading the wrong clock stamped is set aside (a resent one again: the
        # ground skips what it has stored, not what it has set aside; dead letters are
        # bounded in rows and days).
        assert {contract.parse_uplink(p).id for p, _ in letters} == {
            f"rdg{i:08d}" for i in range(200)}
        assert all("time: ts" in e and "days behind the ground's clock (at most 60 days)" in e
                   for _, e in letters)
    finally:
        second.stop()
        receiver.close()
        service.stop()
        outbox.close()


def fix_at(ts: datetime, metres: float = 0.0) -> Fix:
    lat, lon = offset(48.3838, 0.6783, metres, 0.0)
    return Fix(ts, lat, lon, speed=10.0, acc=5.0)


def test_the_agent_stamps_with_gps_time_while_the_system_clock_is_months_behind(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="medicobus.clock")
    system = ManualClock(MONDAY_8AM - MONTHS)
    settings = OnboardSettings(vehicle=VEHICLE, data_dir=tmp_path / "bus",
                               broker=BrokerSettings(port=free_port()))
    agent = Agent(settings, source=None, clock=system)  # type: ignore[arg-type]
    bounds = TimeBounds()
    before = agent.storage.reading()
    assert bounds.judge(before, received=MONDAY_8AM) is not None  # set aside by the ground

    agent.process(fix_at(MONDAY_8AM))
    stamped = agent.storage.reading()
    assert abs(stamped.ts - MONDAY_8AM) < timedelta(seconds=1)
    assert bounds.judge(stamped, received=MONDAY_8AM) is None
    assert any("behind GPS time" in r.getMessage() for r in caplog.records)

    system.advance(60)  # time goes on with the step
    agent.process(fix_at(MONDAY_8AM + timedelta(seconds=60), 600.0))
    assert abs(agent.clock.now() - (MONDAY_8AM + timedelta(seconds=60))) < timedelta(seconds=1)

    system.set(MONDAY_8AM + timedelta(seconds=120))  # NTP answers: the system is right
    assert agent.clock.now() > MONDAY_8AM + MONTHS  # ahead until the next fix says so
    agent.process(fix_at(MONDAY_8AM + timedelta(seconds=120), 1200.0))
    assert agent.clock.now() == system.now() and agent.clock.step == timedelta(0)
    agent.outbox.close()


@pytest.mark.parametrize(("gps", "stepped"), [
    (timedelta(minutes=59), False),  # a clock a little off: NTP's business, not ours
    (timedelta(hours=2), True),
    (-timedelta(days=7168), False),  # a receiver with the GPS week rollover: years back
])  # fmt: skip
def test_the_clock_steps_only_forward_and_only_when_obviously_behind(
        gps: timedelta, stepped: bool) -> None:
    system = ManualClock(MONDAY_8AM)
    clock = GpsSteppedClock(system)
    clock.observe(MONDAY_8AM + gps)
    assert clock.now() == (MONDAY_8AM + gps if stepped else MONDAY_8AM)
    clock.observe(MONDAY_8AM + gps + timedelta(seconds=1))  # a fix's latency: no new step
    assert clock.now() == (MONDAY_8AM + gps if stepped else MONDAY_8AM)


def test_the_stepped_clock_runs_at_the_pace_of_its_base() -> None:
    """The demo's clock runs faster than real time; the sensors pace on its speed."""
    assert GpsSteppedClock(AcceleratedClock(MONDAY_8AM, 120.0)).speed == 120.0
    assert GpsSteppedClock(ManualClock(MONDAY_8AM)).speed == 1.0
