"""Properties of the ETAs and of the ground whatever the buses send (hypothesis): ETAs are
never in the past, never out of order, always real times; the pipeline never raises on a
message it does not expect, and the forecast never raises on the state it leaves."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground import roads
from ground.accuracy import published
from ground.eta import TravelModel, forecast_day
from ground.pipeline import Arrived, Pipeline
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from onboard.telemetry.simulated import plan_drive
from tests.harness import VEHICLE
from tests.test_eta import PLAN, at

START = at(6, 0)
FAST = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

minutes = st.floats(min_value=-120, max_value=900, allow_nan=False)
visits = st.sampled_from([*PLAN.visits, PLAN.visits[0].model_copy(update={"visit": "other"})])


def when(m: float) -> datetime:
    return START + timedelta(minutes=m)


positions = st.builds(
    lambda m, lat, lon, speed: contract.Position(vehicle=VEHICLE, ts=when(m), lat=lat,
                                                 lon=lon, speed=speed),
    minutes, st.floats(48.2, 48.7), st.floats(0.3, 0.9),
    st.none() | st.floats(0, 40))  # fmt: skip
events = st.builds(
    lambda m, kind, v: contract.VisitEvent(vehicle=VEHICLE, ts=when(m), event=kind,
                                           visit=v.visit, stop=v.stop, lat=v.lat, lon=v.lon),
    minutes, st.sampled_from(["arrival", "departure"]), visits)  # fmt: skip
queues = st.builds(
    lambda m, v, is_open, ends: contract.QueueState(
        vehicle=VEHICLE, ts=when(m), visit=v.visit, open=is_open, waiting=3, consult_min=15,
        wait_min=45, ends_at=None if ends is None else when(ends)),
    minutes, visits, st.booleans(), st.none() | minutes)  # fmt: skip
messages = st.lists(st.tuples(positions | events | queues, st.floats(0, 600)), max_size=60)
legs = st.lists(st.tuples(st.sampled_from(["noce", "belleme", "pervencheres"]),
                          st.sampled_from(["noce", "belleme", "pervencheres"]),
                          st.floats(60, 3 * 3600)), max_size=6)
early = st.lists(st.tuples(visits, st.floats(-90, 90)), max_size=6)


def _track(a: contract.PlannedVisit, b: contract.PlannedVisit) -> roads.Track:
    d = plan_drive(a.depart, (a.lat, a.lon), (b.lat, b.lon), random.Random(1),
                   road_rng=random.Random(f"{a.stop}>{b.stop}"))
    points = [(d.start + timedelta(seconds=t), *d.road.at(d.progress(
        d.start + timedelta(seconds=t))[0])[0]) for t in range(0, int(d.duration_s), 10)]
    return roads.Track(a.stop, b.stop, d.start, d.end, points)


# The day's legs as learned roads, for the forecast to project any position onto.
ROADS = roads.learn([_track(a, b) for a, b in zip(PLAN.visits, PLAN.visits[1:], strict=False)],
                    {v.stop: (v.lat, v.lon) for v in PLAN.visits})


@FAST
@given(messages, legs, early, minutes, st.booleans())
def test_etas_are_never_in_the_past_never_out_of_order(
        received: list[tuple[contract.Position | contract.VisitEvent | contract.QueueState,
                             float]],
        learned: list[tuple[str, str, float]], offsets: list[tuple[contract.PlannedVisit,
                                                                   float]],
        now_m: float, with_roads: bool) -> None:
    travel = TravelModel()
    travel.learn(learned)
    if with_roads:
        travel.learn_roads(ROADS)
    travel.learn_arrivals((v, v.arrive + timedelta(minutes=m)) for v, m in offsets)
    state = LiveState()
    for message, delay in received:  # in any order, each some time after it was made
        state.apply(message, message.ts + timedelta(seconds=delay))
    now = when(now_m)
    forecasts = forecast_day(PLAN.visits, state.get(VEHICLE), now, travel)
    assert [f.visit for f in forecasts] == PLAN.visits
    ahead = published(forecasts, now)
    assert all(p.arrive >= now for p in ahead)
    assert all(a.arrive <= b.arrive for a, b in zip(ahead, ahead[1:], strict=False))
    for f in forecasts:
        assert f.arrive.tzinfo is not None and f.depart.tzinfo is not None
        assert f.delay_min >= 0
        if f.arrived_at is None and f.departed_at is None:
            assert f.depart >= f.arrive


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)  # fmt: skip
good = st.sampled_from([
    contract.Position(vehicle=VEHICLE, ts=at(9, 0), lat=48.4, lon=0.6, speed=10.0),
    contract.VisitEvent(vehicle=VEHICLE, ts=at(9, 0), event="arrival", visit=PLAN.visits[0].visit,
                        stop="noce", lat=48.38, lon=0.68),
    contract.QueueState(vehicle=VEHICLE, ts=at(9, 0), visit=PLAN.visits[0].visit, open=True,
                        waiting=1, consult_min=15, wait_min=15, ends_at=at(10, 0)),
])


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Garbage, any JSON, or a good message with one field replaced by anything."""
    kind = draw(st.sampled_from(["bytes", "json", "near"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    message = draw(good).model_dump(mode="json")
    message[draw(st.sampled_from(sorted(message)))] = draw(json_values)
    return json.dumps(message, allow_nan=True).encode()


topics = st.sampled_from([contract.topic(VEHICLE, c) for c in contract.Channel]
                         + ["medicobus/vehicles/ghost/position", "medicobus", "x/y/z"])


@FAST
@given(st.lists(st.tuples(topics, payloads()), min_size=1, max_size=20), minutes)
def test_the_ground_never_crashes_on_what_it_does_not_expect(
        batch: list[tuple[str, bytes]], now_m: float) -> None:
    state = LiveState()
    pipeline = Pipeline(Store(":memory:"), state, {VEHICLE})
    pipeline.run([Arrived(topic, payload, at(9, 0)) for topic, payload in batch])
    assert pipeline.stats["received"] == len(batch)
    assert pipeline.stats["step_errors"] == 0
    forecast_day(PLAN.visits, state.get(VEHICLE), when(now_m), TravelModel())


plans = st.lists(st.builds(
    lambda v, a, d, lat, lon: v.model_copy(update={"arrive": when(a), "depart": when(d),
                                                   "lat": lat, "lon": lon}),
    visits, minutes, minutes, st.floats(-89, 89), st.floats(-179, 179)), max_size=5)


@FAST
@given(plans, messages, minutes)
def test_a_plan_it_does_not_expect_gives_etas_all_the_same(
        plan: list[contract.PlannedVisit],
        received: list[tuple[contract.Position | contract.VisitEvent | contract.QueueState,
                             float]], now_m: float) -> None:
    state = LiveState()
    for message, delay in received:
        state.apply(message, message.ts + timedelta(seconds=delay))
    now = when(now_m)
    forecasts = forecast_day(plan, state.get(VEHICLE), now, TravelModel())
    assert len(forecasts) == len(plan)
    assert all(p.arrive >= now for p in published(forecasts, now))
