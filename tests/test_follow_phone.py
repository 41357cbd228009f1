"""The queue on the patient's phone, end to end: tickets checked in at the kiosk's queue go
through the real outbox, link and Mosquitto to the real ground service, whose page at
/t/<token> (uvicorn) says the ticket's place and wait, follows the queue live in Chromium,
says "C'est bientôt à vous" at two before, and expires when the session ends. Only the
token's reference crosses the air; nothing else identifies the patient."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from ground.service import GroundService
from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings, new_client
from onboard.kiosk.queue import PatientQueue
from onboard.link import Link
from onboard.outbox import Outbox
from tests.harness import MONDAY_8AM, VEHICLE, clock_at, ground, wait_until
from tests.test_web_browser import CspWatch, _wait

NOCE_AM = "2026-11-23/noce/am"
ENDED = "Ce ticket n'est plus suivi : la consultation est terminée, ou votre passage a eu lieu."


class Bus:
    """The kiosk's queue at Nocé, its outbox and link, and a spy on everything the broker
    carries."""

    def __init__(self, tmp: Path, mosquitto: Mosquitto) -> None:
        self.clock = clock_at(MONDAY_8AM + timedelta(minutes=35))
        self.ground: GroundService = ground(tmp, mosquitto.port, self.clock, http=True)
        self.url = f"http://127.0.0.1:{self.ground.settings.http.port}"
        self.seen: list[bytes] = []
        self.spy = new_client(BrokerSettings(port=mosquitto.port), "spy", persistent=False)
        self.spy.on_message = lambda c, u, m: self.seen.append(m.payload)
        self.spy.on_connect = lambda c, u, f, r, p: c.subscribe("#", 1)
        self.spy.connect("127.0.0.1", mosquitto.port)
        self.spy.loop_start()
        self.outbox = Outbox(tmp / "bus" / "outbox.db")
        self.link = Link(BrokerSettings(port=mosquitto.port), VEHICLE, self.outbox,
                         lambda message: None)
        self.link.start()
        self.outbox.put(contract.VisitEvent(vehicle=VEHICLE, ts=self.clock.now(),
                                            event="arrival", visit=NOCE_AM, stop="noce",
                                            lat=48.3838, lon=0.6783))  # fmt: skip
        self.queue = PatientQueue(tmp / "bus" / "kiosk.db", self.outbox, VEHICLE, self.clock)
        self.queue.open(NOCE_AM)

    def page(self, token: str, lang: str = "fr") -> httpx.Response:
        return httpx.get(f"{self.url}/t/{token}", params={"lang": lang})

    def says(self, token: str | None) -> str:
        """The phone page's text (its HTML unescaped)."""
        return unescape(self.page(token or "").text)

    def close(self) -> None:
        self.link.stop()
        self.spy.loop_stop()
        self.ground.stop()
        self.queue.close()


@pytest.fixture
def bus(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Bus]:
    b = Bus(tmp_path, mosquitto)
    yield b
    b.close()


def test_the_phone_page_follows_the_ticket(bus: Bus) -> None:
    tickets = [bus.queue.check_in_walk_in(f"{c}.", 1950, "other") for c in "ABCD"]
    fourth = tickets[-1]
    assert fourth.token is not None
    wait = math.ceil(bus.queue.estimated_wait(fourth).total_seconds() / 60)
    expected = f"Ticket 4 : 3 personnes avant vous, environ {wait} min"
    wait_until(lambda: expected in bus.says(fourth.token), timeout=15,
               what="the ticket's place on the phone page")
    r = bus.page(fourth.token)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "C'est bientôt à vous" not in unescape(r.text)
    assert len(r.content) < 4000, "a small page, for a weak signal"
    english = unescape(bus.page(fourth.token, "en").text)
    assert f"Ticket 4: 3 people before you, about {wait} min" in english
    assert '<html lang="en">' in english

    assert bus.queue.call_next() is not None  # ticket 1 goes in: two before ticket 4
    wait_until(lambda: "C'est bientôt à vous" in bus.says(fourth.token),
               timeout=15, what="two before: soon")
    assert "Ticket 4 : 2 personnes avant vous" in bus.says(fourth.token)
    assert "c'est à vous" in bus.says(tickets[0].token)

    bus.queue.mark_seen(1)  # a ticket seen is no longer followed
    wait_until(lambda: bus.page(tickets[0].token or "").status_code == 404, timeout=15,
               what="the ticket seen expires")
    assert ENDED in bus.says(tickets[0].token)

    bus.queue.end_session()
    wait_until(lambda: bus.page(fourth.token or "").status_code == 404, timeout=15,
               what="the session's end expires the page")
    assert ENDED in bus.says(fourth.token)

    # A guess gets the same words as an expired ticket; a malformed token too.
    for guess in ("A" * 22, "not a token", "x"):
        r = bus.page(guess)
        assert r.status_code == 404 and ENDED in unescape(r.text)
    # Over the air: counts and references, never a token or an initial.
    payloads = b"\n".join(bus.seen)
    assert contract.ticket_ref(fourth.token).encode() in payloads
    for t in tickets:
        assert (t.token or "").encode() not in payloads
    for message in map(json.loads, bus.seen):
        assert "initials" not in json.dumps(message) and "A." not in json.dumps(message)


def test_the_phone_page_is_live_in_chromium(bus: Bus, browser: Browser) -> None:
    tickets = [bus.queue.check_in_walk_in(f"{c}.", 1950, "other") for c in "ABCD"]
    token = tickets[-1].token or ""
    wait_until(lambda: bus.page(token).status_code == 200, timeout=15, what="the ticket")
    page = browser.new_page(viewport={"width": 360, "height": 640}, locale="fr-FR")
    csp = CspWatch(page)
    try:
        page.goto(f"{bus.url}/t/{token}")
        expect(page.locator("#place")).to_contain_text("Ticket 4 : 3 personnes avant vous")
        expect(page.locator("#soon")).to_be_hidden()
        page.evaluate("window.__noReload = 1")
        assert _wait(lambda: len(bus.ground.board._listeners) >= 1), "no live stream"

        bus.queue.call_next()
        expect(page.locator("#soon")).to_have_text("C'est bientôt à vous", timeout=10_000)
        expect(page.locator("#place")).to_contain_text("Ticket 4 : 2 personnes avant vous")
        bus.queue.mark_seen(1)
        bus.queue.call_next()
        bus.queue.mark_absent(2)
        bus.queue.call_next()  # ticket 3 in: ticket 4 is next
        expect(page.locator("#place")).to_contain_text("Ticket 4 : vous êtes le prochain",
                                                       timeout=10_000)
        bus.queue.mark_seen(3)
        bus.queue.call_next()
        expect(page.locator("#place")).to_have_text(
            "Ticket 4 : c'est à vous ! Présentez-vous au médicobus.", timeout=10_000)
        expect(page.locator("#soon")).to_be_hidden()
        assert page.evaluate("window.__noReload") == 1, "the page was reloaded"

        bus.queue.end_session()
        expect(page.locator("#ended")).to_have_text(ENDED, timeout=10_000)
        expect(page.locator("#place")).to_be_hidden()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        csp.assert_none()
    finally:
        page.close()
