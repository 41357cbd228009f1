"""Calendar edges on purpose, each on an explicit clock: the days clocks go forward and
back (Europe/Paris), a visit across midnight UTC, New Year, a public holiday. On each, the
plan the bus receives, the commune page, the API's ISO 8601 times (with the offset of
that moment), the iCalendar feed and the ETAs must be right."""

from __future__ import annotations

import math
import queue
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from ground.board import Board
from ground.eta import TravelModel
from ground.fleet import Fleet, day_plan, load_fleet, public_holiday
from ground.state import LiveState
from ground.web.app import create_app
from ground.web.fleet.charts import svg_chart
from medicobus import contract
from onboard.config import KioskSettings
from onboard.kiosk.queue import PatientQueue
from onboard.kiosk.session import clock_time
from tests.brokers import Mosquitto
from tests.clocks import ManualClock
from tests.harness import clock_at, ground, wait_until

PARIS = ZoneInfo("Europe/Paris")
TAHITI = ZoneInfo("Pacific/Tahiti")  # UTC-10: an afternoon visit crosses midnight UTC
DEMO_FLEET = "medicobus/defaults/fleet.toml"
NOCE, BELLEME = "61309", "61038"
NOCE_LAT, NOCE_LON = 48.3838, 0.6783


def fleet_with(timetable: list[dict[str, Any]], timezone: str = "Europe/Paris",
               **options: Any) -> Fleet:
    """The demo fleet's vehicle and stops, with this timetable instead of its own."""
    demo = load_fleet(DEMO_FLEET)
    return Fleet.model_validate({
        "timezone": timezone, "vehicles": [v.model_dump() for v in demo.vehicles],
        "stops": [s.model_dump() for s in demo.stops],
        "timetable": [{"vehicle": "perche-1", **e} for e in timetable], **options,
    })  # fmt: skip


class Ground:
    """The real board and public web app, on a clock the test sets."""

    def __init__(self, fleet: Fleet, now: datetime) -> None:
        self.fleet = fleet
        self.clock = ManualClock(now)
        self.state = LiveState()
        self.board = Board(fleet, self.state, TravelModel(), self.clock)
        self.client = TestClient(create_app(self.board))

    def feed(self, message: contract.Position | contract.VisitEvent) -> None:
        self.state.apply(message, self.clock.now())
        self.board.notify({message.vehicle})

    def driving_north_of_noce(self, km: float, speed: float = 15.0) -> None:
        """A position `km` due north of Nocé's stop, driving at `speed` m/s towards it."""
        lat = NOCE_LAT + km * 1000 / (math.pi / 180 * 6_371_008.8)
        self.feed(contract.Position(vehicle="perche-1", ts=self.clock.now(), lat=lat,
                                    lon=NOCE_LON, speed=speed, heading=180))  # fmt: skip

    def api(self, insee: str) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/stops/{insee}")
        assert r.status_code == 200
        return r.json()  # type: ignore[no-any-return]

    def page(self, insee: str) -> str:
        r = self.client.get(f"/communes/{insee}")
        assert r.status_code == 200
        return unescape(r.text)

    def ics(self, insee: str) -> str:
        r = self.client.get(f"/api/v1/stops/{insee}/calendar.ics")
        assert r.status_code == 200
        return r.text.replace("\r\n ", "")  # unfolded


@pytest.fixture
def grounds() -> Iterator[list[Ground]]:
    made: list[Ground] = []
    yield made
    for g in made:
        g.client.close()


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _close(a: str, b: datetime, within_s: float = 60) -> bool:
    return abs((_at(a) - b).total_seconds()) <= within_s


# --- clocks go forward: Sunday 28 March 2027, 02:00 CET -> 03:00 CEST --------------------------


def test_spring_forward_day(grounds: list[Ground]) -> None:
    # A night visit straddling the change lasts 1 h of real time, not the 2 h of the clock face.
    fleet = fleet_with([{"stop": "noce", "day": "dimanche", "half": "am",
                         "arrive": "01:30", "depart": "03:30"},
                        {"stop": "belleme", "day": "dimanche", "half": "am",
                         "arrive": "05:00", "depart": "06:00"}])  # fmt: skip
    day = date(2027, 3, 28)
    plan = day_plan(fleet, "perche-1", day)
    noce = plan.visits[0]
    assert noce.arrive.isoformat() == "2027-03-28T01:30:00+01:00"
    assert noce.depart.isoformat() == "2027-03-28T03:30:00+02:00"
    assert noce.depart - noce.arrive == timedelta(hours=1)
    # What the bus reads back is the same moment.
    wire = contract.Plan.model_validate_json(plan.model_dump_json())
    assert wire.visits[0].depart == noce.depart

    g = Ground(fleet, datetime(2027, 3, 28, 1, 0, tzinfo=PARIS))
    grounds.append(g)
    api = g.api(NOCE)["next_visit"]
    assert api["planned_arrive"] == "2027-03-28T01:30:00+01:00"
    assert api["planned_depart"] == "2027-03-28T03:30:00+02:00"
    assert "01:30 – 03:30" in g.page(NOCE)

    # 30 km out at 15 m/s: 45 min (road factor 1.35) -> 01:45 CET, then the 1-hour session.
    g.driving_north_of_noce(30)
    api = g.api(NOCE)["next_visit"]
    expected = datetime(2027, 3, 28, 1, 45, tzinfo=PARIS).astimezone(UTC)  # real time
    assert _close(api["eta"], expected), api
    assert api["eta"].endswith("+01:00")
    assert _close(api["etd"], expected + timedelta(hours=1)), api
    assert api["etd"].endswith("+02:00")  # 03:45 summer time
    assert api["status"] == "late" and api["delay_min"] == 15

    ics = g.ics(NOCE)
    assert "DTSTART;TZID=Europe/Paris:20270328T013000\r\n" in ics
    assert "DTEND;TZID=Europe/Paris:20270328T033000\r\n" in ics
    assert ("BEGIN:DAYLIGHT\r\nDTSTART:20270328T020000\r\nTZOFFSETFROM:+0100\r\n"
            "TZOFFSETTO:+0200\r\n") in ics  # fmt: skip


def test_a_time_in_the_spring_gap_is_read_as_rfc_5545_says() -> None:
    # 02:30 does not exist that night: it is read with the offset before the gap (03:30 CEST).
    fleet = fleet_with([{"stop": "noce", "day": "dimanche", "half": "am",
                         "arrive": "02:30", "depart": "04:00"}])  # fmt: skip
    visit = day_plan(fleet, "perche-1", date(2027, 3, 28)).visits[0]
    assert visit.arrive.astimezone(PARIS).strftime("%H:%M %Z") == "03:30 CEST"
    assert visit.depart - visit.arrive == timedelta(minutes=30)


# --- clocks go back: Sunday 25 October 2026, 03:00 CEST -> 02:00 CET ---------------------------


def test_fall_back_day(grounds: list[Ground]) -> None:
    fleet = fleet_with([{"stop": "noce", "day": "dimanche", "half": "am",
                         "arrive": "01:30", "depart": "03:30"}])  # fmt: skip
    plan = day_plan(fleet, "perche-1", date(2026, 10, 25))
    noce = plan.visits[0]
    assert noce.arrive.isoformat() == "2026-10-25T01:30:00+02:00"
    assert noce.depart.isoformat() == "2026-10-25T03:30:00+01:00"
    assert noce.depart - noce.arrive == timedelta(hours=3)

    g = Ground(fleet, datetime(2026, 10, 25, 1, 0, tzinfo=PARIS))
    grounds.append(g)
    g.driving_north_of_noce(30)
    api = g.api(NOCE)["next_visit"]
    expected = datetime(2026, 10, 25, 1, 45, tzinfo=PARIS).astimezone(UTC)
    assert _close(api["eta"], expected) and api["eta"].endswith("+02:00"), api
    # A 3-hour session from 01:45 CEST ends at 03:45 CET (the 02:00-03:00 hour is lived twice).
    assert _close(api["etd"], expected + timedelta(hours=3)) and api["etd"].endswith("+01:00")
    assert api["delay_min"] == 15

    # Later that morning, after the change, the page and the API speak winter time.
    g.clock.set(datetime(2026, 10, 25, 3, 10, tzinfo=PARIS))
    api = g.api(NOCE)
    assert api["generated_at"].startswith("2026-10-25T03:10:00+01:00")
    ics = g.ics(NOCE)
    assert "DTEND;TZID=Europe/Paris:20261025T033000\r\n" in ics
    assert ("BEGIN:STANDARD\r\nDTSTART:20261025T030000\r\nTZOFFSETFROM:+0200\r\n"
            "TZOFFSETTO:+0100\r\n") in ics  # fmt: skip


# --- a visit across midnight UTC: an afternoon in French Polynesia (UTC-10) -------------------


def test_visit_across_midnight_utc(grounds: list[Ground]) -> None:
    fleet = fleet_with([{"stop": "noce", "day": "lundi", "half": "pm",
                         "arrive": "13:30", "depart": "16:00"},
                        {"stop": "belleme", "day": "mardi", "half": "am",
                         "arrive": "09:00", "depart": "11:00"}],
                       timezone="Pacific/Tahiti", holidays_subdivision="PF")  # fmt: skip
    monday = date(2026, 11, 23)
    visit = day_plan(fleet, "perche-1", monday).visits[0]
    assert visit.arrive.isoformat() == "2026-11-23T13:30:00-10:00"  # 23:30 UTC on Monday
    assert visit.depart.isoformat() == "2026-11-23T16:00:00-10:00"  # 02:00 UTC on Tuesday
    assert visit.visit == "2026-11-23/noce/pm"

    # 14:30 local is already Tuesday in UTC: the ground still lives Monday, in Tahiti.
    g = Ground(fleet, datetime(2026, 11, 23, 14, 30, tzinfo=TAHITI))
    grounds.append(g)
    assert g.clock.now().date() == date(2026, 11, 24)
    assert g.board.today() == monday
    g.feed(contract.VisitEvent(vehicle="perche-1", ts=datetime(2026, 11, 23, 13, 40,
                                                               tzinfo=TAHITI),
                               event="arrival", visit="2026-11-23/noce/pm", stop="noce",
                               lat=NOCE_LAT, lon=NOCE_LON))  # fmt: skip
    api = g.api(NOCE)["next_visit"]
    assert api["visit"] == "2026-11-23/noce/pm" and api["day"] == "2026-11-23"
    assert api["status"] == "consulting"
    assert api["arrived_at"] == "2026-11-23T13:40:00-10:00"
    assert api["etd"] == "2026-11-23T16:10:00-10:00"  # 10 min late: a full session
    assert "lundi 23 novembre" in g.page(NOCE)
    # Tuesday's visit elsewhere is still to come, not "today".
    assert g.api(BELLEME)["next_visit"]["planned_arrive"] == "2026-11-24T09:00:00-10:00"
    ics = g.ics(NOCE)
    assert "DTSTART;TZID=Pacific/Tahiti:20261123T133000\r\n" in ics
    assert "DTEND;TZID=Pacific/Tahiti:20261123T160000\r\n" in ics
    assert "TZOFFSETTO:-1000\r\n" in ics


# --- New Year: 31 December 2026 (Thursday) -> 1 January 2027 (Friday, a holiday) ------------


def test_new_year(grounds: list[Ground]) -> None:
    fleet = fleet_with([{"stop": "noce", "day": "jeudi", "half": "pm",
                         "arrive": "14:00", "depart": "17:00"},
                        {"stop": "belleme", "day": "vendredi", "half": "am",
                         "arrive": "09:00", "depart": "12:00"}])  # fmt: skip
    g = Ground(fleet, datetime(2026, 12, 31, 23, 30, tzinfo=PARIS))
    grounds.append(g)
    assert day_plan(fleet, "perche-1", date(2027, 1, 1)).visits == []  # Jour de l'an
    belleme = g.api(BELLEME)
    assert belleme["next_visit"]["day"] == "2027-01-01"
    assert belleme["next_visit"]["status"] == "cancelled"
    assert belleme["next_visit"]["cancel_reason"] == "Jour férié (Jour de l'an)"
    assert belleme["upcoming"][0]["planned_arrive"] == "2027-01-08T09:00:00+01:00"
    # Past midnight, the new year's page.
    g.clock.set(datetime(2027, 1, 1, 0, 30, tzinfo=PARIS))
    noce = g.api(NOCE)
    assert noce["next_visit"]["planned_arrive"] == "2027-01-07T14:00:00+01:00"
    assert "jeudi 7 janvier" in g.page(NOCE)
    ics = g.ics(BELLEME)
    event = next(e for e in ics.split("BEGIN:VEVENT")[1:] if "UID:2027-01-01/belleme/am" in e)
    assert "STATUS:CANCELLED\r\n" in event and "Jour férié (Jour de l'an)" in event
    assert "DTSTART;TZID=Europe/Paris:20270108T090000\r\n" in ics


# --- public holidays: nothing runs, unless an entry says so ----------------------------------


def test_public_holiday_cancels_the_visits_and_says_why(grounds: list[Ground]) -> None:
    fleet = load_fleet(DEMO_FLEET)  # Monday: Nocé, Bellême, Pervenchères
    easter_monday = date(2027, 3, 29)
    assert public_holiday(easter_monday) == "Lundi de Pâques"
    assert day_plan(fleet, "perche-1", easter_monday).visits == []  # the bus stays home

    g = Ground(fleet, datetime(2027, 3, 29, 8, 0, tzinfo=PARIS))
    grounds.append(g)
    nv = g.api(NOCE)["next_visit"]
    assert nv["status"] == "cancelled" and nv["cancel_reason"] == "Jour férié (Lundi de Pâques)"
    assert nv["eta"] is None
    assert g.api(NOCE)["upcoming"][0]["planned_arrive"] == "2027-03-31T14:00:00+02:00"
    page = g.page(NOCE)
    assert "annulé" in page and "Jour férié (Lundi de Pâques)" in page
    ics = g.ics(NOCE)
    event = next(e for e in ics.split("BEGIN:VEVENT")[1:] if "UID:2027-03-29/noce/am" in e)
    assert "STATUS:CANCELLED\r\n" in event

    # A fleet that works on holidays for one entry, or not at all.
    runs = fleet_with([{"stop": "noce", "day": "lundi", "half": "am", "arrive": "08:30",
                        "depart": "10:30", "on_public_holidays": True},
                       {"stop": "belleme", "day": "lundi", "half": "am", "arrive": "11:00",
                        "depart": "12:30"}])  # fmt: skip
    assert [v.stop for v in day_plan(runs, "perche-1", easter_monday).visits] == ["noce"]
    never = runs.model_copy(update={"skip_public_holidays": False})
    assert len(day_plan(never, "perche-1", easter_monday).visits) == 2


def test_alsace_moselle_has_its_own_holidays() -> None:
    good_friday = date(2027, 3, 26)
    friday = [{"stop": "longny", "day": "vendredi", "half": "day", "arrive": "09:00",
               "depart": "16:30"}]  # fmt: skip
    assert day_plan(fleet_with(friday), "perche-1", good_friday).visits  # not in the Orne
    moselle = fleet_with(friday, holidays_subdivision="57")
    assert day_plan(moselle, "perche-1", good_friday).visits == []
    with pytest.raises(ValueError, match="unknown French subdivision"):
        fleet_with(friday, holidays_subdivision="99")


# --- the ground started the evening before a service day -------------------------------------


def test_ground_started_the_evening_before_a_service_day(tmp_path: Path,
                                                         mosquitto: Mosquitto) -> None:
    # Sunday 22 November 2026, 20:00, on a clock at 3,600x: midnight comes in four seconds.
    clock = clock_at(datetime(2026, 11, 22, 20, 0, tzinfo=PARIS), speed=3600)
    plans: queue.Queue[contract.Plan] = queue.Queue()
    bus = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bus-listener")
    bus.on_message = lambda c, u, m: plans.put(contract.Plan.model_validate_json(m.payload))
    bus.connect("127.0.0.1", mosquitto.port)
    bus.subscribe(contract.topic("perche-1", contract.Channel.PLAN), qos=1)
    bus.loop_start()
    service = ground(tmp_path, mosquitto.port, clock=clock, http=True)
    try:
        sunday = plans.get(timeout=10)
        assert sunday.day == date(2026, 11, 22) and sunday.visits == []  # a day off
        with httpx.Client(base_url=f"http://127.0.0.1:{service.settings.http.port}") as web:
            wait_until(lambda: _answers(web), what="the ground's web server")
            nv = web.get(f"/api/v1/stops/{NOCE}").json()["next_visit"]
            assert nv["day"] == "2026-11-23" and nv["status"] == "planned"
            assert nv["eta"] == "2026-11-23T08:30:00+01:00"
        monday = plans.get(timeout=20)  # published after midnight, retained for the bus
        assert monday.day == date(2026, 11, 23)
        assert [v.commune for v in monday.visits] == ["Nocé", "Bellême", "Pervenchères"]
        assert monday.visits[0].arrive.isoformat() == "2026-11-23T08:30:00+01:00"
    finally:
        service.stop()
        bus.loop_stop()
        bus.disconnect()


def _answers(web: httpx.Client) -> bool:
    try:
        return web.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


# --- the fleet dashboard's 24-hour charts on a 25-hour night --------------------------------


def test_chart_hour_marks_follow_local_time_across_the_autumn_change() -> None:
    end = datetime(2026, 10, 25, 12, 0, tzinfo=PARIS)
    start = end.astimezone(UTC) - timedelta(hours=24)  # 24 real hours: 13:00 the day before
    svg = str(svg_chart("c", "Température", "Temperature", "°C", [], start, end, PARIS,
                        domain=(0.0, 10.0)))
    marks = [(float(x), label) for x, label in
             re.findall(r'<text class="axis" x="([\d.]+)" y="\d+" '
                        r'text-anchor="middle">(\d\dh)</text>', svg)]
    assert [label for _, label in marks] == ["15h", "18h", "21h", "00h", "03h", "06h", "09h",
                                             "12h"]
    x = dict((label, pos) for pos, label in marks)
    # From midnight to 03:00 the clock shows 3 hours, but 4 go by: the marks say so.
    assert (x["03h"] - x["00h"]) == pytest.approx((x["06h"] - x["03h"]) * 4 / 3, rel=0.01)


# --- the kiosk in the fleet's zone: a Polynesian afternoon is already tomorrow in UTC -------


def test_the_kiosk_counts_and_shows_the_day_in_its_zone(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 23, 10, 0, tzinfo=TAHITI))
    queue = PatientQueue(tmp_path / "kiosk.db", None, "perche-1", clock,
                         zone="Pacific/Tahiti")  # fmt: skip
    queue.open("2026-11-23/noce/pm")
    ticket = queue.check_in_walk_in("A.", 1950, "consultation")
    queue.call_next()
    clock.advance(20 * 60)
    queue.mark_seen(ticket.number)  # 20 min at 10:20, Tahiti's Monday
    clock.set(datetime(2026, 11, 23, 14, 30, tzinfo=TAHITI))  # 00:30 UTC on Tuesday
    assert queue.consult_min() == 20.0  # still Monday's consultations, in Tahiti
    assert clock_time(datetime(2026, 11, 24, 0, 30, tzinfo=UTC), queue.zone) in (
        "14:30", "14 h 30")
    queue.close()
    with pytest.raises(ValueError, match="unknown time zone"):
        KioskSettings(timezone="Europe/Nowhere")
