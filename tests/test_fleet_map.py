"""The live map's data and settings: `GET /fleet/api/map` behind the login (vehicles with
their last position, presence and status, the day's stops with their live status, the route
driven since midnight, thinned and capped), its ETag; the `[map]` settings, refused when
unusable, and the Content-Security-Policy that lets in the configured tile server alone.
(tests/test_fleet_map_browser.py draws it in Chromium.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ground.fleet import load_fleet
from ground.service import GroundService, load_ground
from ground.web.app import create_app
from ground.web.fleet import fleet_router
from ground.web.fleet.live_map import ROUTE_MAX_POINTS
from ground.web.headers import content_security_policy
from ground.web.map import MapSettings
from medicobus import contract
from medicobus.geo import distance_m, offset, thin_track
from medicobus.settings import ConfigError
from tests.harness import FLEET
from tests.test_fleet_pages import FleetScene, ground_config, login
from tests.test_web_pages import PARIS, VEHICLE, LiveServer, Scene

TILES = MapSettings(tiles="http://tiles.example.net:8081/osm/{z}/{x}/{y}.png",
                    attribution="© contributeurs OpenStreetMap")  # fmt: skip


class MapScene(FleetScene):
    """The fleet scene with positions stored as ingest stores them, and the map's tiles
    from `tiles`."""

    def __init__(self, db: Path, tiles: MapSettings = TILES) -> None:
        super().__init__(db)
        self.tiles = tiles
        self.router = fleet_router(self.board, self.store, self.alerts, self.settings,
                                   session_clock=self.wall, map_settings=tiles)  # fmt: skip

    def app(self) -> FastAPI:
        return create_app(self.board, fleet=self.router, map_settings=self.tiles)

    def position(self, lat: float, lon: float, minutes_ago: float = 0,
                 speed: float = 12.0) -> None:
        ts = self.clock.now() - timedelta(minutes=minutes_ago)
        p = contract.Position(vehicle=VEHICLE, ts=ts, lat=lat, lon=lon, speed=speed,
                              heading=90)  # fmt: skip
        self.store.record([(p, self.clock.now())])
        self.state.apply(p, self.clock.now())
        self.board.notify({VEHICLE})

    def morning_drive(self) -> list[tuple[float, float]]:
        """From the depot, 6 km west of Nocé, to 500 m short of its stop: a fix every 100 m
        for 28 min, then parked (ten fixes on the spot; far enough not to be taken for
        there, ground/progress.py); and yesterday's trip, which is not today's."""
        noce = self.fleet.stop("noce")
        self.position(noce.lat, noce.lon - 0.5, minutes_ago=24 * 60)  # yesterday
        driven = []
        for i in range(56):
            lat, lon = offset(noce.lat, noce.lon, 0, -6000 + i * 100)
            driven.append((lat, lon))
            self.position(lat, lon, minutes_ago=45 - i * 0.5)
        for i in range(10):
            self.position(*driven[-1], minutes_ago=14 - i, speed=0.0)
        return driven


@pytest.fixture
def scene(tmp_path: Path) -> MapScene:
    return MapScene(tmp_path / "ground.db")


@pytest.fixture
def client(scene: MapScene) -> Iterator[TestClient]:
    with TestClient(scene.app()) as c:
        yield c


def test_the_map_needs_a_login(client: TestClient) -> None:
    r = client.get("/fleet/api/map")
    assert r.status_code == 401 and r.headers["cache-control"] == "no-store"
    assert "vehicles" not in r.text
    login(client)
    assert client.get("/fleet/api/map").status_code == 200


def test_the_map_shows_vehicles_the_days_stops_and_the_route(client: TestClient,
                                                              scene: MapScene) -> None:
    login(client)
    empty = client.get("/fleet/api/map").json()
    assert empty["day"] == "2026-11-23"
    bus = empty["vehicles"][0]
    assert (bus["id"], bus["name"], bus["presence"]) == (VEHICLE, "Médicobus du Perche",
                                                          "unknown")  # fmt: skip
    assert bus["position"] is None and bus["route"] == []
    driven = scene.morning_drive()
    r = client.get("/fleet/api/map")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    bus = r.json()["vehicles"][0]
    assert bus["presence"] == "online" and bus["presence_text"] == "en ligne · online"
    assert bus["position"]["lat"] == pytest.approx(driven[-1][0])
    assert bus["position"]["ts"] == "2026-11-23T07:55:00+01:00"  # local time, the last fix
    assert bus["status"] == "planned"  # parked near the stop, no arrival yet
    assert bus["status_text"] == "Prochain arrêt : Nocé (prévu · scheduled)"
    stops = bus["stops"]
    assert [(s["n"], s["commune"], s["hours"]) for s in stops] == [
        (1, "Nocé", "08:30–10:30"), (2, "Bellême", "11:00–12:30"),
        (3, "Pervenchères", "14:00–17:00")]
    first = stops[0]
    assert (first["visit"], first["place"], first["insee"]) == ("2026-11-23/noce/am",
                                                                "Place de l'église", "61309")
    assert (first["lat"], first["lon"]) == (48.3838, 0.6783)
    assert first["arrive"] == "2026-11-23T08:30:00+01:00"
    assert first["status"] == "planned" and first["eta_text"] == "arrivée estimée 08:30 · ETA 08:30"
    assert stops[1]["status"] == "planned" and stops[1]["status_text"] == "prévu · scheduled"
    # the route: today's fixes only, 100 m apart so all kept, the ten parked ones as one
    route = [tuple(p) for p in bus["route"]]
    assert len(route) == len(driven)
    assert route[0] == pytest.approx(driven[0]) and route[-1] == pytest.approx(driven[-1])

    # at the stop: the stop's and the vehicle's status follow
    scene.arrive_noce()
    scene.clock.advance(35)  # past the planned start: consulting
    bus = client.get("/fleet/api/map").json()["vehicles"][0]
    assert bus["stops"][0]["status"] == "consulting" and bus["stops"][0]["eta_text"] == ""
    assert bus["status_text"] == "À Nocé : en consultation · consulting"


def test_an_unchanged_map_is_not_sent_again(client: TestClient, scene: MapScene) -> None:
    login(client)
    scene.morning_drive()
    first = client.get("/fleet/api/map")
    tag = first.headers["etag"]
    again = client.get("/fleet/api/map", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    scene.position(48.39, 0.67)  # the bus moved: the map is sent, with a new tag
    moved = client.get("/fleet/api/map", headers={"If-None-Match": tag})
    assert moved.status_code == 200 and moved.headers["etag"] != tag
    assert moved.json()["vehicles"][0]["position"]["lat"] == 48.39


def test_a_long_day_stays_a_small_answer(client: TestClient, scene: MapScene) -> None:
    """Ten hours of fixes every 2 s along a winding road: capped, first and last kept."""
    login(client)
    start = scene.fleet.stop("noce")
    fixes = []
    for i in range(18_000):
        lat, lon = offset(start.lat, start.lon, 30 * (i % 400), 30 * (i // 400))
        fixes.append((contract.Position(vehicle=VEHICLE, lat=lat, lon=lon, speed=15.0,
                                        ts=scene.clock.now() - timedelta(seconds=2 * (18_000 - i))),
                      scene.clock.now()))  # fmt: skip
    scene.store.record(fixes)
    r = client.get("/fleet/api/map")
    route = r.json()["vehicles"][0]["route"]
    assert len(route) == ROUTE_MAX_POINTS
    assert tuple(route[-1]) == pytest.approx((fixes[-1][0].lat, fixes[-1][0].lon))
    assert len(r.content) < 40_000


def test_the_map_reads_the_fleet_when_asked(client: TestClient, scene: MapScene,
                                            tmp_path: Path) -> None:
    """The fleet may be replaced while the ground runs: the map follows at once."""
    login(client)
    renamed = tmp_path / "fleet.toml"
    renamed.write_text(Path(FLEET).read_text(encoding="utf-8").replace(
        'name = "Médicobus du Perche"', 'name = "Doctobus du Perche"'), encoding="utf-8")
    scene.board.fleet = load_fleet(renamed)
    assert client.get("/fleet/api/map").json()["vehicles"][0]["name"] == "Doctobus du Perche"


@pytest.mark.parametrize(("day", "hours"), [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25)])
def test_the_route_is_the_local_day_across_a_clock_change(client: TestClient, scene: MapScene,
                                                          day: date, hours: int) -> None:
    """The day the clocks change has 23 or 25 hours: its route is every fix of it, from
    local midnight to local midnight, and none of the days around it."""
    login(client)
    start = datetime.combine(day, time(0), PARIS).astimezone(UTC)  # real hours from here
    scene.clock.at = start + timedelta(hours=hours, minutes=-5)  # 23:55, local
    noce = scene.fleet.stop("noce")
    moments = [start - timedelta(minutes=10)]  # the evening before
    moments += [start + timedelta(minutes=10 + 60 * h) for h in range(hours)]  # each hour
    for n, moment in enumerate(moments):
        p = contract.Position(vehicle=VEHICLE, ts=moment, lat=noce.lat,
                              lon=offset(noce.lat, noce.lon, 0, 1000 * n)[1])  # fmt: skip
        scene.store.record([(p, scene.clock.now())])
    route = client.get("/fleet/api/map").json()["vehicles"][0]["route"]
    assert len(route) == hours  # one fix per real hour of the day, the one before left out
    assert route[0][1] == pytest.approx(offset(noce.lat, noce.lon, 0, 1000)[1])


# --- the route, thinned -------------------------------------------------------------------


def test_thin_track_drops_close_fixes_and_keeps_the_ends() -> None:
    assert thin_track([], 25, 10) == []
    assert thin_track([(48.0, 0.5)], 25, 10) == [(48.0, 0.5)]
    parked = [(48.0, 0.5)] + [offset(48.0, 0.5, 3 * i, 0) for i in range(1, 6)]
    # 15 m of jitter in all: the first fix and where the bus is now
    assert thin_track(parked, 25, 10) == [parked[0], parked[-1]]
    line = [offset(48.0, 0.5, 10 * i, 0) for i in range(100)]  # a fix every 10 m
    kept = thin_track(line, 25, 1000)
    assert kept[0] == line[0] and kept[-1] == line[-1]
    steps = [distance_m(*a, *b) for a, b in zip(kept, kept[1:], strict=False)]
    assert all(s >= 25 for s in steps[:-1]) and max(steps) < 31
    capped = thin_track(line, 0, 7)
    assert len(capped) == 7 and capped[0] == line[0] and capped[-1] == line[-1]
    assert capped == [line[round(i * 99 / 6)] for i in range(7)]  # evenly spaced


def test_the_store_reads_a_bounded_track(scene: MapScene) -> None:
    now = scene.clock.now()
    fixes = [(contract.Position(vehicle=VEHICLE, ts=now - timedelta(seconds=i), lat=48.0,
                                lon=0.5 + i / 1000), now) for i in range(1000)]  # fmt: skip
    scene.store.record(fixes)
    track = scene.store.track(VEHICLE, now - timedelta(hours=1), now + timedelta(seconds=1),
                              max_rows=100)
    assert 90 <= len(track) <= 101
    assert track[0][:2] == (48.0, 0.5 + 999 / 1000) and track[-1][:2] == (48.0, 0.5)
    assert track[-1][3] == now and track[0][3] < track[1][3]  # oldest first, with times
    assert scene.store.track("other", now - timedelta(hours=1), now, 100) == []


def test_wild_fixes_stay_off_the_route(client: TestClient, scene: MapScene) -> None:
    """A fix 40 km off for one report (multipath, a receiver's glitch) is not driven: the
    marker never went there (ground.state holds it back), nor does the line."""
    login(client)
    noce = scene.fleet.stop("noce")
    for i in range(10):
        scene.position(*offset(noce.lat, noce.lon, 0, -3000 + 300 * i), minutes_ago=10 - i)
        if i == 4:
            scene.position(*offset(noce.lat, noce.lon, 40_000, 0), minutes_ago=5.5)
    route = client.get("/fleet/api/map").json()["vehicles"][0]["route"]
    assert len(route) == 10
    assert max(distance_m(noce.lat, noce.lon, lat, lon) for lat, lon in route) < 3100
    # the last fix wild: held back, off the line too, until the next one agrees with it
    far = offset(noce.lat, noce.lon, 40_000, 0)
    scene.position(*far, minutes_ago=0.5)
    route = client.get("/fleet/api/map").json()["vehicles"][0]["route"]
    assert len(route) == 10
    scene.position(*offset(*far, 0, 300), minutes_ago=0)
    route = client.get("/fleet/api/map").json()["vehicles"][0]["route"]
    assert len(route) == 12 and tuple(route[-2]) == pytest.approx(far)
    assert client.get("/fleet/api/map").json()["vehicles"][0]["position"]["lat"] == \
        pytest.approx(route[-1][0])


# --- settings and the Content-Security-Policy ------------------------------------------------


def test_the_csp_lets_in_the_configured_tile_server_alone(scene: MapScene) -> None:
    with LiveServer(scene.app()) as server, httpx.Client(base_url=server.url) as client:
        for path in ("/", "/fleet/login", "/static/map.js"):
            csp = client.get(path).headers["content-security-policy"]
            assert csp == content_security_policy(["http://tiles.example.net:8081"])
            directives = dict(d.split(" ", 1) for d in csp.split("; "))
            assert directives["img-src"] == "'self' http://tiles.example.net:8081"
            assert "tiles.example" not in csp.replace(directives["img-src"], "")
            assert "openstreetmap" not in csp


def test_the_ground_config_sets_the_map(tmp_path: Path) -> None:
    config = ground_config(tmp_path, """
[map]
tiles = "https://tuiles.example.fr/carte/{z}/{x}/{y}.png?cle=abc"
attribution = "© IGN, OpenStreetMap"
attribution_url = "https://tuiles.example.fr/credits"
max_zoom = 17
""")
    service = GroundService(load_ground(config), Scene().clock)
    try:
        with TestClient(service.app) as c:
            assert "img-src 'self' https://tuiles.example.fr;" in \
                c.get("/").headers["content-security-policy"]
            login(c)
            page = c.get("/fleet/").text
    finally:
        service.alerts.close()
        service.store.close()
    assert 'data-tiles="https://tuiles.example.fr/carte/{z}/{x}/{y}.png?cle=abc"' in page
    assert 'data-max-zoom="17"' in page and 'data-attribution="© IGN, OpenStreetMap"' in page
    assert 'data-attribution-url="https://tuiles.example.fr/credits"' in page
    assert '<script src="/static/map.js" defer></script>' in page


@pytest.mark.parametrize(("table", "expected"), [
    ('tiles = "ftp://tiles.example.net/{z}/{x}/{y}.png"',
     "map.tiles: must be an http:// or https:// URL with a host"),
    ('tiles = "tile.openstreetmap.org/{z}/{x}/{y}.png"',
     "map.tiles: must be an http:// or https:// URL with a host"),
    ('tiles = "https://tile.openstreetmap.org/{z}/{x}.png"',
     "map.tiles: tile URL template lacks {y}"),
    ('tiles = "https://tile.openstreetmap.org/tiles.png"',
     "map.tiles: tile URL template lacks {z}, {x}, {y}"),
    ('tiles = "https://{s}.tile.example.net/{z}/{x}/{y}.png"',
     "map.tiles: the tile server's host must be fixed"),
    ('tiles = "https://tiles.example.net/{z}/{x}/{y}.png; script-src *"',
     "map.tiles: must not contain spaces, quotes or semicolons"),
    ('tiles = "https://tiles.example.net:port/{z}/{x}/{y}.png"', "map.tiles: not a URL"),
    ('attribution_url = "javascript:alert(1)"',
     "map.attribution_url: must be an http:// or https:// URL with a host"),
    ('attribution = ""', "map.attribution: String should have at least 1 character"),
    ("max_zoom = 30", "map.max_zoom: Input should be less than or equal to 22"),
    ('tile = "https://tiles.example.net/{z}/{x}/{y}.png"', "map.tile: Extra inputs"),
])  # fmt: skip
def test_a_bad_map_config_is_refused_saying_why(tmp_path: Path, table: str,
                                                expected: str) -> None:
    config = tmp_path / "ground.toml"
    config.write_text(f'fleet = "{FLEET}"\n[map]\n{table}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_ground(config)
    assert f"{config}: {expected}" in str(caught.value)


def test_an_arrival_seen_only_in_the_positions_is_marked_for_the_manager(
        client: TestClient, scene: MapScene) -> None:
    login(client)
    noce = scene.fleet.stop("noce")
    lat, lon = offset(noce.lat, noce.lon, 220, 0)  # the square taken: parked off the fence
    scene.clock.advance(40)  # 08:40, the session under way
    for minutes_ago in (12, 8, 4, 0):
        scene.position(lat, lon, minutes_ago=minutes_ago, speed=0.0)
    bus = client.get("/fleet/api/map").json()["vehicles"][0]
    assert bus["stops"][0]["status"] == "consulting"
    assert bus["stops"][0]["status_text"] == (
        "en consultation · consulting (déduit des positions · from the positions)")
    # The commune's public page says the bus is there, without the manager's detail.
    page = client.get("/communes/61309")
    assert page.status_code == 200 and "consultation" in page.text
    assert "déduit" not in page.text
