"""The simulated service day: on time (give or take the demo delay), parked at each stop,
plausible speeds, one dropout, deterministic."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from ground.fleet import day_plan, load_fleet
from medicobus.clock import AcceleratedClock
from medicobus.contract import Plan
from medicobus.geo import distance_m
from onboard.telemetry.fix import Fix
from onboard.telemetry.simulated import (
    DROPOUT_S,
    JUNCTION_STOP_S,
    OPEN_ROAD_MPS,
    VILLAGE_MPS,
    Conditions,
    SimulatedSource,
    Tournee,
)

pytestmark = pytest.mark.timeout(30)

FLEET = Path(__file__).resolve().parents[1] / "medicobus" / "defaults" / "fleet.toml"
DEPOT = (48.5236, 0.5472)  # Mortagne-au-Perche
MONDAY = date(2024, 3, 4)
DELAY_S = 1200.0


@pytest.fixture(scope="module")
def plan() -> Plan:
    return day_plan(load_fleet(FLEET), "perche-1", MONDAY)


@pytest.fixture(scope="module")
def tournee(plan: Plan) -> Tournee:
    return Tournee.build(plan, DEPOT, start_delay_s=DELAY_S, seed=7)


@pytest.fixture(scope="module")
def day(tournee: Tournee) -> list[Fix]:
    return list(tournee.fixes(tournee.start - timedelta(minutes=10),
                              tournee.end + timedelta(minutes=10)))


def first_inside(fixes: list[Fix], lat: float, lon: float, radius: float,
                 after: datetime) -> Fix:
    return next(f for f in fixes if f.ts >= after and f.has_fix
                and distance_m(f.lat, f.lon, lat, lon) <= radius)


def test_plan_has_visits(plan: Plan) -> None:
    assert len(plan.visits) == 3


def test_arrives_inside_each_stop_around_planned_time_plus_delay(
        tournee: Tournee, plan: Plan, day: list[Fix]) -> None:
    after = tournee.start
    late_s = DELAY_S
    for visit in plan.visits:
        arrival = first_inside(day, visit.lat, visit.lon, visit.radius_m, after)
        assert arrival.ts <= visit.arrive + timedelta(seconds=late_s + 60), visit.stop
        late_s = max(0.0, (arrival.ts - visit.arrive).total_seconds())
        departure = max(visit.depart + timedelta(seconds=late_s), arrival.ts)
        parked = [f for f in day if arrival.ts + timedelta(seconds=60) <= f.ts < departure]
        assert parked, visit.stop
        assert all(f.has_fix and distance_m(f.lat, f.lon, visit.lat, visit.lon) < 15
                   for f in parked)
        assert all(f.speed is not None and f.speed < 0.5 for f in parked)
        leaving = departure + timedelta(minutes=3)
        gone = next(f for f in day if f.ts >= leaving and f.has_fix)
        assert distance_m(gone.lat, gone.lon, visit.lat, visit.lon) > visit.radius_m
        after = departure
    # the late start makes the first arrival late, by about the delay less the margin
    assert tournee.stops[0].late_s == pytest.approx(DELAY_S - 300, abs=5)
    back = day[-1]
    assert distance_m(back.lat, back.lon, *DEPOT) < 15


def test_one_dropout_of_about_90_s_while_driving(tournee: Tournee, day: list[Fix]) -> None:
    lost = [f for f in day if not f.has_fix]
    assert abs(len(lost) - DROPOUT_S) <= 1
    assert all(f.mode == 0 and math.isnan(f.lat) and math.isnan(f.lon) for f in lost)
    (begin, end), = tournee.dropouts
    assert any(d.start < begin and end <= d.end for d in tournee.drives)
    before = tournee.fix_at(begin - timedelta(seconds=1))
    after = tournee.fix_at(end)
    assert before.has_fix and after.has_fix
    assert distance_m(before.lat, before.lon, after.lat, after.lon) > 500  # it kept going


def test_speeds_are_plausible(tournee: Tournee, day: list[Fix]) -> None:
    moving = [f for f in day if f.has_fix and f.speed is not None]
    assert max(f.speed for f in moving if f.speed is not None) <= OPEN_ROAD_MPS + 0.01
    speeds = {round(f.speed or 0, 1) for f in moving}
    assert round(OPEN_ROAD_MPS, 1) in speeds and round(VILLAGE_MPS, 1) in speeds
    for a, b in zip(day, day[1:], strict=False):
        if a.has_fix and b.has_fix:  # no jumps: 1 s apart, at most ~22 m plus jitter
            assert distance_m(a.lat, a.lon, b.lat, b.lon) < OPEN_ROAD_MPS + 12
    for drive in tournee.drives:
        straight = distance_m(*drive.road.points[0], *drive.road.points[-1])
        assert drive.road.length_m == pytest.approx(1.3 * straight, rel=0.03)
        assert len(drive.villages_m) == 2


def test_one_junction_stop(tournee: Tournee) -> None:
    stopped = [d for d in tournee.drives if d.junction_m is not None]
    assert len(stopped) == 1
    drive = stopped[0]
    pauses = [(t2 - t1) for (t1, d1), (t2, d2) in zip(drive.knots, drive.knots[1:], strict=False)
              if d1 == d2]
    assert pauses == [JUNCTION_STOP_S]


def test_deterministic_for_a_seed(plan: Plan, tournee: Tournee) -> None:
    again = Tournee.build(plan, DEPOT, start_delay_s=DELAY_S, seed=7)
    other = Tournee.build(plan, DEPOT, start_delay_s=DELAY_S, seed=8)
    times = [tournee.start + timedelta(minutes=m) for m in range(0, 600, 7)]
    same = [(f.lat, f.lon, f.speed) for f in map(again.fix_at, times)]
    assert same == [(f.lat, f.lon, f.speed) for f in map(tournee.fix_at, times)]
    assert [(f.lat, f.lon) for f in map(other.fix_at, times)] != [s[:2] for s in same]


def test_no_delay_means_on_time(plan: Plan) -> None:
    punctual = Tournee.build(plan, DEPOT, seed=3)
    assert all(s.arrive <= s.planned_arrive for s in punctual.stops)
    assert all(s.depart == s.planned_depart for s in punctual.stops)


def test_simulated_source_reads_the_clock(tournee: Tournee) -> None:
    at = tournee.stops[0].arrive + timedelta(minutes=30)
    source = SimulatedSource(tournee, AcceleratedClock(at, speed=1.0))
    fix = source.read()
    assert fix is not None and fix.has_fix
    assert abs((fix.ts - at).total_seconds()) < 1
    assert distance_m(fix.lat, fix.lon, tournee.stops[0].lat, tournee.stops[0].lon) < 15
    source.close()


def test_naive_time_is_refused(tournee: Tournee) -> None:
    with pytest.raises(ValueError):
        tournee.fix_at(datetime(2024, 3, 4, 9, 0))


def test_conditions_make_a_real_day_on_the_same_roads(plan: Plan) -> None:
    noce, belleme, perv = plan.visits
    normal = Tournee.build(plan, DEPOT, seed=1, conditions=Conditions())
    snowy = Tournee.build(plan, DEPOT, seed=2, conditions=Conditions(
        pace=0.7, park_off_m={noce.visit: (200.0, 0.0)}, passed=frozenset({belleme.visit}),
        overrun_s={noce.visit: 1200.0}, lost_at_arrival={perv.visit: (60.0, 120.0)}))
    # The same road for a leg whatever the day (the tournée repeats), driven slower in snow.
    slow = Tournee.build(plan, DEPOT, seed=1, conditions=Conditions(pace=0.7))
    assert [d.road for d in slow.drives] == [d.road for d in normal.drives]
    assert [d.duration_s for d in slow.drives] == pytest.approx(
        [(d.duration_s - JUNCTION_STOP_S * (d.junction_m is not None)) / 0.7
         + JUNCTION_STOP_S * (d.junction_m is not None) for d in normal.drives], rel=1e-6)
    at_noce = snowy.fix_at(snowy.stops[0].arrive + timedelta(minutes=10))
    assert 190 < distance_m(at_noce.lat, at_noce.lon, noce.lat, noce.lon) < 215
    assert snowy.stops[0].depart - snowy.stops[0].planned_depart >= timedelta(minutes=20)
    assert [s.visit for s in snowy.stops] == [noce.visit, perv.visit]  # drove past Bellême
    assert not snowy.fix_at(snowy.stops[1].arrive + timedelta(seconds=30)).has_fix
    skipped = Tournee.build(plan, DEPOT, seed=1,
                            conditions=Conditions(skipped=frozenset({belleme.visit})))
    assert len(skipped.drives) == 3 and [s.visit for s in skipped.stops] == [
        noce.visit, perv.visit]
