"""The bus's link against the production broker configuration: TLS, its own account, a
wrong password said plainly, and the retained Last Will that tells the ground "offline"."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from ground.fleet import load_fleet
from ground.ingest import Ingest
from ground.pipeline import Pipeline
from ground.plans import PlanPublisher
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from medicobus.clock import SystemClock
from onboard.link import Link
from onboard.outbox import Outbox
from tests.harness import FLEET, clock_at, position, wait_until
from tests.secure_broker import SecureBroker, start_secure_broker

VEHICLE = "perche-1"  # the account is named after the vehicle, as the ACL requires


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureBroker]:
    started = start_secure_broker(tmp_path, vehicles=[VEHICLE, "other-bus"])
    yield started
    started.broker.stop()


def _ground(secure: SecureBroker, tmp_path: Path) -> Ingest:
    vehicles = {v.id for v in load_fleet(FLEET).vehicles}
    ingest = Ingest(secure.settings("ground"),
                    Pipeline(Store(tmp_path / "g.db"), LiveState(), vehicles), clock_at())
    ingest.start()
    wait_until(ingest.subscribed.is_set, what="ground subscribed")
    PlanPublisher(load_fleet(FLEET), ingest.client).publish(date(2026, 11, 23))
    return ingest


def test_bus_delivers_over_tls_with_its_own_account(tmp_path: Path, secure: SecureBroker) -> None:
    ingest = _ground(secure, tmp_path)
    outbox = Outbox(tmp_path / "bus" / "outbox.db")
    plans: list[contract.Plan] = []
    link = Link(secure.settings(VEHICLE, tls=True), VEHICLE, outbox, plans.append)
    link.start()
    for i in range(20):
        outbox.put(position(i))
    wait_until(lambda: ingest.pipeline.store.count("positions") == 20, what="20 positions over TLS")
    # The ground's acks pass the shipped ACL: the bus deletes what the ground committed.
    wait_until(lambda: outbox.count() == 0, what="the ground's acks, read back by the bus")
    assert link.stats["acked_rows"] == 20
    wait_until(lambda: bool(plans), what="the plan the ground published, read back by the bus")
    assert plans[0].vehicle == VEHICLE and len(plans[0].visits) == 3
    link.stop()
    ingest.stop()


def test_wrong_password_is_refused_with_a_clear_log_line(
    tmp_path: Path, secure: SecureBroker, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "bus" / "outbox.db")
    outbox.put(position(1))
    link = Link(secure.settings(VEHICLE, tls=True, password="not-the-password"), VEHICLE,
                outbox, lambda plan: None)
    with caplog.at_level(logging.ERROR, logger="onboard.link"):
        link.start()
        wait_until(lambda: link.stats["refusals"] >= 1, what="the broker's refusal")
    line = next(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    assert "wrong username or password" in line
    assert VEHICLE in line and str(secure.tls_port) in line
    assert outbox.count() == 1  # nothing is lost while the bus cannot get in
    assert "not authorised" in secure.broker.log_text()
    link.stop()


def test_a_bus_that_vanishes_is_offline_within_one_and_a_half_keepalives(
    tmp_path: Path, secure: SecureBroker
) -> None:
    ingest = _ground(secure, tmp_path)
    keepalive = 10
    bus = subprocess.Popen(
        [sys.executable, "-c", _FROZEN_BUS, str(tmp_path / "bus"), str(secure.broker.port),
         secure.passwords[VEHICLE], str(keepalive)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        wait_until(lambda: ingest.pipeline.state.get(VEHICLE).connection == "online", what="online")
        bus.send_signal(signal.SIGSTOP)  # frozen: socket open, no more pings (a dead modem)
        frozen_at = time.monotonic()
        wait_until(lambda: ingest.pipeline.state.get(VEHICLE).connection == "offline", timeout=20,
                   what="the Last Will")
        elapsed = time.monotonic() - frozen_at
        # MQTT's 1.5 x keepalive, plus Mosquitto's few seconds between keepalive checks.
        assert elapsed <= 1.5 * keepalive + 5.0, elapsed
        state = ingest.pipeline.state.get(VEHICLE)
        assert state.presence(SystemClock().now(), _MINUTE) == "offline"
    finally:
        bus.kill()
        bus.wait()
        ingest.stop()


_MINUTE = timedelta(minutes=1)

_FROZEN_BUS = """
import sys, time
from datetime import date, timedelta
from pathlib import Path
from medicobus.mqtt import BrokerSettings
from onboard.link import Link
from onboard.outbox import Outbox
data, port, password, keepalive = sys.argv[1:]
settings = BrokerSettings(port=int(port), username="perche-1", password=password,
                          keepalive_s=int(keepalive))
Link(settings, "perche-1", Outbox(Path(data) / "outbox.db"), lambda plan: None).start()
time.sleep(600)
"""
