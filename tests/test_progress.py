"""Progress inferred from the positions when the bus's geofence says nothing: the simulated
Monday (Nocé, Bellême, Pervenchères) driven with the real geofence (one that does not learn
where the bus parks, as on a bus of before) and report policy on the bus
(bench/eta_accuracy.bus_messages), the ground's live state and forecast on what they sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bench.eta_accuracy import DEPOT, FENCE_ONLY, bus_messages
from ground.eta import Forecast, TravelModel, forecast_day
from ground.state import LiveState
from ground.store import Message
from ground.views import VisitStatus
from medicobus import contract
from onboard.telemetry.simulated import Conditions, Tournee
from tests.harness import VEHICLE
from tests.test_eta import BELLEME, NOCE, PERV, PLAN
from tests.test_eta import pos as position

pytestmark = pytest.mark.timeout(60)


def day(tmp: Path, **conditions: object) -> tuple[Tournee, list[Message]]:
    tournee = Tournee.build(PLAN, DEPOT, seed=5, conditions=Conditions(**conditions))  # type: ignore[arg-type]
    positions, events = bus_messages(PLAN, tournee, tmp / "plan.db", FENCE_ONLY)
    return tournee, sorted([*positions, *events], key=lambda m: m.ts)


def forecast_at(messages: list[Message], now: datetime) -> list[Forecast]:
    state = LiveState()
    for m in messages:
        if m.ts <= now:
            state.apply(m, m.ts)  # type: ignore[arg-type]
    return forecast_day(PLAN.visits, state.get(VEHICLE), now, TravelModel())


def arrivals(messages: list[Message]) -> set[str]:
    return {m.visit for m in messages if isinstance(m, contract.VisitEvent)
            and m.event == "arrival"}


def test_parked_200_m_from_the_stop_is_there_and_leaves(tmp_path: Path) -> None:
    tournee, sent = day(tmp_path, park_off_m={NOCE.visit: (0.0, 200.0)})
    assert NOCE.visit not in arrivals(sent)  # outside the fence: the bus never says
    noce, belleme = tournee.stops[0], tournee.stops[1]
    f = forecast_at(sent, noce.arrive + timedelta(minutes=40))
    assert f[0].status is VisitStatus.CONSULTING and f[0].inferred
    assert f[0].arrived_at is not None
    assert abs((f[0].arrived_at - noce.arrive).total_seconds()) < 60
    # Gone: on the road to Bellême, whose ETA is aimed at it, not at Nocé.
    f = forecast_at(sent, noce.depart + timedelta(minutes=4))
    assert f[0].status is VisitStatus.DEPARTED and f[0].departed_at is not None
    assert abs((f[0].departed_at - noce.depart).total_seconds()) < 60
    assert f[1].status in (VisitStatus.EN_ROUTE, VisitStatus.PLANNED)
    assert abs((f[1].arrive - belleme.arrive).total_seconds()) < 5 * 60


def test_a_skipped_stop_is_given_up_on_the_way_to_the_next(tmp_path: Path) -> None:
    tournee, sent = day(tmp_path, skipped=frozenset({BELLEME.visit}))
    noce, perv = tournee.stops
    drive = next(d for d in tournee.drives if d.start == noce.depart)
    f = forecast_at(sent, drive.start + timedelta(seconds=0.7 * drive.duration_s))
    assert f[1].status is VisitStatus.UNCONFIRMED and f[1].inferred  # before Pervenchères
    assert f[2].status is not VisitStatus.UNCONFIRMED
    assert f[2].arrive <= max(PERV.arrive, perv.arrive + timedelta(minutes=3))


def test_driving_past_a_stop_without_stopping(tmp_path: Path) -> None:
    tournee, sent = day(tmp_path, passed=frozenset({BELLEME.visit}))
    assert BELLEME.visit not in arrivals(sent)
    through = tournee.drives[2]  # Bellême to Pervenchères, straight after driving in
    f = forecast_at(sent, through.start + timedelta(minutes=3))
    assert f[1].status is VisitStatus.UNCONFIRMED and f[1].arrived_at is None
    assert f[2].status in (VisitStatus.EN_ROUTE, VisitStatus.PLANNED)


def test_gps_lost_across_an_arrival_outside_the_fence(tmp_path: Path) -> None:
    tournee, sent = day(tmp_path, park_off_m={BELLEME.visit: (-180.0, 0.0)},
                        lost_at_arrival={BELLEME.visit: (120.0, 400.0)})
    belleme = tournee.stops[1]
    f = forecast_at(sent, belleme.arrive + timedelta(minutes=20))
    assert f[1].status is VisitStatus.CONSULTING and f[1].inferred
    assert f[1].arrived_at is not None  # dated from the last fix's speed, not the return
    assert abs((f[1].arrived_at - belleme.arrive).total_seconds()) < 90


def test_a_bus_stopped_briefly_near_a_stop_is_not_there() -> None:
    state = LiveState()
    start = NOCE.arrive - timedelta(minutes=20)
    for i, speed in enumerate([12.0, 0.0, 0.0, 12.0]):  # a minute at a junction, 300 m off
        t = start + timedelta(minutes=i * 0.5)
        state.apply(position(t, NOCE.lat + 0.0027, NOCE.lon, speed), t)
    f = forecast_day(PLAN.visits, state.get(VEHICLE), start + timedelta(minutes=5),
                     TravelModel())
    assert f[0].arrived_at is None and f[0].status is not VisitStatus.UNCONFIRMED


def test_positions_read_after_a_reported_arrival_are_not_its_departure() -> None:
    # The forecast is asked rarely (no page open): the approach and the arrival event are
    # read together; the approach, from before the arrival, does not make a departure.
    state = LiveState()
    for i in range(10):
        t = NOCE.arrive - timedelta(minutes=12 - i)
        lat = NOCE.lat + 0.009 * (10 - i) / 10  # from 1 km north, driving in
        state.apply(position(t, lat, NOCE.lon, 12.0), t)
    arrived = NOCE.arrive - timedelta(minutes=2)
    state.apply(contract.VisitEvent(vehicle=VEHICLE, ts=arrived, event="arrival",
                                    visit=NOCE.visit, stop="noce", lat=NOCE.lat,
                                    lon=NOCE.lon), arrived)
    f = forecast_day(PLAN.visits, state.get(VEHICLE), NOCE.arrive + timedelta(minutes=10),
                     TravelModel())
    assert f[0].status is VisitStatus.CONSULTING and f[0].departed_at is None


def test_a_reported_departure_whose_arrival_was_lost_is_a_departure() -> None:
    # The arrival event never came (lost with the GPS); the bus then reported leaving Nocé
    # and drives away, as if it had driven past: it was there, and is on its way to Bellême.
    state = LiveState()
    left = NOCE.depart + timedelta(minutes=1)
    state.apply(contract.VisitEvent(vehicle=VEHICLE, ts=left, event="departure",
                                    visit=NOCE.visit, stop="noce", lat=NOCE.lat,
                                    lon=NOCE.lon), left)
    for i in range(1, 8):
        t = left + timedelta(minutes=i)
        lat = NOCE.lat + (BELLEME.lat - NOCE.lat) * i / 12
        lon = NOCE.lon + (BELLEME.lon - NOCE.lon) * i / 12
        state.apply(position(t, lat, lon, 13.0), t)
    f = forecast_day(PLAN.visits, state.get(VEHICLE), left + timedelta(minutes=7),
                     TravelModel())
    assert f[0].status is VisitStatus.DEPARTED and f[0].departed_at == left
    assert f[1].status in (VisitStatus.EN_ROUTE, VisitStatus.PLANNED)
    assert f[1].arrive < BELLEME.arrive + timedelta(minutes=5)
