"""`medicobus ground eta-replay`: the recorded days of the ground's own store, re-run
through the model and both baselines, scored against the real arrivals."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from bench.eta_accuracy import DEPOT, bus_messages
from ground.fleet import day_plan, load_fleet
from ground.replay import eta_replay
from ground.store import Store
from medicobus.cli import main
from onboard.telemetry.simulated import Conditions, Tournee
from tests.clocks import ManualClock
from tests.harness import FLEET, VEHICLE

pytestmark = pytest.mark.timeout(60)
LEARNED, REPLAYED = date(2027, 2, 1), date(2027, 2, 8)  # two Mondays


def record_day(store: Store, tmp: Path, day: date, conditions: Conditions) -> Tournee:
    plan = day_plan(load_fleet(FLEET), VEHICLE, day)
    tournee = Tournee.build(plan, DEPOT, seed=day.toordinal(), conditions=conditions)
    positions, events = bus_messages(plan, tournee, tmp / f"{day}.plan.db")
    store.record([(m, m.ts + timedelta(seconds=2)) for m in [*positions, *events]])
    return tournee


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Tournee]:
    store = Store(tmp_path / "ground.db", ManualClock(
        day_plan(load_fleet(FLEET), VEHICLE, REPLAYED).visits[0].arrive))
    record_day(store, tmp_path, LEARNED, Conditions())
    # Parked off Bellême on the day replayed: no arrival reported there, but one seen.
    belleme = day_plan(load_fleet(FLEET), VEHICLE, REPLAYED).visits[1].visit
    replayed = record_day(store, tmp_path, REPLAYED, Conditions(
        park_off_m={belleme: (0.0, 220.0)}, overrun_s={belleme: 1500.0}))
    store.close()
    config = tmp_path / "ground.toml"
    config.write_text(f'fleet = "{FLEET}"\ndatabase = "ground.db"\n')
    return config, replayed


def test_the_replay_scores_the_model_and_both_baselines(
        recorded: tuple[Path, Tournee], capsys: pytest.CaptureFixture[str]) -> None:
    config, tournee = recorded
    assert main(["ground", "--config", str(config), "eta-replay", "--from", str(REPLAYED),
                 "--to", str(REPLAYED)]) == 0
    out = capsys.readouterr().out
    assert "1 days, 3 visits planned, 3 reached" in out
    for name in ("model", "schedule + deviation", "schedule only"):
        rows = re.findall(rf"^\| {re.escape(name)} \| (.+?) \| (\d+) \|", out, re.M)
        assert [bucket for bucket, _ in rows] == [
            "0–5 min", "5–10 min", "10–20 min", "20–40 min", "40+ min", "all"]
        assert int(rows[-1][1]) > 100  # a prediction a minute for three visits


def test_the_replay_learns_only_from_before_and_sees_the_arrival_off_the_fence(
        recorded: tuple[Path, Tournee]) -> None:
    config, tournee = recorded
    store = Store(config.parent / "ground.db")
    done = eta_replay(store, load_fleet(FLEET), REPLAYED, REPLAYED)
    store.close()
    belleme = tournee.stops[1]
    scored = [s for s in done.scored["model"] if s.prediction.visit == belleme.visit]
    assert scored and all(s.actual == scored[0].actual for s in scored)
    assert abs((scored[0].actual - belleme.arrive).total_seconds()) < 60
    # Bellême overran 25 min (no kiosk on this bus): the model, re-aimed by the inferred
    # arrival, is closer than the timetable plus deviation over the day.
    model = [abs(s.error_s) for s in done.scored["model"]]
    baseline = [abs(s.error_s) for s in done.scored["schedule + deviation"]]
    assert sum(model) / len(model) < sum(baseline) / len(baseline)


def test_from_and_to_are_required_in_order(recorded: tuple[Path, Tournee]) -> None:
    config, _ = recorded
    with pytest.raises(SystemExit):
        main(["ground", "--config", str(config), "eta-replay", "--from", str(REPLAYED),
              "--to", str(LEARNED)])
