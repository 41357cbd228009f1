"""The fleet dashboard in a real headless Chromium (Debian's), driven by Playwright: log in,
the vehicle list, a live change without reload, a vehicle's page with its charts, an
acknowledgement, screenshots, and a tablet's width."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.test_fleet_pages import PASSWORD, USER, FleetScene
from tests.test_web_browser import SCREENSHOT_DIR, CspWatch, _wait, png_size
from tests.test_web_pages import VEHICLE, LiveServer


@pytest.fixture
def fleet(tmp_path: Path) -> FleetScene:
    f = FleetScene(tmp_path / "ground.db")
    f.healthy_day()
    return f


@pytest.fixture
def server(fleet: FleetScene) -> Iterator[LiveServer]:
    with LiveServer(fleet.app()) as s:
        yield s


def log_in(browser: Browser, url: str, width: int = 1280,
           height: int = 900) -> tuple[Page, CspWatch]:
    page = browser.new_page(viewport={"width": width, "height": height}, locale="fr-FR")
    csp = CspWatch(page)
    page.goto(f"{url}/fleet/")
    expect(page).to_have_url(f"{url}/fleet/login?next=/fleet/")  # not logged in yet
    page.fill("#name", USER)
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    expect(page).to_have_url(f"{url}/fleet/")
    return page, csp


def check_png(data: bytes, min_width: int, min_height: int = 300,
              min_bytes: int = 15_000) -> None:
    width, height = png_size(data)
    assert width >= min_width and height >= min_height
    assert len(data) > min_bytes, "a near-empty screenshot"
    assert len(set(data[100:])) > 200, "a flat image"


def test_login_list_live_update_and_vehicle_page(browser: Browser, server: LiveServer,
                                                  fleet: FleetScene) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    csp = CspWatch(page)
    try:
        # a wrong password first: an error, still on the login page
        page.goto(f"{server.url}/fleet/")
        page.fill("#name", USER)
        page.fill("#password", "not it")
        page.click("form.login button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("mot de passe incorrect")
        csp.assert_none()
        page.close()

        page, csp = log_in(browser, server.url)
        assert page.evaluate("document.documentElement.lang") == "fr"
        card = page.locator(f"#vehicle-{VEHICLE}")
        expect(card.locator("h2 a")).to_have_text("Médicobus du Perche")
        fridge = card.locator('[data-f="fridge"]')
        expect(fridge).to_have_class("tile tile-ok")
        expect(fridge.locator("dd")).to_contain_text("5,2 °C (dans la plage)")
        expect(card.locator('[data-f="battery"] dd')).to_have_text("76 %, 12,95 V")
        shot = page.screenshot(path=str(SCREENSHOT_DIR / "fleet-list.png"), full_page=True)
        check_png(shot, 1200)

        # live: the fridge warms up, the tile turns red without a reload
        page.evaluate("window.__noReload = 1")
        assert _wait(lambda: fleet.listeners() == 1), "the page opened no event stream"
        fleet.reading("fridge", {"temp_c": 9.4})  # from this thread, as ingest does
        expect(fridge).to_have_class("tile tile-bad")
        expect(fridge.locator("dd")).to_contain_text("9,4 °C (HORS PLAGE)")
        fleet.fridge_excursion(minutes=12)  # opens the alert; the count follows
        expect(card.locator('[data-f="alerts"] dd')).to_contain_text("1 alerte ouverte")
        assert page.evaluate("window.__noReload") == 1, "the page was reloaded"
        page.screenshot(path=str(SCREENSHOT_DIR / "fleet-list-alert.png"), full_page=True)

        # the vehicle's page: charts drawn, and an alert to acknowledge
        card.locator("h2 a").click()
        expect(page).to_have_url(f"{server.url}/fleet/vehicles/{VEHICLE}")
        chart = page.locator("svg#chart-fridge")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 450 and box["height"] > 140
        expect(chart.locator("rect.band")).to_have_count(1)
        assert chart.locator("polyline.line").count() >= 1
        assert chart.locator("circle.out").count() >= 10
        for other in ("svg#chart-soc", "svg#chart-coolant"):
            expect(page.locator(other)).to_be_visible()
        check_png(chart.screenshot(path=str(SCREENSHOT_DIR / "fleet-chart-fridge.png")),
                  450, 140, min_bytes=6_000)  # a chart is mostly white: compresses well
        shot = page.screenshot(path=str(SCREENSHOT_DIR / "fleet-vehicle.png"), full_page=True)
        check_png(shot, 1200)

        row = page.locator("tr.alert-open").first
        expect(row).to_contain_text("réfrigérateur hors plage")
        row.get_by_role("button", name="Acquitter").click()
        expect(page).to_have_url(f"{server.url}/fleet/vehicles/{VEHICLE}#alerts")
        expect(page.locator("tr.alert-open").first).to_contain_text(f"Acquittée par {USER}")

        # the vehicle page's tiles are live too
        page.evaluate("window.__noReload = 2")
        assert _wait(lambda: fleet.listeners() == 1)
        fleet.reading("battery", {"soc_pct": 22.0, "voltage_v": 12.05})
        expect(page.locator('[data-f="battery"]')).to_have_class("tile tile-bad")
        expect(page.locator('[data-f="battery"] dd')).to_have_text("22 %, 12,05 V")
        # and its charts: the panel is fetched again (at most every 15 s) and put in place
        fleet.reading("fridge", {"temp_c": 11.5})
        expect(page.locator("svg#chart-fridge desc")).to_contain_text(
            "dernière valeur 11,5", timeout=25_000)
        assert page.evaluate("window.__noReload") == 2

        # logging out leaves nothing to see
        page.get_by_role("button", name="Se déconnecter").click()
        expect(page).to_have_url(f"{server.url}/fleet/login?bye=1")
        page.goto(f"{server.url}/fleet/vehicles/{VEHICLE}")
        expect(page).to_have_url(
            f"{server.url}/fleet/login?next=/fleet/vehicles/{VEHICLE}")
        csp.assert_none()  # live tiles, charts, panel and forms all kept to the CSP
    finally:
        page.close()
    assert _wait(lambda: fleet.listeners() == 0), "the stream was not closed with the page"


def test_tablet_width_has_no_horizontal_scroll(browser: Browser, server: LiveServer,
                                               fleet: FleetScene) -> None:
    fleet.fridge_excursion(minutes=12)
    fleet.reading("engine", {"coolant_c": 92.0, "rpm": 900}, codes=["P0301", "P1234"])
    for width, height in ((768, 1024), (1024, 768)):
        page, csp = log_in(browser, server.url, width, height)
        try:
            for path in ("/fleet/", f"/fleet/vehicles/{VEHICLE}"):
                page.goto(server.url + path)
                page.wait_for_load_state("load")
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at {width} px"
            box = page.locator("svg#chart-fridge").bounding_box()
            assert box is not None and box["width"] > 250
            if width == 768:
                shot = page.screenshot(path=str(SCREENSHOT_DIR / "fleet-vehicle-tablet.png"),
                                       full_page=True)  # fmt: skip
                assert png_size(shot)[0] == 768
            csp.assert_none()
        finally:
            page.close()
