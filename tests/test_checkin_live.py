"""A check-in at the kiosk becomes queue figures on the commune's page, through the real
outbox, link, Mosquitto and ground; and nothing personal crosses the air on the way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings, new_client
from onboard.kiosk.queue import PatientQueue
from onboard.link import Link
from onboard.outbox import Outbox
from tests.harness import MONDAY_8AM, VEHICLE, clock_at, ground, wait_until

NOCE_AM = "2026-11-23/noce/am"
TYPED = {"initials": ("M. L.", "A. N."), "birth_year": (1948, 1937),
         "reason": ("renewal", "vaccination")}


def walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, key)
    else:
        yield key, value


def test_check_in_shows_as_counts_on_the_commune_page(tmp_path: Path,
                                                      mosquitto: Mosquitto) -> None:
    clock = clock_at(MONDAY_8AM + timedelta(minutes=35))
    g = ground(tmp_path, mosquitto.port, clock, http=True)
    seen: list[tuple[str, bytes]] = []
    spy = new_client(BrokerSettings(port=mosquitto.port), "spy", persistent=False)
    spy.on_message = lambda c, u, m: seen.append((m.topic, m.payload))
    spy.on_connect = lambda c, u, f, r, p: c.subscribe("#", 1)
    spy.connect("127.0.0.1", mosquitto.port)
    spy.loop_start()

    outbox = Outbox(tmp_path / "bus" / "outbox.db")
    link = Link(BrokerSettings(port=mosquitto.port), VEHICLE, outbox, lambda message: None)
    link.start()
    outbox.put(contract.VisitEvent(vehicle=VEHICLE, ts=clock.now(), event="arrival",
                                   visit=NOCE_AM, stop="noce", lat=48.3838, lon=0.6783))
    queue = PatientQueue(tmp_path / "bus" / "queue.db", outbox, VEHICLE, clock)
    queue.open(NOCE_AM)
    for initials, year, reason in zip(*TYPED.values(), strict=True):
        queue.check_in_walk_in(initials, year, reason)

    api = f"http://127.0.0.1:{g.settings.http.port}"
    wait_until(lambda: (httpx.get(f"{api}/api/v1/stops/61309").json()["queue"] or {})
               .get("waiting") == 2, timeout=15, what="two people waiting on the page")
    page = httpx.get(f"{api}/communes/61309").text
    assert "2 personnes en attente, attente estimée" in page

    called = queue.call_next()
    assert called is not None
    wait_until(lambda: httpx.get(f"{api}/api/v1/stops/61309").json()["queue"]["waiting"] == 1,
               timeout=15, what="one left waiting")

    queue.mark_seen(called.number)
    queue.end_session()  # the visit's summary, for the funders' report, reaches the store
    wait_until(lambda: g.store.count("visit_summaries") == 1, timeout=15,
               what="the visit's summary stored")
    (stored,) = g.store.db.query("SELECT * FROM visit_summaries")
    assert called.called_at is not None
    waited = round((called.called_at - called.checked_in).total_seconds())
    assert (stored["visit"], stored["walk_in"], stored["seen"], stored["booked"],
            json.loads(stored["waits_s"])) == (NOCE_AM, 2, 1, 0, [waited])

    def uplinked() -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in list(seen) if contract.parse_topic(t)[1]
                in (contract.Channel.TICKET, contract.Channel.QUEUE, contract.Channel.BATCH,
                    contract.Channel.SUMMARY)]  # fmt: skip

    # The spy is a subscriber of its own: it may hear the summary just after the ground.
    wait_until(lambda: any(m["kind"] == "summary" or any(
        i.get("kind") == "summary" for i in m.get("items", [])) for m in uplinked()),
        timeout=5, what="the summary crossing the broker")  # fmt: skip
    uplink = uplinked()
    assert uplink, "the spy saw the queue traffic"
    for message in uplink:
        for key, value in walk(message):
            assert key not in ("initials", "birth_year", "reason", "name")
            if key != "id":
                assert value not in (*TYPED["initials"], *TYPED["reason"])
                assert value not in TYPED["birth_year"]
    link.stop()
    spy.loop_stop()
    g.stop()
