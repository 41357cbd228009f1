"""The dashboard read at a glance by a manager on a phone: which bus has an open alert, said
at the top; a fridge back in its band while its alert waits out the hysteresis, said; the
colours explained; a critical alert nobody acknowledged, said so; charts that start with
the data after a recent start; a bus that arrived late no longer amber while it consults;
and axis text readable on a phone (Chromium, screenshots at 412 and 1024 px)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from ground.web.fleet.views import Dashboard
from tests.test_fleet_browser import check_png, log_in
from tests.test_fleet_pages import FleetScene, login, tile
from tests.test_web_browser import SCREENSHOT_DIR
from tests.test_web_pages import VEHICLE, LiveServer, text_of


def summary(html: str) -> tuple[str, str]:
    m = re.search(r'<p id="fleet-summary" class="summary tile-(\w+)"[^>]*>(.*?)</p>', html,
                  flags=re.S)  # fmt: skip
    assert m, "no summary at the top of the fleet's page"
    return m.group(1), text_of(m.group(2))


def test_the_top_of_the_page_names_the_buses_with_open_alerts(tmp_path: Path) -> None:
    fleet = FleetScene(tmp_path / "ground.db")
    fleet.healthy_day()
    with TestClient(fleet.app()) as client:
        login(client)
        assert summary(client.get("/fleet/").text) == (
            "ok", "Aucune alerte ouverte sur 1 véhicule(s). · No open alert on 1 vehicle(s).")
        fleet.fridge_excursion(minutes=15)
        state, text = summary(client.get("/fleet/").text)
    assert state == "bad"
    assert text.startswith("Alertes ouvertes sur 1 véhicule(s) sur 1 : Médicobus du Perche "
                           "(1 : critique).")  # fmt: skip
    # With several buses, the worst first, those without alerts left out.
    dash = Dashboard(fleet.board, fleet.store, fleet.alerts, fleet.clock)
    bus = dash.summary(VEHICLE)
    others = [bus.model_copy(update={"name": "Bus Orne", "alerts_open": 2,
                                     "alerts_severity": "warning"}),
              bus.model_copy(update={"name": "Bus calme", "alerts_open": 0,
                                     "alerts_severity": None})]  # fmt: skip
    said = dash.fleet_summary([*others, bus])
    assert said.text.startswith("Alertes ouvertes sur 2 véhicule(s) sur 3 : Médicobus du "
                                "Perche (1 : critique), Bus Orne (2 : avertissement).")
    assert said.state == "bad"


def test_a_fridge_back_in_band_says_its_alert_waits_for_the_hysteresis(
        tmp_path: Path) -> None:  # fmt: skip
    fleet = FleetScene(tmp_path / "ground.db")
    fleet.healthy_day()
    fleet.fridge_excursion(minutes=15)
    with TestClient(fleet.app()) as client:
        login(client)
        for _ in range(2):  # two minutes back at 5 °C: the rule wants five
            fleet.clock.advance(1)
            fleet.reading("fridge", {"temp_c": 5.0})
        assert fleet.alerts.open_alerts(VEHICLE)
        state, text = tile(client.get("/fleet/").text, "fridge")
        assert state == "warn"
        assert "5 °C (dans la plage)" in text.replace("5,0", "5")
        assert "alerte encore ouverte : elle se ferme après 5 min entre 2,5 et 7,5 °C" in text
        assert "Que veulent dire les couleurs" in client.get("/fleet/").text
        for _ in range(6):
            fleet.clock.advance(1)
            fleet.reading("fridge", {"temp_c": 5.0})
        assert not fleet.alerts.open_alerts(VEHICLE)
        state, text = tile(client.get("/fleet/").text, "fridge")
        assert state == "ok" and "encore ouverte" not in text
        # Closed without anybody acknowledging it: the history says so, not only "closed".
        page = client.get(f"/fleet/vehicles/{VEHICLE}").text
        row = re.search(r'<tr class="alert-closed sev-critical unacked"[^>]*>(.*?)</tr>', page,
                        flags=re.S)  # fmt: skip
        assert row and "sans prise en charge" in text_of(row.group(1))


def test_a_late_bus_is_no_longer_amber_once_it_consults(tmp_path: Path) -> None:
    fleet = FleetScene(tmp_path / "ground.db")
    fleet.status("online")
    fleet.clock.advance(37)  # 08:37: Nocé was planned at 08:30
    fleet.driving_towards_noce(km=1.0)
    with TestClient(fleet.app()) as client:
        login(client)
        state, text = tile(client.get("/fleet/").text, "delay")
        assert state == "warn" and re.search(r"retard de \d+ min", text)  # on its way
        fleet.arrive_noce()
        state, text = tile(client.get("/fleet/").text, "delay")
    assert state == "ok"
    assert text.endswith("arrivé avec 7 min de retard, en consultation · arrived 7 min late, "
                         "consulting")  # fmt: skip


def test_charts_start_with_the_data_after_a_recent_start(tmp_path: Path) -> None:
    fleet = FleetScene(tmp_path / "ground.db")
    for m in range(40, -1, -5):  # the bus was switched on 40 minutes ago
        fleet.reading("fridge", {"temp_c": 5.0}, minutes_ago=m, notify=False)
    with TestClient(fleet.app()) as client:
        login(client)
        page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    fridge = page[page.index('<svg id="chart-fridge"'):]
    fridge = fridge[:fridge.index("</svg>")]
    assert "depuis 06:00" in fridge  # two hours at least, up to 08:00
    xs = [float(p.split(",")[0]) for p in re.search(r'points="([^"]+)"', fridge)
          .group(1).split()]  # type: ignore[union-attr]
    left, width = 44, 480 - 44 - 10
    assert (xs[0] - left) / width < 0.7, "squeezed into the last pixels"
    assert (xs[-1] - left) / width > 0.99


def test_the_dashboard_reads_on_a_phone(browser: Browser, tmp_path: Path) -> None:
    fleet = FleetScene(tmp_path / "ground.db")
    fleet.healthy_day()
    fleet.fridge_excursion(minutes=15)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with LiveServer(fleet.app()) as server:
        for width in (412, 1024):
            page, csp = log_in(browser, server.url, width=width)
            expect(page.locator("#fleet-summary")).to_contain_text("Médicobus du Perche")
            check_png(page.screenshot(path=str(SCREENSHOT_DIR / f"fleet-index-{width}.png"),
                                      full_page=True), width)  # fmt: skip
            page.goto(f"{server.url}/fleet/vehicles/{VEHICLE}")
            heights = page.eval_on_selector_all(
                "svg.chart text.axis", "els => els.map(e => e.getBoundingClientRect().height)")
            assert heights and min(heights) >= 10, f"axis text {min(heights):.1f} px tall"
            check_png(page.screenshot(path=str(SCREENSHOT_DIR / f"fleet-vehicle-{width}.png"),
                                      full_page=True), width)  # fmt: skip
            assert not csp.seen
            page.close()
