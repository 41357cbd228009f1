"""A bus flooding trouble codes, through the real ground service (real Mosquitto, pipeline,
store, alert engine and uvicorn): ingest keeps its pace during and after the flood, one
alert says how many codes are set, and the vehicle's page stays small."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from ground.service import GroundService, GroundSettings, HttpSettings
from medicobus import contract
from medicobus.brokers import Mosquitto, free_port, wait_for_port
from medicobus.mqtt import BrokerSettings, new_client
from tests.harness import FLEET, VEHICLE, clock_at, position, wait_until
from tests.test_fleet_pages import PASSWORD, USER, settings

READINGS = contract.topic(VEHICLE, contract.Channel.READING)
POSITIONS = contract.topic(VEHICLE, contract.Channel.POSITION)
# A canary sent behind the flood is stored and on the dashboard within this: a manager
# watching the bus sees no lag worth the name.
CANARY_S = 5.0
PAGE_BYTES = 200_000  # a vehicle's page over a rural 4G link: well under a second


@pytest.fixture
def service(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[GroundService]:
    g = GroundService(GroundSettings(fleet=FLEET, database=tmp_path / "ground.db",
                                     broker=BrokerSettings(port=mosquitto.port),
                                     http=HttpSettings(port=free_port()),
                                     dashboard=settings()), clock_at())  # fmt: skip
    g.start()
    wait_until(g.ingest.subscribed.is_set, what="the ground subscribed")
    g.serve_http()
    wait_for_port(g.settings.http.port)
    yield g
    g.stop()


@pytest.fixture
def bus(mosquitto: Mosquitto) -> Iterator[mqtt.Client]:
    client = new_client(BrokerSettings(port=mosquitto.port), "bus-sim", persistent=False)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


def flood(g: GroundService, bus: mqtt.Client) -> None:
    """200 readings of 200 sensors, each setting 50 codes of its own: 10,000 codes."""
    for s in range(200):
        reading = contract.Reading(vehicle=VEHICLE, ts=g.clock.now(), sensor=f"obd{s:03d}",
                                   values={"rpm": 800.0},
                                   codes=[f"P{s:03d}{c:02d}" for c in range(50)])
        bus.publish(READINGS, reading.to_json(), qos=1)


def canary_seen_within(g: GroundService, bus: mqtt.Client, web: httpx.Client, i: int) -> float:
    """Send a normal position behind what was sent; seconds until the dashboard shows it."""
    canary = position(i, ts=g.clock.now())
    sent = time.monotonic()
    bus.publish(POSITIONS, canary.to_json(), qos=1)

    def shown() -> bool:
        where = web.get(f"/fleet/api/vehicles/{VEHICLE}").json()["position"]
        return where is not None and (where["lat"], where["lon"]) == (canary.lat, canary.lon)

    wait_until(shown, timeout=CANARY_S * 4, what=f"canary {i} on the dashboard")
    return time.monotonic() - sent


def test_a_trouble_code_flood_keeps_ingest_pace_and_the_vehicle_page_small(
        service: GroundService, bus: mqtt.Client) -> None:
    g = service
    with httpx.Client(base_url=f"http://127.0.0.1:{g.settings.http.port}", timeout=10) as web:
        r = web.post("/fleet/login", data={"name": USER, "password": PASSWORD})
        assert r.status_code == 303
        flood(g, bus)
        during = canary_seen_within(g, bus, web, 1)
        assert g.store.count("readings") == 200
        # The codes go on being reported (the sensors' heartbeat), with new readings.
        flood(g, bus)
        after = canary_seen_within(g, bus, web, 2)
        assert g.store.count("readings") == 400
        assert (during, after) < (CANARY_S, CANARY_S), (during, after)

        [many] = web.get(f"/fleet/api/vehicles/{VEHICLE}").json()["open_alerts"]
        assert (many["title_fr"], many["last_value"]) == ("nombreux codes défaut", 10_000)
        assert g.store.count("alerts") == 1  # not 10,000
        page = web.get(f"/fleet/vehicles/{VEHICLE}")
        assert page.status_code == 200
        assert len(page.content) < PAGE_BYTES, len(page.content)
        assert "nombreux codes défaut" in page.text
        assert "Et 9950 autres codes défaut, non affichés." in page.text
