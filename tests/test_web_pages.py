"""The mairie pages, the JSON API, the iCalendar feed and the SSE stream, on the real Board."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html import unescape
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ground.board import Board
from ground.eta import TravelModel
from ground.fleet import Cancellation, Fleet, Stop, load_fleet
from ground.state import LiveState
from ground.web.app import create_app
from ground.web.public.calendar import ics_escape, ics_fold
from ground.web.server import HttpSettings, server_config
from medicobus import contract
from medicobus.geo import distance_m
from tests.brokers import free_port, wait_for_port

PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2026, 11, 23)  # Nocé 08:30-10:30, Bellême 11:00-12:30, Pervenchères 14:00-17:00
NOCE = "61309"
VEHICLE = "perche-1"
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


class PinnedClock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)

    def advance(self, minutes: float) -> None:
        self.at += timedelta(minutes=minutes)


def towards(stop: Stop, km: float, ts: datetime, speed: float = 15.0) -> contract.Position:
    """A position `km` (and 5 m) due north of `stop`, driving towards it at `speed` m/s."""
    target, lo, hi = km * 1000 + 5, stop.lat, stop.lat + 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if distance_m(mid, stop.lon, stop.lat, stop.lon) < target \
            else (lo, mid)  # fmt: skip
    return contract.Position(vehicle=VEHICLE, ts=ts, lat=lo, lon=stop.lon, speed=speed,
                             heading=180)


class Scene:
    """The real Board on the demo fleet, at 08:00 on Monday 23 November 2026."""

    def __init__(self, fleet: Fleet | None = None) -> None:
        self.fleet = fleet or load_fleet("medicobus/defaults/fleet.toml")
        self.clock = PinnedClock(datetime(2026, 11, 23, 8, 0, tzinfo=PARIS))
        self.state = LiveState()
        self.board = Board(self.fleet, self.state, TravelModel(), self.clock)

    def feed(self, message: contract.Position | contract.VisitEvent | contract.Status
             | contract.QueueState) -> None:
        """What ingest does: apply, then tell the listeners (from this non-async thread)."""
        self.state.apply(message, self.clock.now())
        self.board.notify({message.vehicle})

    def status(self, state: Literal["online", "offline"]) -> None:
        self.feed(contract.Status(vehicle=VEHICLE, ts=self.clock.now(), state=state))

    def driving_towards_noce(self, km: float, speed: float = 15.0) -> None:
        """A position `km` (and 5 m) due north of Nocé's stop, driving at `speed` m/s: the
        board predicts the arrival `km` * 1.35 / `speed` later, to the second."""
        self.feed(towards(self.fleet.stop("noce"), km, self.clock.now(), speed))

    def arrive_noce(self) -> None:
        stop = self.fleet.stop("noce")
        self.feed(contract.VisitEvent(vehicle=VEHICLE, ts=self.clock.now(), event="arrival",
                                      visit="2026-11-23/noce/am", stop="noce",
                                      lat=stop.lat, lon=stop.lon))  # fmt: skip

    def listeners(self) -> int:
        return len(self.board._listeners)


class LiveServer:
    """The app under a real uvicorn, in a thread, on a free port, configured as the ground
    service configures it (`trusted_proxies`: whose X-Forwarded-For is believed)."""

    def __init__(self, app: FastAPI, trusted_proxies: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        http = HttpSettings(host="127.0.0.1", port=self.port,
                            trusted_proxies=trusted_proxies or [])  # type: ignore[arg-type]
        config = server_config(app, http, log_level="warning", timeout_graceful_shutdown=1,
                               lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def read_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The data of each SSE message event, parsed."""
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield json.loads("\n".join(data))
            data = []


@pytest.fixture
def scene() -> Scene:
    return Scene()


@pytest.fixture
def client(scene: Scene) -> Iterator[TestClient]:
    with TestClient(create_app(scene.board)) as c:
        yield c


def text_of(html: str) -> str:
    """The page's visible-ish text: tags dropped, white space collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    return unescape(re.sub(r" ([,.)])", r"\1", text))


# --- pages ---------------------------------------------------------------------------------


def test_index_lists_the_communes_in_french_with_english(client: TestClient,
                                                         scene: Scene) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in r.text
    assert "<title>Médicobus" in r.text
    text = text_of(r.text)
    assert "Communes desservies" in text and "Communes served" in text
    for stop in scene.fleet.stops:
        assert f'href="/communes/{stop.insee}"' in r.text
        assert stop.commune in text
    assert "Prochain passage : lundi 23 novembre, matin (08:30 – 10:30)" in text


def test_commune_page_shows_the_next_visit_in_french(client: TestClient) -> None:
    r = client.get(f"/communes/{NOCE}")
    assert r.status_code == 200
    text = text_of(r.text)
    assert "Médicobus à Nocé" in text
    assert "Place de l'église" in text
    assert "lundi 23 novembre, matin" in text
    assert "Horaires prévus : 08:30 – 10:30" in text
    assert re.search(r'id="nv-status" class="status status-planned">prévu<', r.text)
    # French only, read once; English is a switch, not a line under each line
    assert "scheduled" not in text and "Next visit" not in text
    assert re.findall(r'\slang="en"', r.text) == [' lang="en"']  # the switch's link
    assert 'href="?lang=en"' in r.text and ">English</a>" in r.text
    # Nothing recorded yet: the ground does not know its precision, so it does not claim
    # the minute (ground.precision; tests/test_precision.py for what a record allows).
    assert "Arrivée estimée : vers 08:30" in text
    assert "Départ estimé : 10:30" in text
    assert "mis à jour à 08:00" in text
    # upcoming visits: Nocé on Wednesday afternoon, this week and the next two
    assert "mercredi 25 novembre" in text and "après-midi" in text
    assert "mercredi 2 décembre" in text
    assert "14:00 – 17:30" in text
    # live region, works without JS, no external resources
    assert 'aria-live="polite"' in r.text
    assert '<noscript><meta http-equiv="refresh" content="60"></noscript>' in r.text
    assert '<script src="/static/live.js"></script>' in r.text
    assert not re.search(r'(src|href)="(https?:)?//', r.text)
    # the link indicator stays hidden while nothing is known to be wrong
    assert "Liaison avec le bus perdue" not in text


def test_commune_page_in_english_on_its_switch(client: TestClient) -> None:
    r = client.get(f"/communes/{NOCE}", params={"lang": "en"})
    assert r.status_code == 200 and '<html lang="en">' in r.text
    text = text_of(r.text)
    assert "Médicobus in Nocé" in text and "Parking place: Place de l'église" in text
    assert "Monday 23 November, morning" in text and "Planned hours: 08:30 – 10:30" in text
    assert "scheduled" in text and "Expected around 08:30" in text
    assert "Expected to leave at 10:30" in text and "updated at 08:00" in text
    assert "Wednesday 25 November" in text and "afternoon" in text
    for french in ("Prochain passage", "prévu", "Arrivée estimée", "mis à jour", "lundi"):
        assert french not in text, french
    assert f'data-events="/communes/{NOCE}/events?lang=en"' in r.text
    assert 'href="?lang=fr"' in r.text and ">Français</a>" in r.text
    assert client.get(f"/communes/{NOCE}", params={"lang": "de"}).status_code == 422


def test_commune_page_shows_delay_arrival_and_link_loss(client: TestClient,
                                                        scene: Scene) -> None:
    scene.driving_towards_noce(km=30)  # 30 km * 1.35 at 15 m/s: 45 min, so 08:45
    text = text_of(client.get(f"/communes/{NOCE}").text)
    assert "retard de 15 min" in text and "15 min late" not in text
    english = text_of(client.get(f"/communes/{NOCE}?lang=en").text)
    assert "15 min late" in english and "Expected around 08:45" in english
    assert "Arrivée estimée : vers 08:45" in text
    assert "Départ estimé : 10:45" in text

    scene.status("offline")
    scene.clock.advance(12)
    text = text_of(client.get(f"/communes/{NOCE}").text)
    assert "Liaison avec le bus perdue : dernière position reçue il y a 12 min" in text
    assert "mis à jour à 08:12" in text

    scene.clock.advance(35)
    scene.status("online")
    scene.arrive_noce()
    text = text_of(client.get(f"/communes/{NOCE}").text)
    # once there, the page still says how late it came
    assert "arrivé" in text and "Arrivé à 08:47, avec 17 min de retard" in text
    english = text_of(client.get(f"/communes/{NOCE}?lang=en").text)
    assert "Arrived at 08:47, 17 min late" in english
    assert "Liaison avec le bus perdue" not in text
    assert "Arrivée estimée" not in text
    scene.clock.advance(10)
    text = text_of(client.get(f"/communes/{NOCE}").text)
    assert "en consultation" in text and "Départ estimé : 10:47" in text


def test_cancelled_visit_shows_the_reason() -> None:
    fleet = load_fleet("medicobus/defaults/fleet.toml")
    fleet = fleet.model_copy(update={"cancellations": [
        Cancellation(date=MONDAY, stop="noce", half="am", reason="Médecin absent ; désolés")
    ]})  # fmt: skip
    scene = Scene(fleet)
    with TestClient(create_app(scene.board)) as client:
        text = text_of(client.get(f"/communes/{NOCE}").text)
        assert re.search(r"\bannulé\b", text)
        assert "cancelled" in text_of(client.get(f"/communes/{NOCE}?lang=en").text)
        assert "Motif : Médecin absent ; désolés" in text
        assert "Arrivée estimée" not in text
        api = client.get(f"/api/v1/stops/{NOCE}").json()
        assert api["next_visit"]["status"] == "cancelled"
        assert api["next_visit"]["cancel_reason"] == "Médecin absent ; désolés"
        assert api["next_visit"]["eta"] is None
        ics = client.get(f"/api/v1/stops/{NOCE}/calendar.ics").text
        event = unfold(ics).split("BEGIN:VEVENT")[1]
        assert "UID:2026-11-23/noce/am\r\n" in event
        assert "STATUS:CANCELLED\r\n" in event
        assert "Médecin absent \\; désolés" in event


def test_unknown_commune_gets_a_french_404(client: TestClient) -> None:
    for path in ("/communes/99999", "/nulle-part"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert '<html lang="fr">' in r.text
        assert "Page introuvable" in r.text and "Page not found" in r.text
    for path in ("/api/v1/stops/99999", "/api/v1/stops/99999/calendar.ics",
                 "/communes/99999/events"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/json")
        assert "detail" in r.json()


def test_static_assets_and_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    js = client.get("/static/live.js")
    assert js.status_code == 200
    assert "EventSource" in js.text and "setTimeout" in js.text
    # ES5: no arrow functions, let/const, template strings or classes
    code = re.sub(r"/\*.*?\*/", "", js.text, flags=re.S)
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', code)
    assert "=>" not in code and "`" not in code
    assert not re.search(r"\b(let|const|class)\s", code)


# --- JSON API ------------------------------------------------------------------------------


def _datetimes(obj: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _datetimes(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _datetimes(v, key)
    elif isinstance(obj, str) and re.match(r"^\d{4}-\d\d-\d\dT", obj):
        yield key, obj


def test_api_stops(client: TestClient, scene: Scene) -> None:
    scene.driving_towards_noce(km=30)
    r = client.get("/api/v1/stops")
    assert r.status_code == 200
    stops = r.json()
    assert [s["insee"] for s in stops] == [s.insee for s in scene.fleet.stops]
    noce = next(s for s in stops if s["insee"] == NOCE)
    assert noce["commune"] == "Nocé" and noce["place"] == "Place de l'église"
    assert noce["vehicle_presence"] == "online"
    assert noce["last_seen"] == "2026-11-23T08:00:00+01:00"
    assert "upcoming" not in noce
    v = noce["next_visit"]
    assert v["visit"] == "2026-11-23/noce/am"
    assert v["day"] == "2026-11-23" and v["half"] == "am"
    assert v["day_label_fr"] == "lundi 23 novembre" and v["half_label_fr"] == "matin"
    assert v["planned_arrive"] == "2026-11-23T08:30:00+01:00"
    assert v["planned_depart"] == "2026-11-23T10:30:00+01:00"
    assert v["status"] == "late"
    assert v["label_fr"] == "retard de 15 min" and v["label_en"] == "15 min late"
    assert v["eta"] == "2026-11-23T08:45:00+01:00"
    # what may be told of it, nothing being recorded yet: rounded to 5 min
    assert (v["eta_said"], v["eta_from"], v["eta_to"], v["eta_precision_min"]) == (
        "around", "2026-11-23T08:45:00+01:00", "2026-11-23T08:45:00+01:00", 5)
    assert v["etd"] == "2026-11-23T10:45:00+01:00"
    assert v["delay_min"] == 15 and v["cancel_reason"] == ""
    found = list(_datetimes(stops))
    assert len(found) > 20
    for key, value in found:
        assert ISO_WITH_OFFSET.match(value), (key, value)


def test_api_stops_lists_two_stops_of_one_commune_apart() -> None:
    fleet = load_fleet("medicobus/defaults/fleet.toml")
    market = fleet.stop("noce").model_copy(update={"id": "noce-marche",
                                                   "place": "Place du marché"})
    scene = Scene(fleet.model_copy(update={"stops": [*fleet.stops, market]}))
    with TestClient(create_app(scene.board)) as client:
        stops = client.get("/api/v1/stops").json()
    places = [s["place"] for s in stops if s["insee"] == NOCE]
    assert places == ["Place de l'église", "Place du marché"]


def test_api_stops_is_gzipped_for_clients_that_take_it(client: TestClient) -> None:
    zipped = client.get("/api/v1/stops", headers={"Accept-Encoding": "gzip"})
    plain = client.get("/api/v1/stops", headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json() and len(plain.json()) == 6  # httpx un-gzips
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3


def test_api_stop_has_upcoming_visits(client: TestClient) -> None:
    r = client.get(f"/api/v1/stops/{NOCE}")
    assert r.status_code == 200
    stop = r.json()
    days = [u["day"] for u in stop["upcoming"]]
    assert days[:3] == ["2026-11-25", "2026-11-30", "2026-12-02"]
    assert all(u["status"] == "planned" and u["label_fr"] == "prévu" for u in stop["upcoming"])
    assert stop["upcoming"][0]["planned_arrive"] == "2026-11-25T14:00:00+01:00"
    for key, value in _datetimes(stop):
        assert ISO_WITH_OFFSET.match(value), (key, value)


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Médicobus"
    assert {"/api/v1/stops", "/api/v1/stops/{insee}",
            "/api/v1/stops/{insee}/calendar.ics"} <= set(spec["paths"])  # fmt: skip
    ok = spec["paths"]["/api/v1/stops"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["items"]["$ref"].endswith("/StopOut")
    schemas = spec["components"]["schemas"]
    visit = schemas["VisitOut"]["properties"]
    assert {"eta", "etd", "status", "label_fr", "cancel_reason"} <= set(visit)
    for told in ("eta_said", "eta_from", "eta_to", "eta_precision_min"):  # documented
        assert "description" in visit[told], told
    assert "four weeks" in visit["eta_said"]["description"]
    assert set(schemas["Said"]["enum"]) == {"minute", "around", "range", "by", "soon"}
    assert "upcoming" in schemas["StopDetailOut"]["properties"]
    assert not any(p.startswith("/communes") for p in spec["paths"])


# --- iCalendar -----------------------------------------------------------------------------


def unfold(ics: str) -> str:
    return ics.replace("\r\n ", "")


def test_calendar_feed(client: TestClient) -> None:
    r = client.get(f"/api/v1/stops/{NOCE}/calendar.ics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/calendar")
    raw = r.content.decode("utf-8")
    assert raw.startswith("BEGIN:VCALENDAR\r\n") and raw.endswith("END:VCALENDAR\r\n")
    assert "\n" not in raw.replace("\r\n", "")
    for line in raw.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75, line
    ics = unfold(raw)
    assert "VERSION:2.0\r\n" in ics and "PRODID:" in ics
    assert "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\n" in ics
    events = ics.split("BEGIN:VEVENT\r\n")[1:]
    assert len(events) == 1 + len(client.get(f"/api/v1/stops/{NOCE}").json()["upcoming"])
    first = events[0]
    assert "UID:2026-11-23/noce/am\r\n" in first
    assert "DTSTART;TZID=Europe/Paris:20261123T083000\r\n" in first
    assert "DTEND;TZID=Europe/Paris:20261123T103000\r\n" in first
    assert "SUMMARY:Médicobus à Nocé\r\n" in first
    assert "LOCATION:Place de l'église\\, Nocé\r\n" in first
    assert "STATUS:CONFIRMED\r\n" in first and "DTSTAMP:20261123T070000Z\r\n" in first
    assert "UID:2026-11-25/noce/pm\r\n" in events[1]
    assert ics.count("BEGIN:VEVENT") == ics.count("END:VEVENT")


def test_vtimezone_covers_summer_time() -> None:
    scene = Scene()
    scene.clock = PinnedClock(datetime(2026, 3, 23, 8, 0, tzinfo=PARIS))
    scene.board.clock = scene.clock
    with TestClient(create_app(scene.board)) as client:
        ics = unfold(client.get(f"/api/v1/stops/{NOCE}/calendar.ics").text)
    assert ("BEGIN:DAYLIGHT\r\nDTSTART:20260329T020000\r\nTZOFFSETFROM:+0100\r\n"
            "TZOFFSETTO:+0200\r\nTZNAME:CEST\r\nEND:DAYLIGHT") in ics  # fmt: skip
    assert ("BEGIN:STANDARD\r\nDTSTART:20261025T030000\r\nTZOFFSETFROM:+0200\r\n"
            "TZOFFSETTO:+0100\r\n") in ics  # fmt: skip
    assert "DTSTART;TZID=Europe/Paris:20260330T083000" in ics  # Monday after the change


def test_ics_folding_and_escaping() -> None:
    assert ics_escape('a,b;c\\d\ne') == "a\\,b\\;c\\\\d\\ne"
    line = "DESCRIPTION:" + "é" * 100
    folded = ics_fold(line)
    parts = folded.split("\r\n")
    assert all(len(p.encode()) <= 75 for p in parts)
    assert all(p.startswith(" ") for p in parts[1:])
    assert folded.replace("\r\n ", "") == line
    assert ics_fold("short") == "short"


# --- Server-Sent Events --------------------------------------------------------------------


def test_sse_sends_the_view_then_each_change(scene: Scene) -> None:
    with LiveServer(create_app(scene.board, refresh_s=30)) as server, \
            httpx.Client(timeout=httpx.Timeout(10, read=5)) as http, \
            http.stream("GET", f"{server.url}/communes/{NOCE}/events") as r:  # fmt: skip
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        events = read_events(r)
        first = next(events)
        assert first["insee"] == NOCE and first["next_visit"]["status"] == "planned"
        assert first["next_visit"]["eta"] == "2026-11-23T08:30:00+01:00"
        assert first["upcoming"], "same schema as /api/v1/stops/{insee}"
        assert scene.listeners() == 1

        scene.board.notify({"another-bus"})  # a change elsewhere: nothing sent
        t0 = time.monotonic()
        scene.driving_towards_noce(km=30)  # from this (non-async) thread
        second = next(events)
        assert time.monotonic() - t0 < 1.0
        assert second["next_visit"]["status"] == "late"
        assert second["next_visit"]["eta"] == "2026-11-23T08:45:00+01:00"

        # a burst of changes is coalesced: its last state is sent, and never more events
        # than notifications
        for km in (29, 28, 27, 26, 25):  # a kilometre each half minute: 120 km/h at most
            scene.clock.advance(0.5)
            scene.driving_towards_noce(km=km)
        final = scene.board.stop(NOCE)
        assert final is not None and final.next_visit and final.next_visit.eta
        expected = final.next_visit.eta.replace(microsecond=0).isoformat()
        assert expected == "2026-11-23T08:40:00+01:00"  # 08:02:30 + 25 km * 1.35 / 15 m/s
        received = [next(events)]
        while received[-1]["next_visit"]["eta"] != expected:
            received.append(next(events))
        assert len(received) <= 5
    deadline = time.monotonic() + 5
    while scene.listeners() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scene.listeners() == 0, "the subscription is dropped when the client leaves"


def test_sse_refreshes_without_changes(scene: Scene) -> None:
    with LiveServer(create_app(scene.board, refresh_s=0.3)) as server, \
            httpx.Client(timeout=httpx.Timeout(10, read=5)) as http, \
            http.stream("GET", f"{server.url}/communes/{NOCE}/events") as r:  # fmt: skip
        events = read_events(r)
        assert next(events)["generated_at"] == "2026-11-23T08:00:00+01:00"
        scene.clock.advance(3)  # time moves: the refresh shows it, with no board change
        assert next(events)["generated_at"] == "2026-11-23T08:03:00+01:00"


def test_queue_figures_show_while_the_bus_consults(scene: Scene, client: TestClient) -> None:
    """What the kiosk's queue says reaches the commune's page and API, as counts only."""
    scene.arrive_noce()
    scene.feed(contract.QueueState(vehicle=VEHICLE, ts=scene.clock.now(),
                                   visit="2026-11-23/noce/am", open=True, waiting=3,
                                   consult_min=15, wait_min=45))  # fmt: skip
    api = client.get("/api/v1/stops/61309").json()
    assert api["queue"]["waiting"] == 3 and api["queue"]["wait_min"] == 45
    assert "3 personnes en attente, attente estimée 45 min" in client.get("/communes/61309").text
    assert client.get("/api/v1/stops/61038").json()["queue"] is None  # not the bus's stop
