"""Learned roads: the road each leg is driven on and its time profile, learned from the
drives stored in a real ground.db, and the ETA of a bus on it; the first weeks' road factor
and timetable speeds."""

from __future__ import annotations

import math
import random
import re
import statistics
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from ground import replay, roads
from ground.eta import TravelModel, forecast_day
from ground.fleet import day_plan, load_fleet
from ground.state import LiveState
from ground.store import Message, Store
from medicobus import contract
from medicobus.geo import distance_m, offset
from onboard.telemetry.simulated import Drive, plan_drive
from tests.brokers import Mosquitto
from tests.clocks import ManualClock
from tests.harness import FLEET, PARIS, VEHICLE, clock_at, ground, wait_until
from tests.test_fleet_pages import FleetScene, login, tile

FLEET_ = load_fleet(FLEET)
TODAY = date(2026, 11, 23)  # a Monday
PLAN = day_plan(FLEET_, VEHICLE, TODAY)
NOCE, BELLEME, PERV = PLAN.visits  # 08:30-10:30, 11:00-12:30, 14:00-17:00
WEEKS = (3, 2, 1)  # the Mondays before, oldest first
EVERY = timedelta(seconds=5)  # about every 100 m, as the report policy sends them


def road_rng() -> random.Random:
    return random.Random("road:noce>belleme")  # the same road every week


def drive(day: date, pace: float, junction: bool = False) -> Drive:
    return plan_drive(datetime(day.year, day.month, day.day, 10, 31, tzinfo=PARIS),
                      (NOCE.lat, NOCE.lon), (BELLEME.lat, BELLEME.lon),
                      random.Random(day.toordinal()), junction, pace, road_rng())


def sent(d: Drive, detour_m: float = 0.0, gap: tuple[float, float] | None = None
         ) -> list[tuple[Message, datetime]]:
    """What the bus sends on a drive: its departure, a position every 5 s (pushed
    `detour_m` sideways in the middle third: another road; none in `gap`, a share of the
    way: an outage), its arrival."""
    visits = day_plan(FLEET_, VEHICLE, d.start.date()).visits
    out: list[tuple[Message, datetime]] = [(_event("departure", visits[0], d.start), d.start)]
    t = d.start + EVERY
    while t < d.end:
        along, speed = d.progress(t)
        share = along / d.road.length_m
        (lat, lon), _ = d.road.at(along)
        if detour_m and 1 / 3 < share < 2 / 3:
            lat, lon = offset(lat, lon, 0, detour_m)
        if gap is None or not gap[0] < share < gap[1]:
            out.append((contract.Position(vehicle=VEHICLE, ts=t, lat=lat, lon=lon,
                                          speed=speed), t))
        t += EVERY
    out.append((_event("arrival", visits[1], d.end), d.end))
    return out


def _event(kind: str, v: contract.PlannedVisit, ts: datetime) -> contract.VisitEvent:
    return contract.VisitEvent(vehicle=VEHICLE, ts=ts, event=kind, visit=v.visit,  # type: ignore[arg-type]
                               stop=v.stop, lat=v.lat, lon=v.lon)


def learned(tmp_path: Path, days: list[list[tuple[Message, datetime]]]) -> TravelModel:
    store = Store(tmp_path / "ground.db", ManualClock(datetime(2026, 11, 23, 6, tzinfo=PARIS)))
    for messages in days:
        store.record(messages)
    travel = TravelModel()
    midnight = datetime(2026, 11, 23, tzinfo=PARIS)
    replay.learn(travel, store, FLEET_, midnight - timedelta(weeks=8), midnight)
    store.close()
    return travel


def past_weeks() -> list[Drive]:
    return [drive(TODAY - timedelta(weeks=n), pace) for n, pace in zip(WEEKS, (0.95, 1.05, 1.0),
                                                                       strict=True)]


def test_the_road_driven_is_learned_simplified_and_timed(tmp_path: Path) -> None:
    drives = past_weeks()
    travel = learned(tmp_path, [sent(d) for d in drives])
    road = travel.road(NOCE, BELLEME)
    assert road is not None and road.drives == 3
    real = drives[-1].road
    # The road's length, not the straight line's: about 1.3 x, within a few metres a km.
    assert abs(road.length_m - real.length_m) < 0.01 * real.length_m
    assert 1.25 < travel.road_m(1.0, NOCE, BELLEME) < 1.35  # the leg's road factor
    assert len(road.line.coords) < len(sent(drives[-1])) / 2  # simplified
    # The time profile: all along the road, the share of the drive's time spent is the one
    # the bus really spent (villages, the commune's exits), where the straight line's share
    # of the distance left, what the ETA took before, strays.
    last = drives[-1]
    learned_off, straight_off = [], []
    for tenth in range(1, 10):
        along = tenth / 10 * real.length_m
        true_share = _time_at(last, along) / last.duration_s
        (lat, lon), _ = real.at(along)
        on = road.locate(lat, lon)
        assert on is not None and on.off_m < 15
        learned_off.append(abs(1 - road.share_left(on.along_m) - true_share))
        straight_off.append(abs(1 - min(1.0, distance_m(lat, lon, BELLEME.lat, BELLEME.lon)
                                         / road.straight_m) - true_share))
    assert max(learned_off) < 0.02
    assert statistics.mean(straight_off) > 3 * statistics.mean(learned_off)


def _time_at(d: Drive, along: float) -> float:
    for (t1, d1), (t2, d2) in zip(d.knots, d.knots[1:], strict=False):
        if d1 <= along <= d2 and d2 > d1:
            return t1 + (along - d1) / (d2 - d1) * (t2 - t1)
    raise AssertionError(along)


@pytest.mark.parametrize("fraction", [0.3, 0.55, 0.8])
def test_a_bus_on_a_learned_road_is_timed_by_its_profile(tmp_path: Path, fraction: float
                                                         ) -> None:
    travel = learned(tmp_path, [sent(d) for d in past_weeks()])
    without_road = TravelModel()  # the same leg times, the share left by straight line
    without_road.learn([("noce", "belleme", d.duration_s) for d in past_weeks()])
    # Today slower than any week before, and held 45 s at the junction between the villages.
    today = drive(TODAY, 0.9, junction=True)
    state = LiveState()
    state.apply(_event("arrival", NOCE, NOCE.arrive), NOCE.arrive)
    for message, at in sent(today):
        if at > today.start + fraction * (today.end - today.start):
            break
        state.apply(message, at)  # type: ignore[arg-type]
        now = at
    on_road = forecast_day(PLAN.visits, state.get(VEHICLE), now, travel)[1]
    with_road = on_road.arrive
    # The road left, read off the learned road, not the straight line.
    road_left = today.road.length_m - today.progress(now)[0]
    assert on_road.road_left_m is not None
    assert abs(on_road.road_left_m - road_left) < 0.02 * today.road.length_m
    straight = forecast_day(PLAN.visits, state.get(VEHICLE), now, without_road)[1].arrive
    error = abs((with_road - today.end).total_seconds())
    # Of a 12-minute drive today 18 % slower than usual, which today's pace learns as the
    # drive goes: within a tenth of it, closer than the straight line's share.
    assert error < 0.11 * today.duration_s
    assert error < abs((straight - today.end).total_seconds())


def test_a_detour_is_left_out_of_the_profile_and_a_gap_out_of_the_road(tmp_path: Path
                                                                       ) -> None:
    d1, d2, d3 = past_weeks()
    # Week 2: roadworks, the bus went 1.5 km east of the road; week 3 (the latest): the
    # positions of the middle of the drive never came (an outage).
    travel = learned(tmp_path, [sent(d1), sent(d2, detour_m=1500), sent(d3, gap=(0.3, 0.6))])
    road = travel.road(NOCE, BELLEME)
    assert road is not None and road.drives == 2  # the detour's times left out
    # Traced by the gapless week 1, not by the latest drive, whose line cuts the corners.
    assert abs(road.length_m - d1.road.length_m) < 0.01 * d1.road.length_m
    far = offset((NOCE.lat + BELLEME.lat) / 2, (NOCE.lon + BELLEME.lon) / 2, 0, 5000)
    assert road.locate(*far) is None  # off the road: the ETA takes the straight line


def test_a_bus_off_its_learned_road_is_timed_by_the_straight_line(tmp_path: Path) -> None:
    travel = learned(tmp_path, [sent(d) for d in past_weeks()])
    today = drive(TODAY, 1.0)
    state = LiveState()
    state.apply(_event("departure", NOCE, today.start), today.start)
    # Halfway in straight line, but 5 km off the road (a diversion today).
    lat, lon = offset((NOCE.lat + BELLEME.lat) / 2, (NOCE.lon + BELLEME.lon) / 2, 0, 5000)
    road = travel.road(NOCE, BELLEME)
    assert road is not None and road.locate(lat, lon) is None
    now = today.start + timedelta(minutes=8)
    state.apply(contract.Position(vehicle=VEHICLE, ts=now, lat=lat, lon=lon, speed=15.0), now)
    eta = forecast_day(PLAN.visits, state.get(VEHICLE), now, travel)[1].arrive
    learned_s = statistics.median([d.duration_s for d in past_weeks()])
    left = distance_m(lat, lon, BELLEME.lat, BELLEME.lon) / distance_m(
        NOCE.lat, NOCE.lon, BELLEME.lat, BELLEME.lon)
    expected = now + timedelta(seconds=learned_s * min(1.0, left))
    assert abs((eta - expected).total_seconds()) < 0.15 * learned_s


def test_first_weeks_take_the_timetable_speed_then_the_fleet_s_driven_one(tmp_path: Path
                                                                          ) -> None:
    cold = TravelModel()
    cold.seed([PLAN.visits])
    # Nocé 10:30 -> Bellême 11:00 is a drive (30 min for 11.9 road km): the timetable's.
    assert cold.between(NOCE, BELLEME) == BELLEME.arrive - NOCE.depart
    # Bellême 12:30 -> Pervenchères 14:00 holds lunch: the timetable's usual speed instead.
    road_m = cold.road_m(distance_m(BELLEME.lat, BELLEME.lon, PERV.lat, PERV.lon), BELLEME,
                         PERV)
    planned_speed = cold.length_m(NOCE, BELLEME) / (BELLEME.arrive - NOCE.depart).seconds
    assert cold.between(BELLEME, PERV).total_seconds() == pytest.approx(road_m / planned_speed)
    # Once a leg is driven, reality replaces the timetable's slack for the others: its
    # road's factor for the distance, its speed for the time.
    drives = past_weeks()
    warm = learned(tmp_path, [sent(d) for d in drives])
    road = warm.road(NOCE, BELLEME)
    assert road is not None
    straight = distance_m(BELLEME.lat, BELLEME.lon, PERV.lat, PERV.lon)
    factor = warm.road_m(1.0, NOCE, BELLEME)  # the one leg driven's
    assert warm.road_m(straight, BELLEME, PERV) == pytest.approx(straight * factor)
    speed = road.length_m / statistics.median([d.duration_s for d in drives])
    assert warm.between(BELLEME, PERV).total_seconds() == pytest.approx(
        straight * factor / speed)
    assert warm.between(BELLEME, PERV) < cold.between(BELLEME, PERV)  # 52 km/h, not 24


def test_the_service_learns_each_night_what_the_day_drove(tmp_path: Path,
                                                          mosquitto: Mosquitto) -> None:
    # Started a few seconds before midnight with nothing learned; the past weeks' drives
    # come in (stored as the bus sent them); at midnight the model is learned again.
    service = ground(tmp_path, mosquitto.port,
                     clock_at(datetime(2026, 11, 22, 23, 59, 56, tzinfo=PARIS)))
    try:
        assert service.board.travel.road(NOCE, BELLEME) is None
        for d in past_weeks():
            service.store.record(sent(d))
        wait_until(lambda: service.board.travel.road(NOCE, BELLEME) is not None, timeout=15,
                   what="the travel model learned again after midnight")
        assert service.board.travel.learned(NOCE, BELLEME) == timedelta(
            seconds=statistics.median(d.duration_s for d in past_weeks()))
    finally:
        service.stop()


@given(st.lists(st.tuples(st.floats(0, 3000), st.floats(-0.02, 0.02), st.floats(-0.02, 0.02)),
                min_size=0, max_size=40),
       st.floats(1, 3600))
@settings(max_examples=150, deadline=None)
def test_any_trace_gives_a_road_or_none_and_shares_in_order(
        points: list[tuple[float, float, float]], seconds: float) -> None:
    # Whatever the bus sent (out of order, all in one place, back and forth, a handful of
    # points), learning never fails, and the time left never grows along the road.
    left = datetime(2026, 11, 16, 10, 30, tzinfo=PARIS)
    track = roads.Track("noce", "belleme", left, left + timedelta(seconds=seconds),
                        [(left + timedelta(seconds=t), NOCE.lat + dlat, NOCE.lon + dlon)
                         for t, dlat, dlon in points])
    learned = roads.learn([track], {"noce": (NOCE.lat, NOCE.lon),
                                    "belleme": (BELLEME.lat, BELLEME.lon)})
    assert all(f >= 1.0 and math.isfinite(f) for f in learned.factors.values())
    road = learned.roads.get(("noce", "belleme"))
    if road is None:
        return
    shares = [road.share_left(a) for a in np.linspace(-10, road.length_m + 10, 25)]
    assert all(0.0 <= x <= 1.0 for x in shares)
    assert all(b <= a for a, b in zip(shares, shares[1:], strict=False))


def test_the_fleet_manager_is_told_the_road_left(tmp_path: Path) -> None:
    scene = FleetScene(tmp_path / "ground.db")
    scene.board.travel = learned(tmp_path / "learned", [sent(d) for d in past_weeks()])
    today = drive(TODAY, 1.0)
    scene.state.apply(_event("arrival", NOCE, NOCE.arrive), NOCE.arrive)
    halfway = today.start + (today.end - today.start) / 2
    for message, at in sent(today):
        if at <= halfway:
            scene.state.apply(message, at)  # type: ignore[arg-type]
    scene.clock.at = halfway
    with TestClient(scene.app()) as client:
        login(client)
        text = tile(client.get("/fleet/").text, "stop")[1]
    left_km = (today.road.length_m - today.progress(halfway)[0]) / 1000
    shown = re.search(r"Prochain arrêt : Bellême, arrivée estimée \d\d:\d\d \(prévue 11:00\), "
                      r"encore (\d+),(\d) km de route", text)
    assert shown, text
    assert abs(float(f"{shown[1]}.{shown[2]}") - left_km) <= 0.15


def test_traces_with_gaps_give_a_road_factor_not_a_road(tmp_path: Path) -> None:
    # Every week the GPS was lost for a tenth of the way (the same cutting): no trace
    # draws the road, but each tells how much longer than the straight line it is.
    travel = learned(tmp_path, [sent(d, gap=(0.45, 0.55)) for d in past_weeks()])
    assert travel.road(NOCE, BELLEME) is None
    assert 1.25 < travel.road_m(1.0, NOCE, BELLEME) < 1.35  # the road's 1.3
    assert travel.road_m(1.0, BELLEME, PERV) == travel.road_m(1.0, NOCE, BELLEME)  # fleet's
