"""Plausibility on the ground: a position that implies an impossible speed from the
vehicle's last known one is held back until another agrees with it, so one wild fix never
reaches a public page; and the rule's arithmetic never divides by zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from medicobus import contract
from medicobus.geo import offset
from medicobus.motion import too_fast
from tests.test_time_bounds import Ground
from tests.test_web_pages import NOCE, VEHICLE, LiveServer


class Driving(Ground):
    def send_fix(self, lat: float, lon: float) -> int:
        return self.send(contract.Channel.POSITION, lat=lat, lon=lon, speed=12.0, heading=180.0,
                         acc=5.0)


def drive(g: Driving, lat: float, lon: float, minutes: int) -> tuple[float, float]:
    """Half-minute fixes heading south at 12 m/s (43 km/h), received as they are taken."""
    for _ in range(minutes * 2):
        g.clock.advance(0.5)
        lat, lon = offset(lat, lon, -360.0, 0.0)
        assert g.send_fix(lat, lon) == 0
    return lat, lon


def test_one_wild_fix_never_reaches_the_public_page(tmp_path: Path) -> None:
    g = Driving(tmp_path / "ground.db")
    g.status("online")
    stop = g.fleet.stop("noce")
    lat, lon = drive(g, *offset(stop.lat, stop.lon, 12_000, 0), minutes=5)
    with LiveServer(g.app()) as server:
        before = httpx.get(f"{server.url}/api/v1/stops/{NOCE}").json()["next_visit"]
        g.clock.advance(0.5)
        g.send_fix(43.60, 1.44)  # Toulouse, 670 km away, half a minute later
        after = httpx.get(f"{server.url}/api/v1/stops/{NOCE}").json()["next_visit"]
        page = httpx.get(f"{server.url}/communes/{NOCE}").text
    s = g.state.get(VEHICLE)
    assert s.position is not None and (s.position.lat, s.position.lon) == (lat, lon)
    assert s.held_back_count == 1
    assert (after["status"], after["delay_min"]) == (before["status"], before["delay_min"])
    assert "554" not in page and "retard" not in page.lower().split("horaires")[0]
    # The next real fix carries on from where the bus really is.
    lat, lon = drive(g, lat, lon, minutes=1)
    assert g.state.get(VEHICLE).position.lat == lat  # type: ignore[union-attr]


def test_fixes_that_agree_with_each_other_replace_a_wrong_last_position(tmp_path: Path) -> None:
    g = Driving(tmp_path / "ground.db")
    g.send_fix(43.60, 1.44)  # the first fix of the day was the wrong one
    stop = g.fleet.stop("noce")
    start = offset(stop.lat, stop.lon, 12_000, 0)
    g.clock.advance(0.5)
    assert g.send_fix(*start) == 0  # held back: it disagrees with the last known position
    assert g.state.get(VEHICLE).position.lat == 43.60  # type: ignore[union-attr]
    lat, lon = drive(g, *start, minutes=1)  # ...and confirmed by the next
    assert g.state.get(VEHICLE).position.lat == lat  # type: ignore[union-attr]
    assert g.state.get(VEHICLE).held_back_count == 1


def test_the_speed_rule_has_no_division_by_zero() -> None:
    t = datetime(2026, 11, 23, 8, tzinfo=UTC)
    here, there = (48.4, 0.6, 5.0, t), (48.5, 0.6, 5.0, t)
    assert too_fast(here, there)  # 11 km apart at the same instant: a jump
    assert not too_fast(here, here)  # the same fix read twice
    assert too_fast(there, (48.4, 0.6, 5.0, t - timedelta(seconds=1)))  # time going back
    assert not too_fast(here, (48.5, 0.6, None, t + timedelta(minutes=10)))  # 66 km/h
    assert too_fast(here, (48.5, 0.6, None, t + timedelta(minutes=3)))  # 222 km/h
