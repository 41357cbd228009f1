"""The live map of the fleet dashboard in a real headless Chromium (Debian's), on the real
uvicorn server: vehicles, the day's numbered stops and the route are drawn with the tile
server out of reach (a note says so), and follow a new position without a reload; with a
real tile server, its tiles load and the Content-Security-Policy blocks images from any
other origin."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from ground.web.map import MapSettings
from medicobus.geo import offset
from tests.brokers import free_port
from tests.test_fleet_browser import log_in
from tests.test_fleet_map import MapScene
from tests.test_web_browser import SCREENSHOT_DIR, _wait
from tests.test_web_pages import VEHICLE, LiveServer

TILE = (Path(__file__).resolve().parents[1] / "ground" / "web" / "static" / "vendor" /
        "leaflet" / "images" / "layers.png").read_bytes()  # any PNG is a tile to Leaflet


class TileServer:
    """A real HTTP tile server on a free port: the same small PNG for every tile."""

    def __init__(self) -> None:
        served = self.served = []  # type: list[str]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                served.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(TILE)))
                self.end_headers()
                self.wfile.write(TILE)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def scene_with_tiles(tmp_path: Path, origin: str) -> MapScene:
    scene = MapScene(tmp_path / "ground.db", MapSettings(
        tiles=origin + "/{z}/{x}/{y}.png", attribution="© contributeurs OpenStreetMap"))
    scene.healthy_day()
    scene.morning_drive()
    return scene


def route_end(page: Page) -> float:
    """The screen x of the drawn route's east end (the morning's drive goes east)."""
    b = page.locator("#fleet-map path.map-route").bounding_box()
    assert b is not None
    return b["x"] + b["width"]


def test_markers_and_route_are_drawn_without_tiles_and_follow_the_bus(
        browser: Browser, tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    scene = scene_with_tiles(tmp_path, unreachable)
    with LiveServer(scene.app()) as server:
        page, csp = log_in(browser, server.url, 1280, 900)
        try:
            box = page.locator("#fleet-map")
            bus = box.locator(f'.map-vehicle-mark[data-vehicle="{VEHICLE}"]')
            expect(bus).to_be_visible()
            expect(bus).to_have_text("Médicobus du Perche")
            marks = box.locator(".map-stop[data-visit]")
            expect(marks).to_have_count(3)
            assert marks.all_text_contents() == ["1", "2", "3"]
            expect(box.locator('.map-stop[data-visit="2026-11-23/noce/am"]')).to_have_class(
                "map-stop status-planned")
            expect(box.locator("path.map-route")).to_have_count(1)
            line = box.locator("path.map-route").bounding_box()
            assert line is not None and line["width"] > 100  # the 6 km drive, at this zoom
            expect(page.locator("#map-tiles-note")).to_be_visible()
            expect(page.locator("#map-tiles-note")).to_contain_text("Fond de carte indisponible")
            credit = box.locator(".leaflet-control-attribution a", has_text="contributeurs")
            expect(credit).to_have_attribute("href", "https://www.openstreetmap.org/copyright")
            # every marker is on the map's visible part (fitted to what is drawn)
            frame = box.bounding_box()
            assert frame is not None
            for mark in [bus, *marks.all()]:
                b = mark.bounding_box()
                assert b is not None and frame["x"] <= b["x"] <= frame["x"] + frame["width"]
                assert frame["y"] <= b["y"] <= frame["y"] + frame["height"]
            page.screenshot(path=str(SCREENSHOT_DIR / "fleet-map-no-tiles.png"), full_page=True)

            # the popup of a stop says where and when
            marks.nth(1).click()  # Nocé's is under the bus, 100 m from it
            popup = box.locator(".leaflet-popup-content")
            expect(popup).to_contain_text("2. Bellême")
            expect(popup).to_contain_text("Parking de la mairie")
            expect(popup).to_contain_text("Prévu · planned 11:00–12:30")
            expect(popup).to_contain_text("prévu · scheduled")

            # live: the bus drives 3 km further east; its marker and route follow
            page.evaluate("window.__noReload = 1")
            before, end = bus.bounding_box(), route_end(page)
            assert before is not None
            noce = scene.fleet.stop("noce")
            for east in (1000, 2000, 3000):
                scene.clock.advance(1)
                scene.position(*offset(noce.lat, noce.lon, 0, east))
            assert _wait(lambda: (bus.bounding_box() or before)["x"] > before["x"] + 20, 8.0), \
                "the vehicle marker did not move"
            assert _wait(lambda: route_end(page) > end + 20, 8.0), "the route was not extended"
            assert page.evaluate("window.__noReload") == 1, "the page was reloaded"

            # at the stop: its marker turns to "consulting"
            scene.arrive_noce()
            scene.clock.advance(35)
            scene.board.notify({VEHICLE})
            expect(box.locator('.map-stop[data-visit="2026-11-23/noce/am"]')).to_have_class(
                "map-stop status-consulting", timeout=8000)

            # zooming drops tiles (Leaflet would point them to a data: image): within the CSP
            page.locator(".leaflet-control-zoom-out").click()
            page.locator(".leaflet-control-zoom-out").click()
            page.locator(".leaflet-control-zoom-in").click()
            page.wait_for_timeout(800)
            csp.assert_none()
        finally:
            page.close()


def test_the_configured_tiles_load_and_no_other_image_origin(browser: Browser,
                                                             tmp_path: Path) -> None:
    tiles, other = TileServer(), TileServer()
    try:
        scene = scene_with_tiles(tmp_path, tiles.origin)
        with LiveServer(scene.app()) as server:
            page, csp = log_in(browser, server.url, 390, 844)  # a phone
            try:
                loaded = page.locator("#fleet-map img.leaflet-tile-loaded")
                expect(loaded.first).to_be_visible()
                assert tiles.served and all(p.endswith(".png") for p in tiles.served)
                expect(page.locator(f'.map-vehicle-mark[data-vehicle="{VEHICLE}"]')).to_be_visible()
                expect(page.locator("#map-tiles-note")).to_be_hidden()
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
                page.screenshot(path=str(SCREENSHOT_DIR / "fleet-map-phone.png"), full_page=True)
                csp.assert_none()
                # an image from any other origin is refused by the browser
                page.evaluate("u => { const i = new Image(); i.src = u; document.body.append(i); }",
                              other.origin + "/7/63/44.png")  # fmt: skip
                assert _wait(lambda: any("img-src" in s and other.origin in s
                                         for s in csp.seen)), csp.seen
                assert other.served == []
            finally:
                page.close()
    finally:
        tiles.close()
        other.close()

