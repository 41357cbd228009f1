"""The coordinator's console in a real headless Chromium (Debian's, through Playwright),
on the real ground service: a cancellation made with the week's form reaches the commune
page open on a phone within 2 s, without a reload; a move refused onto Christmas says why
at its field, then made; a visit added; the pages at a phone's and a laptop's width."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Browser, Page, expect

from ground.service import GroundService
from tests.console import PASSWORD, PERVENCHERES, VISIT, url
from tests.test_fleet_browser import check_png
from tests.test_web_browser import SCREENSHOT_DIR, CspWatch, open_page

WEEK = "/fleet/tournee?semaine=2026-W48"


def form(page: Page, form_id: str) -> Page:
    return page.locator(f'form[id="{form_id}"]')  # type: ignore[return-value]


def test_a_coordinator_changes_the_week_and_the_commune_page_follows(
        browser: Browser, console_service: GroundService) -> None:  # fmt: skip
    base = url(console_service)
    commune, commune_csp = open_page(browser, f"{base}/communes/{PERVENCHERES}", 412, 900)
    expect(commune.locator("#nv-status")).to_have_class(re.compile("status-planned"))
    coordinator = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    page = coordinator.new_page()
    csp = CspWatch(page)
    page.goto(f"{base}{WEEK}")
    page.fill("#name", "marie")
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    expect(page).to_have_url(f"{base}{WEEK}")  # back where the login was asked
    # The live map under the week: the day's stops drawn, with or without tiles.
    expect(page.locator("#fleet-map .map-stop-icon")).to_have_count(3)

    page.locator(f'[data-visit="{VISIT}"] summary').click()
    cancel = form(page, VISIT.replace("/", "-") + "-cancel")
    cancel.locator('input[name="reason"]').fill("Médecin malade")
    started = time.monotonic()
    cancel.locator("button").click()
    expect(commune.locator("#nv-status")).to_have_class(re.compile("status-cancelled"),
                                                        timeout=2000)  # fmt: skip
    assert time.monotonic() - started < 2
    expect(commune.locator("#nv-cancel")).to_contain_text("Médecin malade")
    expect(page.locator("#done")).to_contain_text("Modification n° 1 enregistrée")
    expect(page.locator(f'[data-visit="{VISIT}"]')).to_contain_text("annulée")
    expect(page.locator("#fleet-map .map-stop-icon")).to_have_count(2)  # not Pervenchères

    tuesday = "2026-11-24/remalard/am"
    page.locator(f'[data-visit="{tuesday}"] summary').click()
    move = form(page, tuesday.replace("/", "-") + "-move")
    move.locator('input[name="day"]').fill("2026-12-25")
    move.locator('input[name="reason"]').fill("Marché")
    move.locator("button").click()
    expect(page.locator("#refused")).to_contain_text("Noël")
    move = form(page, tuesday.replace("/", "-") + "-move")
    expect(move.locator('input[name="day"]')).to_have_attribute("aria-invalid", "true")
    expect(move.locator('input[name="day"]')).to_have_value("2026-12-25")  # as typed
    move.locator('input[name="day"]').fill("2026-11-24")
    move.locator('input[name="arrive"]').fill("09:30")
    move.locator('input[name="depart"]').fill("11:30")
    move.locator("button").click()
    expect(page.locator("#done")).to_contain_text("Modification n° 2 enregistrée")
    expect(page.locator(f'[data-visit="{tuesday}"]')).to_contain_text("déplacée")
    expect(page.locator(f'[data-visit="{tuesday}"]')).to_contain_text("09:30–11:30")

    page.locator("#vehicle-perche-1 details.add summary").click()
    add = form(page, "add-perche-1")
    add.locator('select[name="stop"]').select_option("remalard")
    add.locator('input[name="day"]').fill("2026-11-28")
    add.locator('select[name="half"]').select_option("pm")
    add.locator('input[name="arrive"]').fill("14:00")
    add.locator('input[name="depart"]').fill("16:30")
    add.locator('input[name="reason"]').fill("Campagne de vaccination")
    add.locator("button").click()
    expect(page.locator('[data-visit="2026-11-28/remalard/pm"]')).to_contain_text("ajoutée")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    check_png(page.screenshot(path=str(SCREENSHOT_DIR / "console-week-1280.png"),
                              full_page=True), 1280)  # fmt: skip

    phone = coordinator.new_page()  # the same session, on a phone's width
    phone.set_viewport_size({"width": 412, "height": 900})
    csp_phone = CspWatch(phone)
    for path, name in ((WEEK, "week"), ("/fleet/tournee/mois?mois=2026-11", "month"),
                       ("/fleet/tournee/historique", "history")):  # fmt: skip
        phone.goto(f"{base}{path}")
        overflow = phone.evaluate("document.documentElement.scrollWidth"
                                  " - document.documentElement.clientWidth")  # fmt: skip
        assert overflow <= 0, f"{name}: {overflow} px of horizontal scroll on a phone"
        check_png(phone.screenshot(path=str(SCREENSHOT_DIR / f"console-{name}-412.png"),
                                   full_page=True), 412)  # fmt: skip
    expect(phone.locator("table.history")).to_contain_text("Campagne de vaccination")
    assert not csp.seen and not csp_phone.seen and not commune_csp.seen
    coordinator.close()
