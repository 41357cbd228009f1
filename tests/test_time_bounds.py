"""Time from outside is checked: the contract refuses times UTC cannot hold, the ground sets
aside what is dated too far from when it arrived (counted, per vehicle), live state never
goes backwards because of one message from the future, and nothing a bus can send makes a
page, an ETA, an alert or a CSV range raise."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground.pipeline import Arrived, Pipeline
from ground.store import Store
from ground.timebounds import TimeBounds
from medicobus import contract
from medicobus.brokers import Mosquitto
from tests.harness import ground, stored_ids, wait_until
from tests.test_fleet_pages import PASSWORD, USER, FleetScene
from tests.test_web_pages import NOCE, VEHICLE, LiveServer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "databases_fa45271"
FAR_FUTURE = "9999-12-31T23:59:59Z"  # representable in UTC: the window refuses it
BEYOND_UTC = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC: the contract refuses it


class Ground(FleetScene):
    """The fleet scene's store, live state, alerts and board, fed through the real pipeline
    the way the consumer feeds it, each message received at the scene's clock."""

    def __init__(self, db: Path) -> None:
        super().__init__(db)
        self.pipeline = Pipeline(self.store, self.state, {VEHICLE}, alerts=self.alerts,
                                 board=self.board, bounds=TimeBounds())  # fmt: skip

    def send(self, channel: contract.Channel, **fields: Any) -> int:
        """One message as JSON (ts defaults to now); returns the dead letters it made."""
        ts = fields.pop("ts", None) or self.clock.now().isoformat()
        payload = {"v": 1, "id": contract.new_id(), "vehicle": VEHICLE, "ts": ts,
                   "kind": channel.value, **fields}  # fmt: skip
        outcome = self.pipeline.run([Arrived(contract.topic(VEHICLE, channel),
                                             json.dumps(payload).encode(), self.clock.now())])
        return outcome.dead_letters

    def position(self, ts: str | None = None, lat: float = 48.40, speed: float = 12.0) -> int:
        return self.send(contract.Channel.POSITION, ts=ts, lat=lat, lon=0.67, speed=speed,
                         heading=180.0)

    def fridge(self, temp: float, ts: str | None = None) -> int:
        return self.send(contract.Channel.READING, ts=ts, sensor="fridge",
                         values={"temp_c": temp})


@pytest.fixture
def g(tmp_path: Path) -> Ground:
    return Ground(tmp_path / "ground.db")


@pytest.fixture
def http(g: Ground) -> Iterator[httpx.Client]:
    with LiveServer(g.app()) as server, httpx.Client(base_url=server.url) as client:
        r = client.post("/fleet/login", data={"name": USER, "password": PASSWORD,
                                              "next": "/fleet/"}, follow_redirects=False)
        assert r.status_code == 303
        yield client


def test_far_future_messages_are_set_aside_and_break_nothing(g: Ground,
                                                             http: httpx.Client) -> None:
    g.status("online")
    g.fridge(5.0)
    assert g.position(ts=FAR_FUTURE) == 1
    assert g.fridge(5.0, ts=FAR_FUTURE) == 1
    assert g.send(contract.Channel.READING, ts="2100-01-01T00:00:00Z", sensor="engine",
                  values={"rpm": 800.0}, codes=["P0301"]) == 1
    letters = list(g.store.db.query("SELECT error FROM dead_letters"))
    assert len(letters) == 3 and all("ahead of the ground's clock" in r["error"] for r in letters)
    s = g.state.get(VEHICLE)
    assert s.off_clock == 3 and s.off_clock_last is not None
    assert s.off_clock_last[1] > timedelta(days=365 * 70)
    # Real data still moves the live state: a fridge excursion to 9.9 °C opens its alert.
    for _ in range(15):
        g.clock.advance(1)
        assert g.fridge(9.9) == 0
    assert g.state.get(VEHICLE).readings[("fridge", "temp_c")][1] == 9.9
    assert [a.rule for a in g.alerts.open_alerts(VEHICLE)] == ["fridge_temp"]
    assert g.position() == 0  # and a real position is the vehicle's position
    assert g.state.get(VEHICLE).position.lat == 48.40  # type: ignore[union-attr]
    for path in ("/", f"/communes/{NOCE}", "/api/v1/stops", f"/api/v1/stops/{NOCE}",
                 f"/api/v1/stops/{NOCE}/calendar.ics", "/fleet/", f"/fleet/vehicles/{VEHICLE}"):
        assert http.get(path).status_code == 200, path
    # The manager is told whose clock is off, and by how much.
    page = http.get(f"/fleet/vehicles/{VEHICLE}").text
    assert "Horloge du bus décalée : 3 message(s) mis de côté (le dernier en avance de 73" \
        in page, page
    # Ranges no UTC time can hold are refused with a reason, not a 500.
    for query in ("from=0001-01-01&to=0001-01-02", "from=9999-12-30&to=9999-12-31",
                  "from=0001-01-01"):
        r = http.get(f"/fleet/vehicles/{VEHICLE}/fridge.csv?{query}")
        assert r.status_code == 422 and "between" in r.json()["detail"], query
    assert http.get(f"/fleet/vehicles/{VEHICLE}/fridge.csv").status_code == 200


def test_a_message_a_little_ahead_does_not_freeze_the_live_state(g: Ground) -> None:
    ahead = (g.clock.now() + timedelta(minutes=4)).isoformat()  # within the window
    assert g.position(ts=ahead, lat=48.50) == 0
    assert g.fridge(5.0, ts=ahead) == 0
    g.clock.advance(0.5)
    g.position(lat=48.501)  # half a minute and 110 m later, dated by a right clock
    g.fridge(12.5)
    s = g.state.get(VEHICLE)
    assert s.position is not None and s.position.lat == 48.501
    assert s.readings[("fridge", "temp_c")][1] == 12.5


def test_the_past_window_takes_a_drained_backlog_but_not_a_clock_decades_behind(
    g: Ground,
) -> None:
    now = g.clock.now()
    two_days = (now - timedelta(days=2)).isoformat()
    assert g.position(ts=two_days) == 0  # a backlog after a long outage
    assert g.position(ts=(now - timedelta(days=61)).isoformat()) == 1
    assert g.position(ts="1980-01-06T00:00:00Z") == 1  # GPS week zero: a receiver's cold start
    # A status is taken in the order it comes, whatever its time: a Last Will carries the
    # time the bus connected, however long ago, and a bus whose clock is off is still seen.
    assert g.send(contract.Channel.STATUS, ts=(now - timedelta(days=90)).isoformat(),
                  state="offline") == 0
    assert g.state.get(VEHICLE).connection == "offline"
    assert g.send(contract.Channel.STATUS, ts="2100-01-01T00:00:00Z", state="online") == 0
    assert g.state.get(VEHICLE).connection == "online"
    (error,) = [r[0] for r in g.store.db.execute("SELECT error FROM dead_letters")][:1]
    assert "61 days behind" in error


def test_a_queue_forecasting_an_end_in_the_year_9999_is_set_aside(g: Ground,
                                                                  http: httpx.Client) -> None:
    stop = g.fleet.stop("noce")
    g.send(contract.Channel.EVENT, event="arrival", visit="2026-11-23/noce/am", stop="noce",
           lat=stop.lat, lon=stop.lon)
    queue = dict(visit="2026-11-23/noce/am", open=True, waiting=3, consult_min=20.0,
                 wait_min=60)
    assert g.send(contract.Channel.QUEUE, **queue, ends_at=FAR_FUTURE) == 1
    assert g.send(contract.Channel.QUEUE, **queue, last_booked="1980-01-06T00:00:00Z") == 1
    (error, _) = [r[0] for r in g.store.db.execute("SELECT error FROM dead_letters")]
    assert error.startswith("time: ends_at 9999-12-31T23:59:59+00:00 is")
    assert g.state.get(VEHICLE).off_clock == 0  # the bus's clock is not in question
    for path in ("/", f"/communes/{NOCE}", "/api/v1/stops", "/fleet/"):
        assert http.get(path).status_code == 200, path
    # A forecast of today's session is taken.
    ends = (g.clock.now() + timedelta(hours=2)).isoformat()
    assert g.send(contract.Channel.QUEUE, **queue, ends_at=ends, last_booked=ends) == 0


def test_a_batch_keeps_its_items_whose_time_is_right(g: Ground) -> None:
    now = g.clock.now()
    items = [{"v": 1, "id": f"item{i:04d}", "vehicle": VEHICLE, "kind": "position",
              "ts": (now - timedelta(minutes=10 - i)).isoformat(), "lat": 48.4, "lon": 0.6}
             for i in range(10)]  # fmt: skip
    items[4]["ts"] = "2100-01-01T00:00:00Z"
    assert g.send(contract.Channel.BATCH, items=items) == 1
    assert g.store.count("positions") == 9
    (letter,) = g.store.db.query("SELECT error, payload FROM dead_letters")
    assert letter["error"].startswith("item item0004: time: ts 2100-01-01")
    assert json.loads(letter["payload"])["id"] == "item0004"
    assert g.state.get(VEHICLE).off_clock == 1


# Every ISO 8601 moment: years 1 to 9999, offsets from -23:59 to +23:59; and as many near
# the scene's clock (Monday 23 November 2026, 07:00 UTC), on both sides of the window.
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1)
moments = st.one_of(
    st.builds(lambda day, secs, offset: f"{day.isoformat()}T{secs // 3600:02d}:"
                                        f"{secs // 60 % 60:02d}:{secs % 60:02d}{_offset(offset)}",
              st.dates(), st.integers(0, 86_399), OFFSETS),
    st.builds(lambda seconds, offset: (datetime(2026, 11, 23, 7, tzinfo=UTC)
                                       + timedelta(seconds=seconds)).astimezone(
                  timezone(timedelta(minutes=offset))).isoformat(),
              st.integers(-90 * 86_400, 3_600), OFFSETS))


def _offset(minutes: int) -> str:
    if minutes == 0:
        return "Z"
    sign = "+" if minutes > 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ts=moments, kind=st.sampled_from(["position", "fridge", "queue", "event"]))
def test_no_time_a_bus_can_send_breaks_the_ground(g: Ground, ts: str, kind: str) -> None:
    if kind == "position":
        dead = g.position(ts=ts)
    elif kind == "fridge":
        dead = g.fridge(9.9, ts=ts)
    elif kind == "queue":
        dead = g.send(contract.Channel.QUEUE, ts=ts, visit="2026-11-23/noce/am", open=True,
                      waiting=3, consult_min=20.0, wait_min=60, ends_at=ts, last_booked=ts)
    else:
        dead = g.send(contract.Channel.EVENT, ts=ts, event="arrival",
                      visit="2026-11-23/noce/am", stop="noce", lat=48.38, lon=0.68)
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    try:
        offset = moment.astimezone(UTC) - g.clock.now()
        inside = -timedelta(days=60) <= offset <= timedelta(minutes=5)
    except OverflowError:
        inside = False
    assert dead == (0 if inside else 1), (ts, g.clock.now())
    # Whatever came in, every view, forecast and alert can be worked out.
    g.alerts.evaluate({VEHICLE})
    for stop in g.board.stops():
        visit = stop.next_visit
        if visit is not None and visit.eta is not None:
            assert abs(visit.eta - g.clock.now()) < timedelta(days=365)
    assert g.board.stop(NOCE) is not None


def test_rows_stored_before_the_check_are_set_aside_once(tmp_path: Path) -> None:
    """A ground that stored far-dated messages before this version: the migration turns them
    into dead letters, content and all, and they no longer come back at every start."""
    db = tmp_path / "ground.db"
    shutil.copy(FIXTURES / "ground.db", db)
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
        conn.execute("INSERT INTO positions (id, vehicle, ts, lat, lon, speed, received) "
                     "VALUES ('far000001', 'perche-1', '9999-12-31T23:59:59+00:00', 48.4, "
                     "0.6, 12.0, '2026-11-23T08:00:00+00:00')")
        conn.execute("INSERT INTO readings (id, vehicle, ts, sensor, [values], flags, received) "
                     "VALUES ('far000002', 'perche-1', '9999-12-31T23:59:59+00:00', 'fridge', "
                     "'{\"temp_c\": 5.0}', '{}', '2026-11-23T08:00:00+00:00')")
        conn.execute("INSERT INTO samples VALUES ('perche-1', 'fridge', 'temp_c', "
                     "'9999-12-31T23:59:59+00:00', 5.0, NULL, 'far000002')")
    store = Store(db)
    assert store.count("positions") == before  # every other row kept
    assert store.db.execute("SELECT COUNT(*) FROM samples WHERE reading = 'far000002'"
                            ).fetchone()[0] == 0
    letters = list(store.db.query("SELECT topic, error, payload FROM dead_letters "
                                  "WHERE error LIKE '%migration m002%' ORDER BY seq"))
    assert [json.loads(r["payload"])["id"] for r in letters] == ["far000001", "far000002"]
    assert letters[0]["topic"] == contract.topic(VEHICLE, contract.Channel.POSITION)
    store.close()
    assert Store(db).count("dead_letters") == len(letters) + _fixture_letters()  # once


def _fixture_letters() -> int:
    with sqlite3.connect(FIXTURES / "ground.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])


def test_a_restart_leaves_out_what_the_window_refuses(tmp_path: Path,
                                                      mosquitto: Mosquitto) -> None:
    """Stored by an older ground (a position two hours ahead of its receipt, inside the
    migration's wide bound): the state rebuilt at start leaves it out."""
    service = ground(tmp_path, mosquitto.port)
    now = service.clock.now()
    right = contract.Position(id="right0001", vehicle=VEHICLE, ts=now - timedelta(minutes=1),
                              lat=48.41, lon=0.67)
    ahead = contract.Position(id="ahead0001", vehicle=VEHICLE, ts=now + timedelta(hours=2),
                              lat=48.50, lon=0.67)
    service.store.record([(right, now), (ahead, now)])  # as the old ground did
    service.stop()
    service = ground(tmp_path, mosquitto.port)
    try:
        wait_until(lambda: len(stored_ids(service)) == 2, what="both rows still stored")
        assert service.state.get(VEHICLE).position == right
    finally:
        service.stop()
