"""Arrival and departure on the bus: debounced, so jitter at the fence never flaps."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

from ground.fleet import day_plan, load_fleet
from medicobus.geo import offset
from onboard.config import GeofenceSettings
from onboard.geofence import VisitTracker
from onboard.plan import PlanStore
from onboard.telemetry.fix import Fix
from tests.harness import FLEET, MONDAY_8AM, VEHICLE

PLAN = day_plan(load_fleet(FLEET), VEHICLE, date(2026, 11, 23))
NOCE = PLAN.visits[0]  # radius 120 m


def at(seconds: float, north_m: float, speed: float = 0.5) -> Fix:
    lat, lon = offset(NOCE.lat, NOCE.lon, north_m, 0.0)
    return Fix(ts=MONDAY_8AM + timedelta(seconds=seconds), lat=lat, lon=lon, speed=speed)


def tracker(tmp_path: Path) -> VisitTracker:
    t = VisitTracker(GeofenceSettings(), PlanStore(tmp_path / "plan.db"))
    t.use(PLAN)
    return t


def events(t: VisitTracker, fixes: list[Fix]) -> list[tuple[str, str]]:
    return [(c.event, c.visit.stop) for f in fixes for c in t.update(f)]


def test_arrives_after_dwelling_and_leaves_past_the_margin(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    approach = [at(s, 1000 - 20 * s, speed=13.0) for s in range(50)]  # 1 km out, driving in
    parked = [at(50 + s, 0.0) for s in range(60)]
    leaving = [at(110 + s, 15 * s, speed=13.0) for s in range(40)]
    got = events(t, approach + parked + leaving)
    assert got == [("arrival", "noce"), ("departure", "noce")]
    arrival = t.done[(NOCE.visit, "arrival")]
    assert arrival == parked[0].ts  # the time it entered, not the end of the debounce


def test_driving_through_the_fence_is_not_an_arrival(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    through = [at(s, 300 - 10 * s, speed=10.0) for s in range(60)]
    assert events(t, through) == []


def test_jitter_at_the_edge_does_not_flap(tmp_path: Path) -> None:
    rng = random.Random(7)
    t = tracker(tmp_path)
    parked = [at(s, 0.0) for s in range(40)]
    # An hour parked at the fence's edge with ±40 m of GPS noise: in and out of the radius.
    edge = [at(40 + s, NOCE.radius_m + rng.uniform(-40, 40)) for s in range(3600)]
    assert events(t, parked + edge) == [("arrival", "noce")]


def test_a_restart_does_not_arrive_twice(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    assert events(t, [at(s, 0.0) for s in range(40)]) == [("arrival", "noce")]
    again = VisitTracker(GeofenceSettings(), PlanStore(tmp_path / "plan.db"))
    assert again.plan == PLAN
    assert events(again, [at(100 + s, 0.0) for s in range(40)]) == []


def test_an_old_plan_is_not_used_on_another_day(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    next_day = [at(86_400 + s, 0.0) for s in range(60)]
    assert events(t, next_day) == []


def test_parked_off_the_fence_it_arrives_and_learns_where_it_parks(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    # The square is taken: parked 220 m away (outside the 120 m fence) for the session.
    parked = [at(s, 220.0) for s in range(0, 600, 5)]
    leaving = [at(600 + s, 220 + 15 * s, speed=13.0) for s in range(60)]
    got = events(t, parked + leaving)
    assert got == [("arrival", "noce"), ("departure", "noce")]
    assert t.done[(NOCE.visit, "arrival")] == parked[0].ts  # when it stopped there
    assert t.done[(NOCE.visit, "departure")] > parked[-1].ts  # not at once: it is there
    # Next week (a new plan.db of the day's progress would be the same file): the place is
    # known, so the usual short dwell is enough.
    week = PLAN.model_copy(update={"day": PLAN.day + timedelta(days=7), "visits": [
        v.model_copy(update={"visit": "next-week", "arrive": v.arrive + timedelta(days=7),
                             "depart": v.depart + timedelta(days=7)}) for v in PLAN.visits[:1]]})
    again = VisitTracker(GeofenceSettings(), PlanStore(tmp_path / "plan.db"))
    again.use(week)
    later = [Fix(ts=f.ts + timedelta(days=7), lat=f.lat, lon=f.lon, speed=f.speed)
             for f in (at(s, 225.0) for s in range(40))]
    assert [(c.event, c.ts) for f in later for c in again.update(f)] == [
        ("arrival", later[0].ts)]


def test_waiting_near_a_stop_for_less_than_the_dwell_is_not_an_arrival(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    junction = [at(s, 300.0) for s in range(0, 200, 5)]  # over 3 min at a level crossing
    assert events(t, junction + [at(200 + s, 300 - 13 * s, 13.0) for s in range(10)]) == []
