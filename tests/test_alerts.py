"""The alert engine on a real store: rules open after their duration, acknowledge, close
on their clear condition, once per episode whatever the input does (flapping, backlogs,
restarts)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ground.alerts import DEFAULT_RULES, Alert, AlertEngine, AlertStorage
from ground.fleet import Fleet, load_fleet
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from tests.clocks import ManualClock
from tests.harness import FLEET

VEHICLE = "perche-1"
# Monday 23 November 2026: service hours 08:30-17:00 Paris = 07:30-16:00 UTC.
NINE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Recorder:
    """What the notifier is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def notify(self, event: str, alert: Alert) -> None:
        self.events.append((event, alert.id))


class Ground:
    """A store, live state and alert engine, fed the way ingest feeds them."""

    def __init__(self, tmp: Path, start: datetime = NINE, fleet: Fleet | None = None,
                 kinds: set[str] | None = None) -> None:
        self.tmp = tmp
        self.rules = [r for r in DEFAULT_RULES if kinds is None or r.kind in kinds]
        self.clock = ManualClock(start)
        self.fleet = fleet or load_fleet(FLEET)
        self.store = Store(tmp / "ground.db")
        self.state = LiveState()
        self.notes = Recorder()
        self.engine = self._engine()
        self.online()

    def _engine(self) -> AlertEngine:
        return AlertEngine(self.rules, AlertStorage(self.tmp / "ground.db"), self.state,
                           self.fleet, self.clock, self.notes)

    def restart(self) -> None:
        """A new process: the store reopened, state rebuilt from it, a new engine."""
        self.store.close()
        self.store = Store(self.tmp / "ground.db")
        self.state = LiveState()
        for message, received in self.store.history(self.clock.now() - timedelta(days=1)):
            self.state.apply(message, received)
        self.engine = self._engine()

    def ingest(self, *messages: contract.Position | contract.Reading | contract.Status,
               evaluate: bool = True) -> list[Alert]:
        now = self.clock.now()
        known = self.store.known(list(messages))
        fresh = [(m, now) for m in messages if m.id not in known]
        self.store.record(fresh)
        for m, at in fresh:
            self.state.apply(m, at)
        return self.engine.evaluate({VEHICLE}) if evaluate else []

    def at(self, minutes: float) -> datetime:
        """Set the clock to NINE + minutes."""
        self.clock.set(NINE + timedelta(minutes=minutes))
        return self.clock.now()

    def online(self) -> None:
        self.ingest(contract.Status(vehicle=VEHICLE, ts=self.clock.now(), state="online"),
                    evaluate=False)

    def offline(self) -> None:
        self.ingest(contract.Status(vehicle=VEHICLE, ts=self.clock.now(), state="offline"),
                    evaluate=False)

    def reading(self, sensor: str, ts: datetime | None = None,
                codes: list[str] | None = None, **values: float | None) -> contract.Reading:
        return contract.Reading(
            vehicle=VEHICLE, ts=ts or self.clock.now(), sensor=sensor, values=values,
            flags={q: "out_of_range" for q, v in values.items() if v is None},  # type: ignore[misc]
            codes=codes)

    def fridge(self, temp: float | None, minutes: float | None = None) -> list[Alert]:
        """The bus reports the fridge at NINE + minutes (the clock moves there)."""
        if minutes is not None:
            self.at(minutes)
        return self.ingest(self.reading("fridge", temp_c=temp))

    def tick(self, minutes: float) -> list[Alert]:
        """Time passes with nothing new (the ~30 s timer)."""
        self.at(minutes)
        return self.engine.evaluate()

    def alerts(self, rule: str = "fridge_temp") -> list[Alert]:
        return [a for a in self.engine.history(VEHICLE, NINE - timedelta(days=2))
                if a.rule == rule][::-1]


@pytest.fixture
def ground(tmp_path: Path) -> Ground:
    """The sensor rules alone: these tests let the bus fall silent for a while, which
    the offline rule would (rightly) report too; it has tests of its own below."""
    return Ground(tmp_path, kinds={"threshold", "new_code"})


@pytest.fixture
def fleet_ground(tmp_path: Path) -> Ground:
    """All the default rules."""
    return Ground(tmp_path)


def test_fridge_opens_after_ten_minutes_out_of_range_and_closes_inside_the_inner_band(
        ground: Ground) -> None:
    ground.fridge(4.0, 0)
    ground.fridge(8.6, 1)  # out of range from 09:01
    assert ground.tick(10.9) == []  # 9 min 54 s: not yet
    [opened] = ground.tick(11.5)
    assert opened.opened_at == NINE + timedelta(minutes=11)  # when 10 min had passed
    assert (opened.value_at_open, opened.title_fr, opened.severity, opened.unit) == (
        8.6, "réfrigérateur hors plage", "critical", "°C")
    assert ground.engine.open_alerts(VEHICLE) == [opened]

    ground.fridge(7.8, 20)  # back inside 2-8 but not yet inside 2.5-7.5: still open
    assert ground.tick(40) == []
    ground.fridge(7.0, 41)
    assert ground.tick(45.5) == []  # inside for 4.5 min
    [closed] = ground.tick(46.5)
    assert closed.id == opened.id
    assert closed.closed_at == NINE + timedelta(minutes=46)
    assert closed.last_value == 7.0
    assert ground.engine.open_alerts() == []
    assert ground.notes.events == [("opened", opened.id), ("closed", opened.id)]


def test_acknowledge_keeps_who_and_when(ground: Ground) -> None:
    ground.fridge(1.0, 0)
    [opened] = ground.tick(10)
    ground.at(12)
    acked = ground.engine.acknowledge(opened.id, "Marie Dupont")
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("Marie Dupont", ground.at(12))
    ground.at(13)
    again = ground.engine.acknowledge(opened.id, "Paul Martin")  # the first answer stays
    assert (again.acknowledged_by, again.acknowledged_at) == ("Marie Dupont", ground.at(12))
    assert ground.engine.get(opened.id).acknowledged_by == "Marie Dupont"
    assert ground.notes.events == [("opened", opened.id), ("acknowledged", opened.id)]
    assert ground.engine.get(opened.id).is_open  # acknowledged is not closed
    with pytest.raises(KeyError):
        ground.engine.acknowledge(999, "Marie Dupont")
    with pytest.raises(KeyError):
        ground.engine.get(999)


def test_flapping_around_the_thresholds_opens_exactly_one_alert(ground: Ground) -> None:
    # An hour hovering at the edge of the band, a minute each side: never 10 min out.
    for m in range(60):
        ground.fridge(8.1 if m % 2 else 7.9, m)
    assert ground.alerts() == []
    # Then really out of range...
    for m in range(60, 75):
        ground.fridge(9.0, m)
    # ...then hovering across the clear band and the trigger for an hour: one episode.
    for m in range(75, 135):
        ground.fridge((7.6, 7.4, 8.2, 7.3)[m % 4], m)
    for m in range(135, 150):
        ground.fridge(5.0, m)
    [alert] = ground.alerts()
    assert alert.opened_at == NINE + timedelta(minutes=69)  # out since 8.1 °C at 09:59
    assert alert.closed_at == NINE + timedelta(minutes=140)
    assert [e for e, _ in ground.notes.events] == ["opened", "closed"]


def test_a_value_holding_out_of_range_opens_without_new_readings(ground: Ground) -> None:
    """The bus reports on change: a fridge stuck at 9 °C sends nothing new for a while."""
    ground.fridge(9.0, 0)
    assert ground.tick(9) == []
    [opened] = ground.tick(10)
    assert opened.opened_at == NINE + timedelta(minutes=10)


def test_nothing_is_assumed_past_the_last_reading_of_a_bus_gone_offline(
        ground: Ground) -> None:
    ground.fridge(9.0, 0)
    ground.at(2)
    ground.offline()
    assert ground.tick(30) == []


def test_flagged_readings_neither_breach_nor_clear(ground: Ground) -> None:
    ground.fridge(9.0, 0)
    ground.fridge(None, 5)  # a CRC failure: no information
    [opened] = ground.tick(10)
    ground.fridge(None, 11)
    assert ground.tick(30) == []
    assert ground.engine.get(opened.id).is_open


def test_a_backlog_drained_after_live_data_gives_its_one_episode(ground: Ground) -> None:
    """Live readings go out ahead of the backlog: the excursion arrives after later data."""
    ground.fridge(4.0, 60)  # live, at 10:00
    assert ground.alerts() == []
    backlog = [ground.reading("fridge", ts=NINE + timedelta(minutes=m),
                              temp_c=9.5 if 10 <= m < 30 else 4.2) for m in range(0, 60, 2)]
    ground.ingest(*backlog[:8])  # in two batches, split inside the excursion
    ground.ingest(*backlog[8:])
    ground.tick(61)
    [alert] = ground.alerts()
    assert alert.opened_at == NINE + timedelta(minutes=20)
    assert alert.closed_at == NINE + timedelta(minutes=35)
    assert alert.value_at_open == 9.5 and alert.last_value == 4.2
    # Opened and closed are both told, even though both lie in the past.
    assert [e for e, _ in ground.notes.events] == ["opened", "closed"]
    for m in range(62, 70):  # and nothing more comes of it
        ground.tick(m)
    ground.ingest(*backlog)  # delivered twice: stored once, no second episode
    assert len(ground.alerts()) == 1


def test_a_backlog_alone_after_restart_is_judged(tmp_path: Path) -> None:
    ground = Ground(tmp_path, kinds={"threshold"})
    ground.fridge(4.0, 0)
    backlog = [ground.reading("fridge", ts=NINE + timedelta(minutes=m), temp_c=1.0)
               for m in range(1, 20)]
    ground.ingest(*backlog, evaluate=False)  # stored, then the ground died before judging
    ground.at(21)
    ground.restart()
    [alert] = ground.engine.evaluate()
    assert alert.opened_at == NINE + timedelta(minutes=11)


def test_a_restart_keeps_open_alerts_and_does_not_open_them_again(tmp_path: Path) -> None:
    ground = Ground(tmp_path, kinds={"threshold"})
    ground.fridge(9.0, 0)
    [opened] = ground.tick(10)
    ground.engine.acknowledge(opened.id, "Marie Dupont")
    ground.restart()
    ground.online()
    assert [a.id for a in ground.engine.open_alerts(VEHICLE)] == [opened.id]
    for m in range(11, 30):
        ground.fridge(9.2, m)
    assert [a.id for a in ground.alerts()] == [opened.id]
    for m in range(30, 36):
        ground.fridge(5.0, m)
    [closed] = ground.alerts()
    assert closed.closed_at == NINE + timedelta(minutes=35)
    assert closed.acknowledged_by == "Marie Dupont"


def test_alerts_and_ingest_write_the_ground_database_at_once(ground: Ground) -> None:
    """The alerts' storage has its own connection to the store's file: while ingest
    commits batch after batch, judging and acknowledging wait their turn, never fail."""
    ground.fridge(9.0, 0)
    [opened] = ground.tick(10)
    batches = [[(ground.reading("battery", ts=NINE + timedelta(seconds=i), soc_pct=80.0),
                 ground.clock.now())] for i in range(200)]
    failures: list[BaseException] = []

    def ingest() -> None:
        try:
            for batch in batches:
                ground.store.record(batch)  # type: ignore[arg-type]
        except BaseException as e:  # reported by the assertion below
            failures.append(e)

    writer = threading.Thread(target=ingest)
    writer.start()
    while writer.is_alive():
        ground.engine.evaluate({VEHICLE})
        ground.engine.acknowledge(opened.id, "Marie Dupont")
    writer.join()
    assert failures == []
    assert ground.store.count("readings") == 201
    assert ground.engine.get(opened.id).acknowledged_by == "Marie Dupont"
    assert [a.id for a in ground.engine.open_alerts(VEHICLE)] == [opened.id]


def test_house_battery_below_30_clears_above_35(ground: Ground) -> None:
    ground.ingest(ground.reading("battery", soc_pct=31.0, voltage_v=12.6))
    ground.at(1)
    ground.ingest(ground.reading("battery", soc_pct=29.5))
    [opened] = ground.tick(2)
    assert (opened.rule, opened.title_fr, opened.unit) == (
        "house_battery_soc", "batterie cellule faible", "%")
    ground.at(10)
    ground.ingest(ground.reading("battery", soc_pct=33.0))  # above 30, not above 35
    assert ground.tick(30) == []
    ground.at(31)
    ground.ingest(ground.reading("battery", soc_pct=36.0))
    [closed] = ground.tick(32)
    assert closed.id == opened.id and closed.closed_at == NINE + timedelta(minutes=32)


def test_coolant_above_105_for_a_minute(ground: Ground) -> None:
    ground.ingest(ground.reading("engine", coolant_c=106.0))
    ground.at(0.5)
    ground.ingest(ground.reading("engine", coolant_c=104.0))  # a spike: half a minute
    ground.at(2)
    ground.ingest(ground.reading("engine", coolant_c=107.0))
    assert ground.tick(2.9) == []
    [opened] = ground.tick(3)
    assert opened.rule == "coolant_temp" and opened.severity == "critical"
    ground.at(4)
    ground.ingest(ground.reading("engine", coolant_c=102.0))  # below 105, not below 100
    assert ground.tick(10) == []
    ground.at(11)
    ground.ingest(ground.reading("engine", coolant_c=95.0))
    [closed] = ground.tick(12)
    assert closed.closed_at == NINE + timedelta(minutes=12)


def test_one_alert_per_new_trouble_code(ground: Ground) -> None:
    [p0301] = ground.ingest(ground.reading("engine", codes=["P0301"], rpm=800.0))
    assert (p0301.rule, p0301.key, p0301.title_fr) == (
        "trouble_code", "engine:P0301", "nouveau code défaut P0301")
    ground.at(1)
    assert ground.ingest(ground.reading("engine", codes=["P0301"], rpm=800.0)) == []
    ground.at(2)
    [p0420] = ground.ingest(ground.reading("engine", codes=["P0420", "P0301"], rpm=800.0))
    assert p0420.key == "engine:P0420"
    # A late report from before P0420 appeared must not close it.
    assert ground.ingest(ground.reading("engine", ts=NINE + timedelta(minutes=1.5),
                                        codes=["P0301"], rpm=800.0)) == []
    ground.at(3)
    assert ground.ingest(ground.reading("engine", rpm=800.0)) == []  # no codes field: no news
    closed = ground.ingest(ground.reading("engine", codes=[], rpm=800.0))
    assert sorted(a.key for a in closed) == ["engine:P0301", "engine:P0420"]
    assert all(a.closed_at == NINE + timedelta(minutes=3) for a in closed)
    ground.at(4)
    [again] = ground.ingest(ground.reading("engine", codes=["P0301"], rpm=800.0))
    assert again.id not in (p0301.id, p0420.id)  # a new episode of that code


def test_the_kiosks_printer_in_trouble_opens_an_alert(ground: Ground) -> None:
    """The kiosk reports its printer as a sensor with codes only (onboard/kiosk/app.py)."""
    [out] = ground.ingest(ground.reading("printer", codes=["no_paper"]))
    assert (out.rule, out.key) == ("trouble_code", "printer:no_paper")
    ground.at(5)
    [closed] = ground.ingest(ground.reading("printer", codes=[]))  # it printed again
    assert closed.id == out.id and closed.closed_at == NINE + timedelta(minutes=5)


def test_offline_ten_minutes_during_service_hours(fleet_ground: Ground) -> None:
    ground = fleet_ground
    ground.ingest(contract.Position(vehicle=VEHICLE, ts=ground.clock.now(), lat=48.38,
                                    lon=0.67, speed=0.0))
    ground.at(5)
    ground.offline()  # the Last Will at 09:05
    assert ground.tick(14.5) == []
    [opened] = ground.tick(15.5)
    assert (opened.rule, opened.opened_at, opened.unit) == (
        "offline", NINE + timedelta(minutes=15), "min")
    assert opened.value_at_open == 10.5
    assert ground.tick(20) == []  # one alert for the episode
    ground.at(30)
    ground.online()
    assert ground.tick(30) == []  # back, but for one minute before it counts
    [closed] = ground.tick(31)
    assert closed.id == opened.id and closed.closed_at == NINE + timedelta(minutes=30)


def test_a_stale_vehicle_counts_from_when_it_was_last_heard(fleet_ground: Ground) -> None:
    ground = fleet_ground
    ground.ingest(ground.reading("fridge", temp_c=4.0))  # heard at 09:00, then silence
    assert ground.tick(14) == []  # not stale before 15 min (the stale threshold)
    [opened] = ground.tick(16)
    assert opened.opened_at == NINE + timedelta(minutes=10)


def test_no_offline_alert_outside_service_hours(tmp_path: Path) -> None:
    evening = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 18:00 in Paris, after 17:30
    ground = Ground(tmp_path, start=evening)
    ground.offline()
    ground.clock.set(evening + timedelta(hours=2))
    assert ground.engine.evaluate() == []
    sunday = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # no visits on Sundays
    ground.clock.set(sunday)
    assert ground.engine.evaluate() == []


def test_no_gps_fix_for_five_minutes_while_moving(fleet_ground: Ground) -> None:
    ground = fleet_ground
    ground.ingest(contract.Position(vehicle=VEHICLE, ts=NINE, lat=48.38, lon=0.67,
                                    speed=15.0))
    for m in range(1, 5):
        ground.at(m)
        ground.ingest(ground.reading("engine", speed_kmh=54.0, rpm=1800.0))
    ground.at(5.5)
    [opened] = ground.ingest(ground.reading("engine", speed_kmh=50.0, rpm=1700.0))
    assert (opened.rule, opened.opened_at) == ("no_gps", NINE + timedelta(minutes=5))
    ground.at(7)
    [closed] = ground.ingest(contract.Position(vehicle=VEHICLE, ts=ground.clock.now(),
                                               lat=48.39, lon=0.68, speed=14.0))
    assert closed.id == opened.id and closed.closed_at == ground.clock.now()


def test_no_gps_alert_for_a_bus_standing_still(fleet_ground: Ground) -> None:
    ground = fleet_ground
    # Driving when the last fix came, but the engine now says it stopped.
    ground.ingest(contract.Position(vehicle=VEHICLE, ts=NINE, lat=48.38, lon=0.67,
                                    speed=12.0))
    for m in range(1, 12):
        ground.at(m)
        ground.ingest(ground.reading("engine", speed_kmh=0.0, rpm=0.0))
    assert ground.alerts("no_gps") == []


def flood(ground: Ground, sensors: int = 200, per: int = 50, first: int = 0) -> list[Alert]:
    """`sensors` readings, each setting `per` codes of its own (a faulty adapter, a bus
    sending garbage), ingested ten to a batch; every alert the batches opened or closed."""
    readings = [ground.reading(f"obd{s:03d}", codes=[f"P{s:03d}{c:02d}" for c in range(per)],
                               rpm=800.0)
                for s in range(first, first + sensors)]  # fmt: skip
    told: list[Alert] = []
    for i in range(0, len(readings), 10):
        told += ground.ingest(*readings[i : i + 10])
    return told


def test_a_flood_of_trouble_codes_opens_one_alert_that_says_how_many(ground: Ground) -> None:
    [p0301] = ground.ingest(ground.reading("engine", codes=["P0301"], rpm=800.0))
    ground.at(1)
    told = flood(ground)
    many = [a for a in told if a.key == ""]
    assert len(many) == 1 and len(told) == 1  # not ten thousand
    opened = many[0]
    assert (opened.rule, opened.title_fr, opened.title_en, opened.unit) == (
        "trouble_code", "nombreux codes défaut", "many trouble codes", "codes")
    assert opened.value_at_open == 501  # the first batch: 10 readings of 50, and P0301
    assert opened.opened_at == NINE + timedelta(minutes=1)
    now_open = ground.engine.open_alerts(VEHICLE)
    assert [a.key for a in now_open] == ["engine:P0301", ""]  # the real code keeps its own
    assert now_open[1].last_value == 10_001  # every code set, counted once
    assert ground.notes.events == [("opened", p0301.id), ("opened", opened.id)]
    # The same flood reported again (a heartbeat): nothing new, and judging stays cheap.
    ground.at(2)
    assert flood(ground) == []
    started = time.perf_counter()
    for _ in range(100):
        ground.engine.evaluate()
    assert time.perf_counter() - started < 1.0
    # A real code cleared during the flood still closes.
    ground.at(3)
    [closed] = ground.ingest(ground.reading("engine", codes=[], rpm=800.0))
    assert closed.id == p0301.id and closed.closed_at == NINE + timedelta(minutes=3)


def test_codes_back_within_the_limit_close_the_flood_and_get_their_own_alerts(
        ground: Ground) -> None:
    flood(ground, sensors=3, per=5)  # 15 codes: past the limit
    [many] = ground.engine.open_alerts(VEHICLE)
    ground.at(1)
    told = ground.ingest(ground.reading("obd000", codes=[], rpm=800.0))  # 10 left: within
    [closed] = [a for a in told if a.id == many.id]
    assert closed.closed_at == NINE + timedelta(minutes=1) and closed.last_value == 10
    assert sorted(a.key for a in told if a.is_open) == [
        *(f"obd001:P001{c:02d}" for c in range(5)), *(f"obd002:P002{c:02d}" for c in range(5))]
    ground.at(2)
    told = ground.ingest(ground.reading("obd001", codes=["P00100", "P00100"], rpm=800.0))
    assert sorted(a.key for a in told) == [f"obd001:P001{c:02d}" for c in range(1, 5)]
    assert sorted(a.key for a in ground.engine.open_alerts(VEHICLE)) == [
        "obd001:P00100", *(f"obd002:P002{c:02d}" for c in range(5))]  # a repeated code: one


def test_a_restart_follows_the_code_alerts_on_record(tmp_path: Path) -> None:
    ground = Ground(tmp_path, kinds={"new_code"})
    ground.ingest(ground.reading("engine", codes=["P0301", "P0420"], rpm=800.0))
    ground.at(1)
    ground.restart()
    ground.online()
    # The same codes again: no second alert. One cleared: its alert closes.
    assert ground.ingest(ground.reading("engine", codes=["P0301", "P0420"], rpm=800.0)) == []
    ground.at(2)
    [closed] = ground.ingest(ground.reading("engine", codes=["P0301"], rpm=800.0))
    assert closed.key == "engine:P0420" and not closed.is_open
    assert [a.key for a in ground.engine.open_alerts(VEHICLE)] == ["engine:P0301"]
