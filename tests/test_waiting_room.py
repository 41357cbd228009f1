"""The waiting room's screen, served by the bus (uvicorn) from the kiosk's queue file, in
a real Chromium: the number called and the room within a second of staff calling, with a
chime and the call spoken in French, the people waiting and the wait, numbers only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from onboard.config import DisplaySettings
from onboard.kiosk.queue import PatientQueue
from onboard.waiting_room import room_view, waiting_room_app
from tests.clocks import ManualClock
from tests.test_web_browser import SCREENSHOT_DIR, CspWatch, _wait
from tests.test_web_pages import LiveServer

VISIT = "2026-03-10/longny/am"
NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # 09:00 in Paris
# What the page's sounds did: the oscillators started (the chime) and what was spoken.
LISTEN = """(function () {
  window.__tones = 0; window.__spoken = [];
  var Context = window.AudioContext;
  var create = Context.prototype.createOscillator;
  Context.prototype.createOscillator = function () {
    var osc = create.call(this), start = osc.start;
    osc.start = function () { window.__tones += 1; return start.apply(osc, arguments); };
    return osc;
  };
  window.speechSynthesis.speak = function (u) { window.__spoken.push(u.lang + " " + u.text); };
}());"""


class Room:
    def __init__(self, tmp: Path) -> None:
        self.clock = ManualClock(NOW)
        self.kiosk = PatientQueue(tmp / "kiosk.db", None, "perche-1", self.clock)  # the kiosk's
        self.screen = PatientQueue(tmp / "kiosk.db", None, "perche-1", self.clock)  # the display's
        self.settings = DisplaySettings(room="cabinet", speech=True, poll_s=0.1)

    def close(self) -> None:
        self.kiosk.close()
        self.screen.close()


@pytest.fixture
def room(tmp_path: Path) -> Iterator[Room]:
    r = Room(tmp_path)
    yield r
    r.close()


def test_the_view_before_and_during_a_session(room: Room) -> None:
    view = room_view(room.screen, "cabinet")
    assert view.texts["state"] == "Le médicobus n'est pas encore ouvert ici." and view.call == ""
    room.kiosk.open(VISIT)
    for initials in ("M. L.", "A. N."):
        room.kiosk.check_in_walk_in(initials, 1948, "renewal")
    view = room_view(room.screen, "cabinet")
    assert view.texts["waiting"] == "2 personnes en attente"
    assert view.texts["wait"] == "Attente estimée : 30 min"  # for someone arriving now
    assert view.texts["number"] == "" and view.texts["idle"]
    room.kiosk.call_next()
    view = room_view(room.screen, "cabinet")
    assert (view.texts["number"], view.texts["room"]) == ("1", "→ cabinet")
    assert view.say == "Ticket numéro 1, cabinet."
    assert view.texts["waiting"] == "1 personne en attente"
    room.kiosk.pause(True)
    assert room_view(room.screen, "cabinet").texts["state"] == "Le médecin fait une courte pause."
    room.kiosk.end_session()
    ended = room_view(room.screen, "cabinet").texts
    assert ended["state"] == "Consultations terminées ici pour aujourd'hui."
    assert ended["waiting"] == "" and ended["wait"] == ""


def open_screen(browser: Browser, url: str) -> tuple[Page, CspWatch]:
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="fr-FR")
    watch = CspWatch(page)
    page.add_init_script(LISTEN)
    page.goto(url)
    return page, watch


def test_the_screen_calls_the_number(room: Room, browser: Browser) -> None:
    room.kiosk.open(VISIT)
    for initials in ("M. L.", "A. N.", "J. P."):
        room.kiosk.check_in_walk_in(initials, 1948, "renewal")
    with LiveServer(waiting_room_app(room.screen, room.settings)) as server:  # type: ignore[arg-type]
        page, csp = open_screen(browser, server.url)
        try:
            expect(page.locator("#idle")).to_have_text("Nous appellerons votre numéro ici.")
            expect(page.locator("#waiting")).to_have_text("3 personnes en attente")
            expect(page.locator("#wait")).to_have_text("Attente estimée : 45 min")
            expect(page.locator("#number")).to_be_hidden()
            page.wait_for_timeout(300)  # the stream is up
            assert page.evaluate("window.__tones") == 0, "a chime with nobody called"

            started = time.monotonic()
            room.kiosk.call_next()  # staff, at the kiosk
            expect(page.locator("#number")).to_have_text("1", timeout=1000)
            assert time.monotonic() - started < 1.0, "the call took more than a second"
            expect(page.locator("#room-name")).to_have_text("→ cabinet")
            expect(page.locator("#waiting")).to_have_text("2 personnes en attente")
            assert _wait(lambda: page.evaluate("window.__spoken.length") == 1)
            assert page.evaluate("window.__spoken") == ["fr-FR Ticket numéro 1, cabinet."]
            assert page.evaluate("window.__tones") == 2  # the two-tone chime

            number_px = page.evaluate(
                "parseFloat(getComputedStyle(document.getElementById('number')).fontSize)")
            assert number_px >= 0.3 * 1080, "the number must be read from across the room"
            facts_px = page.evaluate(
                "parseFloat(getComputedStyle(document.getElementById('waiting')).fontSize)")
            assert facts_px >= 60
            page.screenshot(path=str(SCREENSHOT_DIR / "waiting-room.png"))

            room.kiosk.mark_seen(1)
            room.kiosk.call_next()
            expect(page.locator("#number")).to_have_text("2", timeout=1000)
            expect(page.locator("#earlier")).to_have_text("Appelés avant : 1")
            assert _wait(lambda: page.evaluate("window.__spoken.length") == 2)
            assert page.evaluate("window.__tones") == 4

            text = page.locator("body").inner_text()
            for initials in ("M. L.", "A. N.", "J. P.", "1948"):  # numbers only
                assert initials not in text

            page.reload()  # a screen switched on mid-call says it, but does not chime again
            expect(page.locator("#number")).to_have_text("2")
            page.wait_for_timeout(500)
            assert page.evaluate("window.__tones") == 0

            room.kiosk.end_session()
            expect(page.locator("#state")).to_have_text(
                "Consultations terminées ici pour aujourd'hui.", timeout=1000)
            csp.assert_none()
        finally:
            page.close()
