from __future__ import annotations

import math
from datetime import timedelta

from medicobus.geo import offset
from onboard.config import FilterSettings
from onboard.telemetry.fix import Fix
from onboard.telemetry.fix_filter import FixFilter
from tests.clocks import ManualClock
from tests.harness import MONDAY_8AM

LAT, LON = 48.3838, 0.6783


def fix(seconds: float, north_m: float = 0.0, **kw: object) -> Fix:
    lat, lon = offset(LAT, LON, north_m, 0.0)
    fields = {"lat": lat, "lon": lon, "mode": 3, "speed": 10.0, "acc": 5.0, **kw}
    return Fix(ts=MONDAY_8AM + timedelta(seconds=seconds), **fields)  # type: ignore[arg-type]


def make() -> FixFilter:
    return FixFilter(FilterSettings(), ManualClock(MONDAY_8AM + timedelta(minutes=10)))


def test_good_fixes_pass() -> None:
    f = make()
    assert all(f.accept(fix(t, north_m=10 * t)) for t in range(10))
    assert not f.rejected


def test_each_bad_fix_is_dropped_and_counted() -> None:
    f = make()
    assert f.accept(fix(0))
    assert not f.accept(fix(1, mode=1, lat=math.nan, lon=math.nan))
    assert not f.accept(Fix(ts=MONDAY_8AM + timedelta(seconds=2), lat=0.0, lon=0.0))
    assert not f.accept(fix(3, speed=math.inf))
    assert not f.accept(fix(0))  # same timestamp again
    assert not f.accept(fix(-5))  # older than the last good one
    assert not f.accept(fix(3600))  # an hour ahead of the clock
    assert not f.accept(fix(4, acc=400.0))
    assert not f.accept(fix(5, north_m=5000))  # 5 km in 5 s
    assert f.rejected == {"no_fix": 1, "invalid": 2, "duplicate": 2, "future": 1,
                          "inaccurate": 1, "jump": 1}
    assert f.accept(fix(6, north_m=60))  # the track goes on


def test_a_wrong_anchor_is_given_up_for_consistent_fixes() -> None:
    """If the first fix was the outlier, the filter must not reject the truth forever."""
    f = make()
    assert f.accept(fix(0, north_m=20_000))  # a bad first fix, 20 km off
    results = [f.accept(fix(t, north_m=10 * t)) for t in range(1, 8)]
    assert results[:2] == [False, False]
    assert all(results[2:])
