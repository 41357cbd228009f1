"""Bus to API, all real: NMEA -> gpsfake -> gpsd -> agent (filter, geofence, outbox, link)
-> Mosquitto -> ground (ingest, store, state, ETA) -> HTTP API. The bus drives into Nocé;
the mairie's API shows it on the way with a moving ETA, then arrived."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from medicobus.brokers import Mosquitto
from medicobus.geo import bearing_deg, distance_m, offset
from medicobus.mqtt import BrokerSettings
from onboard.agent import Agent
from onboard.config import FilterSettings, GpsSettings, OnboardSettings
from onboard.telemetry.fix import Fix
from onboard.telemetry.gps import GpsdSource
from tests.gpsfake import GpsFake
from tests.harness import MONDAY_8AM, VEHICLE, clock_at, ground, wait_until

NOCE = (48.3838, 0.6783)
START = MONDAY_8AM + timedelta(minutes=10)
STEP_S = 5


def drive_into_noce() -> list[Fix]:
    """3 km out at 50 km/h, straight in, then parked a minute on the church square."""
    origin = offset(*NOCE, 2100, 2100)
    heading = bearing_deg(*origin, *NOCE)
    total = distance_m(*origin, *NOCE)
    fixes, t = [], 0
    while (done := 13.9 * t) < total:
        f = done / total
        lat = origin[0] + (NOCE[0] - origin[0]) * f
        lon = origin[1] + (NOCE[1] - origin[1]) * f
        fixes.append(Fix(ts=START + timedelta(seconds=t), lat=lat, lon=lon, speed=13.9,
                         heading=heading, acc=5.0))
        t += STEP_S
    for _ in range(14):
        fixes.append(Fix(ts=START + timedelta(seconds=t), lat=NOCE[0], lon=NOCE[1],
                         speed=0.0, heading=heading, acc=5.0))
        t += STEP_S
    return fixes


def test_bus_to_api_round_trip(tmp_path: Path, mosquitto: Mosquitto) -> None:
    clock = clock_at(START)
    g = ground(tmp_path, mosquitto.port, clock, http=True)
    api = f"http://127.0.0.1:{g.settings.http.port}/api/v1/stops"
    fixes = drive_into_noce()
    stop = threading.Event()
    with GpsFake(tmp_path / "gps", fixes, cycle_s=0.03, once=True, nowait=False) as gps:
        settings = OnboardSettings(
            vehicle=VEHICLE, data_dir=tmp_path / "bus",
            broker=BrokerSettings(port=mosquitto.port),
            gps=GpsSettings(port=gps.port, poll_s=0.05),
            # gpsfake plays the log faster than real time: fix times run ahead of the clock.
            filter=FilterSettings(future_tolerance_s=3600),
        )  # fmt: skip
        agent = Agent(settings, GpsdSource("127.0.0.1", gps.port, timeout_s=1.0), clock)
        bus = threading.Thread(target=agent.run, args=(stop,))
        bus.start()
        try:
            etas: list[str] = []
            seen: dict[str, dict] = {}

            def on_the_way() -> bool:
                seen["noce"] = httpx.get(f"{api}/61309").json()
                visit = seen["noce"]["next_visit"]
                if visit["status"] == "en_route" and visit["eta"] not in etas:
                    etas.append(visit["eta"])
                return visit["status"] in ("arrived", "consulting")

            wait_until(on_the_way, timeout=60, what="the bus arrived in Nocé")
        finally:
            stop.set()
            bus.join(timeout=10)

    noce = seen["noce"]
    visit = noce["next_visit"]
    assert len(etas) >= 2, f"the ETA should have moved while driving: {etas}"
    parked_at = fixes[-14].ts
    arrived_at = datetime.fromisoformat(visit["arrived_at"])
    assert abs((arrived_at - parked_at).total_seconds()) <= STEP_S
    assert visit["arrived_at"].endswith("+01:00")  # Paris time in November, with offset
    assert noce["vehicle_presence"] == "online"
    # The agent stopped cleanly: its retained status says so at once.
    wait_until(lambda: httpx.get(f"{api}/61309").json()["vehicle_presence"] == "offline")

    # The afternoon's stops are still on time: the bus is early, the plan holds.
    belleme = httpx.get(f"{api}/61038").json()["next_visit"]
    assert belleme["status"] == "planned"
    assert belleme["eta"] == "2026-11-23T11:00:00+01:00"

    # What the ground stored is what the receiver said, through gpsd and the pipeline.
    rows = list(g.store.db.query("SELECT lat, lon, ts FROM positions ORDER BY ts"))
    assert len(rows) >= 5
    by_time = {f.ts: f for f in fixes}
    for row in rows:
        f = by_time[datetime.fromisoformat(row["ts"])]
        assert distance_m(row["lat"], row["lon"], f.lat, f.lon) < 2.0
    g.stop()
