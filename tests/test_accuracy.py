"""Scoring published ETAs against real arrivals, and the two baselines."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ground.accuracy import (
    Prediction,
    published,
    schedule_deviation,
    schedule_only,
    score,
    table,
    tables_by,
    week_of,
)
from ground.eta import TravelModel, forecast_day
from ground.state import LiveState
from tests.harness import VEHICLE
from tests.test_eta import BELLEME, NOCE, PERV, PLAN, at, event

ARRIVED = at(8, 30)


def predicted(made: datetime, minutes_late: float) -> Prediction:
    """A prediction for Nocé made at `made`, which the bus, arriving at 08:30, missed by
    these minutes (negative: it came earlier than announced)."""
    return Prediction(made, NOCE.visit, ARRIVED - timedelta(minutes=minutes_late))


def test_buckets_by_time_to_the_real_arrival_with_mae_p90_bias_and_windows() -> None:
    actual = {NOCE.visit: ARRIVED}
    predictions = [
        predicted(at(8, 28), 1.0),    # 2 min ahead: +60 s is inside −30/+90 s
        predicted(at(8, 27), -1.0),   # 3 min ahead: 60 s early is outside −30 s
        predicted(at(8, 22), 3.0),    # 8 min ahead: +3 min inside −1/+3.5 min
        predicted(at(8, 18), 5.0),    # 12 min ahead: +5 min outside −1.5/+4.5 min
        predicted(at(8, 5), -10.0),   # 25 min ahead: no window
        predicted(at(9, 0), 0.0),     # after the arrival: not scored
        Prediction(at(8, 0), "2026-11-23/nowhere/am", at(9, 0)),  # never happened
    ]
    rows = {r.bucket: r for r in table(score(predictions, actual))}
    assert rows["0–5 min"].n == 2 and rows["0–5 min"].mae_min == pytest.approx(1.0)
    assert rows["0–5 min"].bias_min == pytest.approx(0.0)
    assert rows["0–5 min"].in_window == pytest.approx(0.5)
    assert rows["5–10 min"].in_window == 1.0
    assert rows["10–20 min"].in_window == 0.0 and rows["10–20 min"].p90_min == 5.0
    assert rows["20–40 min"].in_window is None and rows["20–40 min"].bias_min == -10.0
    assert rows["40+ min"].n == 0 and rows["40+ min"].mae_min is None
    assert rows["all"].n == 5 and rows["all"].mae_min == pytest.approx(20 / 5)
    assert rows["all"].in_window == pytest.approx(2 / 4)


def test_p90_is_the_value_nine_in_ten_do_not_exceed() -> None:
    actual = {NOCE.visit: ARRIVED}
    predictions = [predicted(at(8, 28), m) for m in range(1, 11)]  # 1..10 min off
    (row,) = [r for r in table(score(predictions, actual)) if r.bucket == "0–5 min"]
    assert row.p90_min == 9.0 and row.mae_min == pytest.approx(5.5)


def test_tables_by_week() -> None:
    actual = {NOCE.visit: ARRIVED, "next": ARRIVED + timedelta(days=7)}
    scored = score([predicted(at(8, 20), 2.0),
                    Prediction(at(8, 20) + timedelta(days=7), "next",
                               at(8, 30) + timedelta(days=7, minutes=4))], actual)
    by_week = tables_by(scored, week_of)
    assert list(by_week) == ["2026-W48", "2026-W49"]
    assert [r.mae_min for r in by_week["2026-W49"] if r.bucket == "all"] == [4.0]


def test_schedule_only_and_schedule_plus_deviation() -> None:
    state = LiveState()
    state.apply(event("arrival", NOCE, at(8, 45)), at(8, 45))  # 15 min late
    s = state.get(VEHICLE)
    now = at(9, 0)
    assert [(p.visit, p.arrive) for p in schedule_only(PLAN.visits, s, now)] == [
        (BELLEME.visit, BELLEME.arrive), (PERV.visit, PERV.arrive)]
    assert [p.arrive for p in schedule_deviation(PLAN.visits, s, now)] == [
        at(11, 15), at(14, 15)]
    # Left on time after all: the latest event's deviation is the one carried.
    state.apply(event("departure", NOCE, at(10, 30)), at(10, 30))
    assert [p.arrive for p in schedule_deviation(PLAN.visits, s, at(10, 31))] == [
        at(11, 0), at(14, 0)]
    # Never in the past: the bus late for Bellême and no news.
    assert [p.arrive for p in schedule_deviation(PLAN.visits, s, at(11, 20))][0] == at(11, 20)


def test_published_are_the_etas_of_visits_not_reached() -> None:
    state = LiveState()
    state.apply(event("arrival", NOCE, at(8, 25)), at(8, 25))
    now = at(9, 0)
    forecasts = forecast_day(PLAN.visits, state.get(VEHICLE), now, TravelModel())
    made = published(forecasts, now, VEHICLE)
    assert [p.visit for p in made] == [BELLEME.visit, PERV.visit]
    assert all(p.made_at == now and p.vehicle == VEHICLE for p in made)
