"""The fleet dashboard's content: the vehicle list, a vehicle's page (charts, alerts with
who acknowledged them, trouble codes), the fridge CSV, the JSON API and the live stream, on
the real Board, Store and AlertEngine. Logged in throughout (test_fleet_auth checks the
door)."""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ground.alerts import DEFAULT_RULES, AlertEngine, AlertStorage
from ground.service import GroundService, load_ground
from ground.store import Store
from ground.web.app import create_app
from ground.web.auth import AuthSettings, User, hash_password
from ground.web.fleet import fleet_router
from ground.web.fleet.charts import svg_chart
from ground.web.fleet.dtc import meaning
from ground.web.format import number
from medicobus import contract
from tests.clocks import ManualClock
from tests.harness import FLEET
from tests.test_web_pages import (
    ISO_WITH_OFFSET,
    NOCE,
    PARIS,
    VEHICLE,
    LiveServer,
    Scene,
    read_events,
    text_of,
)

USER, PASSWORD = "claire", "cha1ne du froid"
OTHER, OTHER_PASSWORD = "marc", "tournee-du-perche"
# Hashed once: scrypt is slow on purpose. Cheaper parameters would test less of it.
HASHES = {USER: hash_password(PASSWORD), OTHER: hash_password(OTHER_PASSWORD)}


def settings(**extra: object) -> AuthSettings:
    return AuthSettings(users=[User(name=n, password_hash=h) for n, h in HASHES.items()],
                        session_secret="s3cret-for-tests-only-0123456789", **extra)  # type: ignore[arg-type]


class FleetScene(Scene):
    """The demo fleet at 08:00 on Monday 23 November 2026, with a store, the real alert
    engine and a wall clock for sessions that the test moves by hand."""

    def __init__(self, db: Path, refresh_s: float = 30.0, **auth: object) -> None:
        super().__init__()
        self.store = Store(db)
        self.alerts = AlertEngine(DEFAULT_RULES, AlertStorage(db), self.state, self.fleet,
                                  self.clock)
        self.wall = ManualClock(datetime(2026, 11, 23, 7, 0, tzinfo=PARIS))
        self.settings = settings(**auth)
        self.router = fleet_router(self.board, self.store, self.alerts, self.settings,
                                   session_clock=self.wall, refresh_s=refresh_s)  # fmt: skip

    def app(self) -> FastAPI:
        """As create_app will mount it."""
        app = create_app(self.board)
        app.include_router(self.router, prefix="/fleet")
        return app

    def reading(self, sensor: str, values: dict[str, float | None], minutes_ago: float = 0,
                flags: dict[str, str] | None = None, codes: list[str] | None = None,
                notify: bool = True) -> None:
        """What ingest does with a reading: store, apply, judge the alerts, tell listeners."""
        ts = self.clock.now() - timedelta(minutes=minutes_ago)
        r = contract.Reading(vehicle=VEHICLE, ts=ts, sensor=sensor, values=values,
                             flags=flags or {}, codes=codes)  # type: ignore[arg-type]
        self.store.record([(r, self.clock.now())])
        self.state.apply(r, self.clock.now())
        if notify:
            self.alerts.evaluate({VEHICLE})
            self.board.notify({VEHICLE})

    def healthy_day(self) -> None:
        """24 h of a cold fridge, a draining then charged battery and a warm engine."""
        for m in range(24 * 60, 0, -10):
            self.reading("fridge", {"temp_c": 4.5 + (m % 30) / 30}, minutes_ago=m, notify=False)
            self.reading("battery", {"soc_pct": 60 + (m % 120) / 6, "voltage_v": 12.9},
                         minutes_ago=m, notify=False)  # fmt: skip
        for m in range(120, 0, -5):
            self.reading("engine", {"coolant_c": 88.0, "rpm": 1500, "fuel_pct": 62.0},
                         minutes_ago=m, notify=False)  # fmt: skip
        self.reading("fridge", {"temp_c": 5.2})
        self.reading("battery", {"soc_pct": 76.0, "voltage_v": 12.95, "current_a": -3.1})
        self.reading("engine", {"coolant_c": 89.0, "rpm": 800, "fuel_pct": 61.0}, codes=[])

    def fridge_excursion(self, minutes: int = 15, temp: float = 9.6) -> None:
        """The fridge above 8 °C from a minute from now, for `minutes` (the rule wants 10)."""
        self.clock.advance(minutes)
        for m in range(minutes - 1, -1, -1):
            self.reading("fridge", {"temp_c": temp}, minutes_ago=m, notify=False)
        self.alerts.evaluate({VEHICLE})
        self.board.notify({VEHICLE})


def login(client: TestClient, name: str = USER, password: str = PASSWORD) -> httpx.Response:
    r = client.post("/fleet/login", data={"name": name, "password": password,
                                          "next": "/fleet/"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    return r


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def ground_config(folder: Path, more: str) -> Path:
    """A ground.toml in `folder` for the demo fleet with USER's account, and `more`."""
    config = folder / "ground.toml"
    config.write_text(f"""
fleet = "{FLEET}"
database = "ground.db"
[dashboard]
session_secret = "s3cret-for-tests-only-0123456789"
[[dashboard.users]]
name = "{USER}"
password_hash = "{HASHES[USER]}"
""" + more, encoding="utf-8")
    return config


@pytest.fixture
def fleet(tmp_path: Path) -> FleetScene:
    return FleetScene(tmp_path / "ground.db")


@pytest.fixture
def client(fleet: FleetScene) -> Iterator[TestClient]:
    with TestClient(fleet.app()) as c:
        login(c)
        yield c


def tile(html: str, field: str) -> tuple[str, str]:
    """(state, text) of a vehicle tile."""
    m = re.search(rf'<div class="tile tile-(\w+)" data-v="{VEHICLE}" data-f="{field}">(.*?)</div>',
                  html, flags=re.S)  # fmt: skip
    assert m, f"no {field} tile"
    return m.group(1), text_of(m.group(2)).strip()


# --- the vehicle list ---------------------------------------------------------------------


def test_vehicle_list_shows_every_vehicle_at_a_glance(client: TestClient,
                                                      fleet: FleetScene) -> None:
    fleet.healthy_day()
    r = client.get("/fleet/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert '<html lang="fr">' in r.text
    text = text_of(r.text)
    assert "Véhicules" in text and "Vehicles" in text
    for v in fleet.fleet.vehicles:
        assert f'href="/fleet/vehicles/{v.id}"' in r.text and v.name in text
    assert tile(r.text, "presence") == ("ok", "Liaison Link en ligne · online")
    assert tile(r.text, "fridge") == ("ok", "Réfrigérateur Fridge 5,2 °C (dans la plage) — "
                                            "plage 2–8 °C")
    assert tile(r.text, "battery")[1].endswith("76 %, 12,95 V")
    assert tile(r.text, "fuel") == ("ok", "Carburant Fuel 61 %")
    assert tile(r.text, "engine") == ("ok", "Moteur Engine liquide de refroidissement 89 °C, "
                                            "800 tr/min")
    assert tile(r.text, "alerts") == ("ok", "Alertes Alerts aucune alerte · no alert")
    assert "Prochain arrêt : Nocé, arrivée estimée 08:30 (prévue 08:30)" in \
        tile(r.text, "stop")[1]
    assert tile(r.text, "delay")[1].endswith("à l'heure · on time")
    assert 'data-events="/fleet/events"' in r.text
    assert '<script src="/static/fleet.js"></script>' in r.text
    assert not re.search(r'(src|href)="(https?:)?//', r.text), "an external resource"
    assert "Se déconnecter" in text and USER in text


def test_fridge_out_of_band_is_highlighted(client: TestClient, fleet: FleetScene) -> None:
    fleet.healthy_day()
    fleet.reading("fridge", {"temp_c": 9.6})
    state, text = tile(client.get("/fleet/").text, "fridge")
    assert state == "bad" and "9,6 °C (HORS PLAGE)" in text
    fleet.reading("fridge", {"temp_c": 1.4})
    assert tile(client.get("/fleet/").text, "fridge")[0] == "bad"  # too cold is out too
    fleet.reading("fridge", {"temp_c": 3.0})
    assert tile(client.get("/fleet/").text, "fridge")[0] == "ok"
    # the probe's 85 °C power-on value is flagged, never shown as a temperature
    fleet.reading("fridge", {"temp_c": None}, flags={"temp_c": "power_on_reset"})
    state, text = tile(client.get("/fleet/").text, "fridge")
    assert state == "warn" and "valeur de mise sous tension" in text and "85 °C (" not in text
    # a second probe gets its own value
    fleet.reading("fridge", {"temp_c": 4.0, "temp2_c": 8.4})
    state, text = tile(client.get("/fleet/").text, "fridge")
    assert state == "bad" and "temp_c : 4,0 °C (dans la plage)" in text
    assert "temp2_c : 8,4 °C (HORS PLAGE)" in text


def test_battery_low_and_engine_hot_are_flagged(client: TestClient, fleet: FleetScene) -> None:
    fleet.reading("battery", {"soc_pct": 24.0, "voltage_v": 12.1})
    fleet.reading("engine", {"coolant_c": 108.0, "rpm": 2400, "fuel_pct": 8.0})
    html = client.get("/fleet/").text
    assert tile(html, "battery") == ("bad", "Batterie cellule House battery 24 %, 12,10 V")
    assert tile(html, "engine")[0] == "bad" and "108 °C" in tile(html, "engine")[1]
    assert tile(html, "fuel") == ("bad", "Carburant Fuel 8 %")


def test_delay_position_and_presence(client: TestClient, fleet: FleetScene) -> None:
    fleet.driving_towards_noce(km=30)  # 45 min away at 08:00: 15 min late at Nocé
    html = client.get("/fleet/").text
    assert tile(html, "delay") == ("bad", "Horaire Schedule retard de 15 min · 15 min late")
    assert "arrivée estimée 08:45 (prévue 08:30)" in tile(html, "stop")[1]
    where = tile(html, "where")[1]
    assert "en route vers Nocé" in where and "km de" in where
    fleet.status("offline")
    fleet.clock.advance(12)
    html = client.get("/fleet/").text
    assert tile(html, "presence") == ("bad", "Liaison Link hors ligne · offline "
                                             "(dernier contact il y a 12 min)")
    fleet.status("online")
    fleet.arrive_noce()
    html = client.get("/fleet/").text
    assert tile(html, "where")[1] == "Position Where À Nocé, Place de l'église"
    assert "À Nocé : arrivé · arrived" in tile(html, "stop")[1]


def test_open_alerts_on_the_list_and_on_the_vehicle_page(client: TestClient,
                                                         fleet: FleetScene) -> None:
    fleet.healthy_day()
    fleet.fridge_excursion(minutes=15)
    [alert] = fleet.alerts.open_alerts(VEHICLE)
    assert alert.rule == "fridge_temp"
    state, text = tile(client.get("/fleet/").text, "alerts")
    assert state == "bad" and "1 alerte ouverte (critique) · 1 open" in text

    page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    row = re.search(rf'<tr class="alert-open sev-critical unacked" id="alert-{alert.id}">'
                    r"(.*?)</tr>", page, flags=re.S)  # fmt: skip
    assert row, "the open alert is not listed"
    text = text_of(row.group(1))
    assert "réfrigérateur hors plage" in text and "fridge out of range" in text
    assert "critique" in text and "08:11" in text and "9,6 °C" in text
    assert f'action="/fleet/vehicles/{VEHICLE}/alerts/{alert.id}/acknowledge"' in row.group(1)
    assert "Acquitter" in text

    # acknowledge it: the page then says who and when, and offers no button
    fleet.clock.advance(3)
    r = client.post(f"/fleet/vehicles/{VEHICLE}/alerts/{alert.id}/acknowledge",
                    data={"csrf": csrf_of(page)}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/fleet/vehicles/{VEHICLE}#alerts"
    assert fleet.alerts.get(alert.id).acknowledged_by == USER
    page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    row = re.search(rf'id="alert-{alert.id}">(.*?)</tr>', page, flags=re.S)
    assert row and "Acquittée par claire à 08:18" in text_of(row.group(1))
    assert "/acknowledge" not in row.group(1)

    # the fridge comes back: the alert closes and stays in the history with its record
    for _ in range(8):
        fleet.clock.advance(1)
        fleet.reading("fridge", {"temp_c": 5.0})
    assert fleet.alerts.open_alerts(VEHICLE) == []
    page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    row = re.search(rf'<tr class="alert-closed sev-critical" id="alert-{alert.id}">(.*?)</tr>',
                    page, flags=re.S)  # fmt: skip
    assert row, "the closed alert left the history"
    assert "Acquittée par claire à 08:18" in text_of(row.group(1))
    assert "Close à 08:" in text_of(row.group(1))
    assert tile(client.get("/fleet/").text, "alerts")[0] == "ok"


def test_trouble_codes_with_their_meaning(client: TestClient, fleet: FleetScene) -> None:
    fleet.reading("engine", {"rpm": 800}, codes=["P0301", "P1234", "P0999"])
    fleet.reading("battery", {"soc_pct": 70}, codes=["LOW_VOLTAGE"])
    page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    section = text_of(page.split('class="codes"')[1])
    assert "P0301 Ratés d'allumage, cylindre 1 Cylinder 1 misfire detected moteur 08:00" in section
    assert "P1234 code constructeur (moteur / boîte) manufacturer-specific code" in section
    assert "P0999 code générique (moteur / boîte) : signification non répertoriée ici" in section
    assert "LOW_VOLTAGE low voltage" in section and "batterie" in section
    # the new-code rule opened alerts that name the code
    assert "nouveau code défaut P0301" in text_of(page)
    api = client.get(f"/fleet/api/vehicles/{VEHICLE}").json()
    assert {c["code"]: c["known"] for c in api["codes"]} == {
        "LOW_VOLTAGE": True, "P0301": True, "P1234": False, "P0999": False}


def test_dtc_table() -> None:
    assert meaning("p0420").fr == "Catalyseur : efficacité insuffisante (banc 1)"
    assert meaning("P0420").en == "Catalyst system efficiency below threshold (bank 1)"
    assert meaning("P1ABC").fr == "code constructeur (moteur / boîte)"
    assert meaning("U0100").known is False and "réseau" in meaning("U0100").fr
    assert meaning("C1234").fr == "code constructeur (châssis)"
    assert meaning("XYZ").fr == "code inconnu"


def test_vehicle_page_draws_24_hour_charts(client: TestClient, fleet: FleetScene) -> None:
    fleet.healthy_day()
    fleet.fridge_excursion(minutes=15)
    page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    for chart in ("chart-fridge", "chart-soc", "chart-coolant"):
        svg = re.search(rf'<svg id="{chart}" .*?</svg>', page, flags=re.S)
        assert svg, f"no {chart}"
        assert 'role="img"' in svg.group(0) and "<title" in svg.group(0)
        assert '<polyline class="line"' in svg.group(0)
    fridge = re.search(r'<svg id="chart-fridge" .*?</svg>', page, flags=re.S).group(0)  # type: ignore[union-attr]
    assert '<rect class="band"' in fridge and "2–8 °C" in fridge
    assert fridge.count('<circle class="out"') >= 10  # the excursion's samples, in red
    desc = re.search(r'<desc id="chart-fridge-d">(.*?)</desc>', fridge).group(1)  # type: ignore[union-attr]
    assert "dernière valeur 9,6 °C à 08:15" in desc and "max 9,6" in desc
    assert "mesure(s) hors plage" in desc
    assert 'class="limit"' in page  # coolant's 105 °C line
    # the chart's hours are local: 09h (yesterday) … 06h today, every 3 hours
    assert ">09h<" in fridge and ">06h<" in fridge


def test_the_dashboard_marks_the_limits_the_configured_alert_rules_judge(
        tmp_path: Path) -> None:
    """The fridge band, battery low and engine hot are defined once, by the alert rules:
    changed in the ground's config, the dashboard shows the new ones."""
    config = ground_config(tmp_path, """
[[alerts]]
id = "fridge_temp"
kind = "threshold"
title_fr = "réfrigérateur hors plage"
title_en = "fridge out of range"
sensor = "fridge"
quantity = "temp_c"
outside = [3.0, 6.0]
[[alerts]]
id = "house_battery_soc"
kind = "threshold"
title_fr = "batterie cellule faible"
title_en = "house battery low"
sensor = "battery"
quantity = "soc_pct"
below = 40.0
[[alerts]]
id = "coolant_temp"
kind = "threshold"
title_fr = "moteur en surchauffe"
title_en = "engine overheating"
sensor = "engine"
quantity = "coolant_c"
above = 95.0
""")
    clock = Scene().clock
    service = GroundService(load_ground(config), clock)
    try:
        # Inside the default limits (2-8 °C, 30 %, 105 °C), outside the configured ones.
        for sensor, values in (("fridge", {"temp_c": 2.5}), ("battery", {"soc_pct": 38.0}),
                               ("engine", {"coolant_c": 98.0, "rpm": 800.0})):
            r = contract.Reading(vehicle=VEHICLE, ts=clock.now(), sensor=sensor,
                                 values=values)  # type: ignore[arg-type]
            service.store.record([(r, clock.now())])
            service.state.apply(r, clock.now())
        with TestClient(service.app) as c:
            login(c)
            vehicles = c.get("/fleet/").text
            page = c.get(f"/fleet/vehicles/{VEHICLE}").text
    finally:
        service.alerts.close()
        service.store.close()
    assert tile(vehicles, "fridge") == ("bad", "Réfrigérateur Fridge 2,5 °C (HORS PLAGE) — "
                                               "plage 3–6 °C")
    assert tile(vehicles, "battery")[0] == "bad"
    assert tile(vehicles, "engine")[0] == "bad"
    fridge = re.search(r'<svg id="chart-fridge" .*?</svg>', page, flags=re.S).group(0)  # type: ignore[union-attr]
    assert "3–6 °C" in fridge and "2–8 °C" not in fridge
    soc = re.search(r'<svg id="chart-soc" .*?</svg>', page, flags=re.S).group(0)  # type: ignore[union-attr]
    assert "≥ 40 %" in soc


def test_chart_breaks_on_gaps_and_says_when_empty() -> None:
    end = datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)
    start = end - timedelta(hours=24)
    pts: list[tuple[datetime, float | None, str | None]] = [
        (end - timedelta(minutes=m), 5.0, None) for m in (300, 290, 280, 100, 90)]
    svg = str(svg_chart("c", "T", "T", "°C", [("temp_c", pts)], start, end, PARIS,
                        domain=(-2.0, 14.0), band=(2.0, 8.0)))  # fmt: skip
    assert svg.count("<polyline") == 2, "a 3-hour gap must break the line"
    flagged = [(end - timedelta(minutes=m), v, f) for m, v, f in
               ((30, 5.0, None), (25, None, "crc"), (20, 5.0, None), (15, 5.1, None))]
    svg = str(svg_chart("c", "T", "T", "°C", [("temp_c", flagged)], start, end, PARIS,
                        domain=(-2.0, 14.0)))  # fmt: skip
    assert svg.count("<polyline") == 1 and svg.count('class="point"') == 1
    empty = str(svg_chart("c", "T", "T", "%", [("soc_pct", [])], start, end, PARIS,
                          domain=(0, 100)))
    assert "Aucune mesure sur 24 h" in empty
    assert number(-0.04) == "0,0" and number(12.345, 2) == "12,35"


def test_fridge_csv_export(client: TestClient, fleet: FleetScene) -> None:
    fleet.reading("fridge", {"temp_c": 4.25, "temp2_c": 5.0}, minutes_ago=3 * 24 * 60)
    fleet.reading("fridge", {"temp_c": 9.6}, minutes_ago=30)
    fleet.reading("fridge", {"temp_c": None}, flags={"temp_c": "crc"}, minutes_ago=20)
    fleet.reading("fridge", {"temp_c": 5.5})
    r = client.get(f"/fleet/vehicles/{VEHICLE}/fridge.csv?from=2026-11-20&to=2026-11-23")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == \
        f'attachment; filename="frigo-{VEHICLE}-2026-11-20_2026-11-23.csv"'
    assert r.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["time", "probe", "temp_c", "flag"]
    assert rows[1:] == [
        ["2026-11-20T08:00:00+01:00", "temp2_c", "5.00", ""],
        ["2026-11-20T08:00:00+01:00", "temp_c", "4.25", ""],
        ["2026-11-23T07:30:00+01:00", "temp_c", "9.60", ""],
        ["2026-11-23T07:40:00+01:00", "temp_c", "", "crc"],
        ["2026-11-23T08:00:00+01:00", "temp_c", "5.50", ""],
    ]
    assert all(ISO_WITH_OFFSET.match(row[0]) for row in rows[1:])
    assert r.text.endswith("\r\n")
    # the range bounds are local days, both included
    only = list(csv.reader(io.StringIO(client.get(
        f"/fleet/vehicles/{VEHICLE}/fridge.csv?from=2026-11-21&to=2026-11-22").text)))
    assert only == [["time", "probe", "temp_c", "flag"]]
    default = client.get(f"/fleet/vehicles/{VEHICLE}/fridge.csv")  # the last 7 days
    assert default.text.count("\r\n") == 6
    assert client.get(f"/fleet/vehicles/{VEHICLE}/fridge.csv?from=2026-11-23&to=2026-11-01"
                      ).status_code == 422  # fmt: skip
    assert client.get(f"/fleet/vehicles/{VEHICLE}/fridge.csv?from=yesterday").status_code == 422
    assert client.get("/fleet/vehicles/nope/fridge.csv").status_code == 404
    # the page offers it, for a date range
    page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    assert f'action="/fleet/vehicles/{VEHICLE}/fridge.csv"' in page
    assert 'name="from" type="date" value="2026-11-17"' in page
    assert 'name="to" type="date" value="2026-11-23"' in page


def test_json_api(client: TestClient, fleet: FleetScene) -> None:
    fleet.healthy_day()
    fleet.fridge_excursion()
    [v] = client.get("/fleet/api/vehicles").json()
    assert v["id"] == VEHICLE and v["presence"] == "online"
    assert v["fridge"] == [{"value": 9.6, "unit": "°C", "ts": "2026-11-23T08:15:00+01:00",
                            "flag": None, "probe": "temp_c", "in_band": False}]
    assert v["battery"]["soc_pct"]["value"] == 76.0
    assert v["alerts_open"] == 1 and v["alerts_severity"] == "critical"
    assert v["stop"]["commune"] == "Nocé" and v["stop"]["delay_min"] == 0
    assert v["display"]["fridge"]["state"] == "bad"
    d = client.get(f"/fleet/api/vehicles/{VEHICLE}").json()
    assert [a["rule"] for a in d["open_alerts"]] == ["fridge_temp"]
    assert d["open_alerts"][0]["opened_at"] == "2026-11-23T08:11:00+01:00"
    assert client.get("/fleet/api/vehicles/nope").status_code == 404
    assert client.get("/fleet/api/vehicles/nope").json() == {"detail": "unknown vehicle"}


def test_unknown_vehicle_page_is_a_404(client: TestClient) -> None:
    r = client.get("/fleet/vehicles/nope")
    assert r.status_code == 404 and "Véhicule inconnu" in r.text


def test_public_pages_never_show_the_fleet(client: TestClient, fleet: FleetScene) -> None:
    """The mairie pages stay public and show none of this, even to a logged-in manager."""
    fleet.healthy_day()
    fleet.fridge_excursion()
    fleet.reading("engine", {"rpm": 800}, codes=["P0301"])
    for path in ("/", f"/communes/{NOCE}", f"/api/v1/stops/{NOCE}", "/api/v1/stops",
                 f"/api/v1/stops/{NOCE}/calendar.ics", "/openapi.json"):
        r = client.get(path)
        assert r.status_code == 200, path
        for secret in ("/fleet", "9.6", "9,6", "P0301", "fridge", "frigo", "soc_pct",
                       "réfrigérateur"):
            assert secret not in r.text, f"{path} shows {secret!r}"


def test_live_stream_sends_every_vehicle_and_wakes_on_change(tmp_path: Path) -> None:
    fleet = FleetScene(tmp_path / "ground.db", refresh_s=0.5)
    fleet.healthy_day()
    with LiveServer(fleet.app()) as server, httpx.Client(base_url=server.url,
                                                           follow_redirects=True) as http:
        r = http.post("/fleet/login", data={"name": USER, "password": PASSWORD})
        assert r.status_code == 200 and str(r.url).endswith("/fleet/")
        with http.stream("GET", "/fleet/events", timeout=10) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = read_events(stream)
            first = next(events)
            assert [v["id"] for v in first["vehicles"]] == [VEHICLE]
            assert first["vehicles"][0]["display"]["fridge"]["state"] == "ok"
            fired = threading.Timer(0.1, lambda: fleet.reading("fridge", {"temp_c": 9.1}))
            fired.start()
            for _ in range(20):  # woken by the board (or the 0.5 s refresh): not a reload
                data = next(events)
                if data["vehicles"][0]["display"]["fridge"]["state"] == "bad":
                    break
            else:
                raise AssertionError("the stream never showed the new temperature")
            assert "9,1 °C (HORS PLAGE)" in data["vehicles"][0]["display"]["fridge"]["text"]
            # the session ends: the stream says so and stops, with no more data
            fleet.wall.advance(31 * 60)
            rest = list(events)  # the stream ends by itself
            assert rest[-1] == {}, "no logout event"  # `event: logout` carries `data: {}`
