"""Building the real ground service and the bus's outbox + link on a test broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ground.service import GroundService, GroundSettings, HttpSettings
from medicobus import contract
from medicobus.brokers import free_port
from medicobus.clock import AcceleratedClock
from medicobus.mqtt import BrokerSettings

FLEET = Path(__file__).resolve().parents[1] / "medicobus" / "defaults" / "fleet.toml"
PARIS = ZoneInfo("Europe/Paris")
MONDAY_8AM = datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)  # Nocé 08:30, Bellême 11:00, ...
VEHICLE = "perche-1"


def clock_at(start: datetime = MONDAY_8AM, speed: float = 1.0) -> AcceleratedClock:
    return AcceleratedClock(start, speed)


def ground(tmp: Path, broker_port: int, clock: AcceleratedClock | None = None,
           http: bool = False, keepalive_s: int = 30) -> GroundService:
    service = GroundService(
        GroundSettings(fleet=FLEET, database=tmp / "ground.db",
                       broker=BrokerSettings(port=broker_port, keepalive_s=keepalive_s),
                       http=HttpSettings(port=free_port())),
        clock or clock_at(),
    )  # fmt: skip
    service.start()
    wait_until(service.ingest.subscribed.is_set, what="the ground subscribed")
    if http:
        service.serve_http()
    return service


def position(i: int, ts: datetime | None = None, vehicle: str = VEHICLE) -> contract.Position:
    """The i-th position of a synthetic drive, with a recognisable id."""
    return contract.Position(
        id=f"pos{i:08d}", vehicle=vehicle,
        ts=(ts or MONDAY_8AM) + timedelta(seconds=i),
        lat=48.45 - i * 1e-5, lon=0.55 + i * 1e-5, speed=12.0, heading=135.0, acc=5.0,
    )  # fmt: skip


def stored_ids(service: GroundService, table: str = "positions") -> list[str]:
    return [r[0] for r in service.store.db.execute(f"SELECT id FROM {table}")]


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
