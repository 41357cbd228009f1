"""A bus flooding the ground, through the real service (real Mosquitto, pipeline, store,
alert engine and uvicorn): with trouble codes, ingest keeps its pace during and after the
flood, one alert says how many codes are set and the vehicle's page stays small; with
garbage, the dead letters stay within their limits and the fleet's page counts them."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from ground.service import GroundService, GroundSettings, HttpSettings
from ground.store import DeadLetterLimits
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


Start = Callable[..., GroundService]


@pytest.fixture
def ground(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Start]:
    """Starts the ground service with its web server, settings as given."""
    started: list[GroundService] = []

    def start(**given: object) -> GroundService:
        g = GroundService(GroundSettings(fleet=FLEET, database=tmp_path / "ground.db",
                                         broker=BrokerSettings(port=mosquitto.port),
                                         http=HttpSettings(port=free_port()),
                                         dashboard=settings(), **given), clock_at())  # type: ignore[arg-type]
        started.append(g)
        g.start()
        wait_until(g.ingest.subscribed.is_set, what="the ground subscribed")
        g.serve_http()
        wait_for_port(g.settings.http.port)
        return g

    yield start
    for g in started:
        g.stop()


@contextmanager
def logged_in(g: GroundService) -> Iterator[httpx.Client]:
    """A fleet manager's HTTP client on the ground's web server."""
    with httpx.Client(base_url=f"http://127.0.0.1:{g.settings.http.port}", timeout=10) as web:
        r = web.post("/fleet/login", data={"name": USER, "password": PASSWORD})
        assert r.status_code == 303
        yield web


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
        ground: Start, bus: mqtt.Client) -> None:
    g = ground()
    with logged_in(g) as web:
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


def test_a_flood_of_garbage_stays_within_the_dead_letter_limits_and_is_counted(
        ground: Start, bus: mqtt.Client) -> None:
    g = ground(dead_letters=DeadLetterLimits(max_rows=100, max_mb=1.0))
    with logged_in(g) as web:
        assert "Aucun message inutilisable reçu des bus." in web.get("/fleet/").text
        garbage = json.dumps({"kind": "position", "note": "x" * 20_000}).encode()  # 20 kB
        for _ in range(300):  # 6 MB refused
            bus.publish(POSITIONS, garbage, qos=1)
        assert canary_seen_within(g, bus, web, 1) < CANARY_S
        wait_until(lambda: sum(g.store.dead_letter_counts()[::2]) == 300,
                   what="every refused message set aside or purged")  # fmt: skip
        kept, size, purged = g.store.dead_letter_counts()
        assert kept <= 100 and size <= 1_000_000 and kept + purged == 300
        assert kept == 1_000_000 // len(garbage)  # the bytes bind first here: the newest 49
        line = web.get("/fleet/").text
        assert (f"Messages des bus inutilisables, mis de côté pour analyse : {kept} conservés, "
                f"{purged} effacés (conservés 30 jours au plus).") in line


def test_thousands_of_alerts_from_before_the_bound_leave_the_page_small(
        ground: Start) -> None:
    """A database from before the code rule was bounded: 3,000 code alerts open, 3,000 of
    the week closed. The page lists the newest and says so; the tile counts them all."""
    g = ground()
    opened = g.clock.now()
    rows = [(VEHICLE, "trouble_code", f"obd:P{i:05d}", f"nouveau code défaut P{i:05d}",
             f"new trouble code P{i:05d}", "warning", opened.isoformat(),
             None if i < 3000 else opened.isoformat()) for i in range(6000)]
    with sqlite3.connect(g.settings.database) as db:
        db.executemany("INSERT INTO alerts (vehicle, rule, key, title_fr, title_en, severity, "
                       "opened_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    with logged_in(g) as web:
        page = web.get(f"/fleet/vehicles/{VEHICLE}")
        assert len(page.content) < PAGE_BYTES, len(page.content)
        assert "Seules les alertes les plus récentes sont affichées." in page.text
        assert "3000 alertes ouvertes (avertissement)" in page.text
