from __future__ import annotations

from datetime import timedelta

from medicobus.geo import offset
from onboard.config import ReportSettings
from onboard.telemetry.fix import Fix
from onboard.telemetry.reporting import ReportPolicy
from tests.harness import MONDAY_8AM


def drive(seconds: int, speed: float, heading: float = 0.0, turn_at: int | None = None,
          jitter_m: float = 0.0) -> list[Fix]:
    fixes, north, east = [], 0.0, 0.0
    for t in range(seconds):
        h = heading if turn_at is None or t < turn_at else heading + 90
        if h == 0.0:
            north += speed
        else:
            east += speed
        lat, lon = offset(48.4, 0.6, north + (jitter_m if t % 2 else -jitter_m), east)
        fixes.append(Fix(ts=MONDAY_8AM + timedelta(seconds=t), lat=lat, lon=lon, speed=speed,
                         heading=h % 360, acc=5.0))
    return fixes


def reported(fixes: list[Fix]) -> list[Fix]:
    policy = ReportPolicy(ReportSettings())
    return [f for f in fixes if policy.due(f)]


def test_a_parked_bus_costs_almost_nothing() -> None:
    hour = drive(3600, speed=0.0, jitter_m=4.0)  # GPS jitter of a few metres
    assert len(reported(hour)) <= 7  # a heartbeat every 10 minutes, plus the first


def test_a_moving_bus_is_tracked_closely() -> None:
    ten_min = drive(600, speed=14.0)  # 50 km/h in a straight line
    sent = reported(ten_min)
    gaps = [(b.ts - a.ts).total_seconds() for a, b in zip(sent, sent[1:], strict=False)]
    assert max(gaps) <= 30  # at least every moving_interval_s
    assert 60 <= len(sent) <= 120  # every ~100 m, not every fix


def test_a_turn_is_reported_at_once() -> None:
    fixes = drive(20, speed=3.0, turn_at=10)  # slow: distance alone would not trigger
    sent = reported(fixes)
    assert any(f.ts == fixes[10].ts or f.ts == fixes[11].ts for f in sent)


def test_stopping_is_reported() -> None:
    fixes = drive(10, speed=14.0) + [
        Fix(ts=MONDAY_8AM + timedelta(seconds=12), lat=48.4 + 0.0013, lon=0.6, speed=0.0)
    ]
    assert reported(fixes)[-1].speed == 0.0
