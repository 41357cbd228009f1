from __future__ import annotations

import math
from datetime import timedelta

import pytest

from medicobus.geo import offset
from onboard.config import FilterSettings
from onboard.telemetry.fix import Fix
from onboard.telemetry.fix_filter import REANCHOR_AFTER, FixFilter
from tests.harness import MONDAY_8AM, VEHICLE

LAT, LON = 48.3838, 0.6783
KNOTS = 1852 / 3600  # m/s


def fix(seconds: float, north_m: float = 0.0, **kw: object) -> Fix:
    lat, lon = offset(LAT, LON, north_m, 0.0)
    fields = {"lat": lat, "lon": lon, "mode": 3, "speed": 10.0, "acc": 5.0, **kw}
    return Fix(ts=MONDAY_8AM + timedelta(seconds=seconds), **fields)  # type: ignore[arg-type]


def make() -> FixFilter:
    return FixFilter(FilterSettings(), VEHICLE)


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
    assert not f.accept(fix(3, simulated=True))  # a receiver in demo mode
    assert not f.accept(fix(4, acc=400.0))
    assert not f.accept(fix(5, north_m=5000))  # 5 km in 5 s
    assert f.rejected == {"no_fix": 1, "invalid": 2, "duplicate": 1, "out_of_order": 1,
                          "simulated": 1, "inaccurate": 1, "jump": 1}
    assert f.accept(fix(6, north_m=60))  # the track goes on


@pytest.mark.parametrize("field, value", [
    ("speed", -0.5), ("speed", 250 * KNOTS), ("heading", -10.0), ("heading", 361.0),
    ("acc", -1.0), ("lat", 91.0), ("lon", -181.0), ("heading", math.nan),
])
def test_what_the_contract_refuses_is_refused(field: str, value: float) -> None:
    """The Position message refuses these: the filter must not pass them to the agent."""
    f = make()
    assert not f.accept(fix(0, **{field: value}))
    assert f.rejected == {"invalid": 1}


def test_contract_bounds_as_the_agent_rounds() -> None:
    f = make()
    assert f.accept(fix(0, speed=-0.04, heading=359.7))  # rounds to 0.0 m/s and 360°
    assert f.accept(fix(1, speed=None, heading=None, acc=None))  # unknown is not invalid
    assert not f.rejected


def test_gps_time_is_believed_whatever_the_pi_clock_says() -> None:
    """No 'future': a Pi without RTC booting offline thinks it is 1970 or last week. Old
    recordings, and dates years ahead of any clock, pass as long as they go forward."""
    for start in (MONDAY_8AM - timedelta(days=20 * 365), MONDAY_8AM + timedelta(days=3 * 365)):
        f = make()
        fixes = [Fix(ts=start + timedelta(seconds=t), lat=LAT, lon=LON + t * 1e-4, speed=7.4)
                 for t in range(5)]
        assert all(f.accept(x) for x in fixes)


def test_a_startup_jump_read_again_with_its_time_is_a_duplicate() -> None:
    """The crash of issue 9: the same jump twice meant dividing by zero seconds."""
    f = make()
    assert f.accept(fix(0))
    jump = fix(1, north_m=30_000)
    assert not f.accept(jump)
    assert not f.accept(jump)  # read again, same time
    assert not f.accept(fix(1, north_m=30_050))  # same time, elsewhere: still no division
    assert f.rejected == {"jump": 1, "duplicate": 2}
    assert f.accept(fix(2, north_m=20))  # the track goes on from the anchor


def test_a_move_in_no_time_is_never_a_division_by_zero() -> None:
    f = make()
    assert f.accept(fix(0))
    assert not f.accept(fix(0, north_m=500))
    assert f.rejected == {"duplicate": 1}


def test_a_wrong_anchor_is_given_up_for_consistent_fixes() -> None:
    """If the first fix was the outlier, the filter must not reject the truth forever."""
    f = make()
    assert f.accept(fix(0, north_m=20_000))  # a bad first fix, 20 km off
    results = [f.accept(fix(t, north_m=10 * t)) for t in range(1, 8)]
    assert results[:2] == [False, False]
    assert all(results[2:])


def test_a_fix_dated_years_ahead_does_not_stop_the_track() -> None:
    """One fix dated 2080 then the right times again: they are out of order at first, then
    the filter re-anchors on them."""
    f = make()
    assert f.accept(fix(0))
    assert f.accept(fix(60 * 365 * 86400))  # a receiver's bad week number, once
    results = [f.accept(fix(t, north_m=10 * t)) for t in range(1, 8)]
    assert results[:REANCHOR_AFTER - 1] == [False] * (REANCHOR_AFTER - 1)
    assert all(results[REANCHOR_AFTER - 1:])
    assert f.rejected == {"out_of_order": REANCHOR_AFTER - 1}


def test_a_single_step_back_is_refused_and_the_track_goes_on() -> None:
    f = make()
    assert all(f.accept(fix(t, north_m=10 * t)) for t in range(5))
    assert not f.accept(fix(2, north_m=20))  # a receiver resending an older fix
    assert all(f.accept(fix(t, north_m=10 * t)) for t in range(5, 10))
    assert f.rejected == {"out_of_order": 1}
