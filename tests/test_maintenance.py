"""Maintenance reminders through the real alert engine and notifier (a webhook to a real
HTTP server): by date, by the OBD odometer, by GPS distance when the engine gives no
odometer, by engine hours; "due soon" then "overdue" (the first closes), both closed when
the work is recorded as done, which restarts the interval; nothing twice after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ground.alerts import AlertEngine, AlertStorage
from ground.alerts.rules import MaintenanceItem, MaintenanceRule
from ground.fleet import load_fleet
from ground.notify import Notifier, NotifySettings
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from medicobus.brokers import free_port
from medicobus.geo import offset
from tests.clocks import ManualClock
from tests.harness import FLEET
from tests.receivers import Receiver
from tests.simulated_month import PARIS, with_second_bus

pytestmark = pytest.mark.timeout(60)

RULE = MaintenanceRule(id="maintenance", title_fr="entretien", title_en="maintenance", items=[
    MaintenanceItem(id="ct", title_fr="Contrôle technique", title_en="Roadworthiness test",
                    every_days=365),
    MaintenanceItem(id="vidange", title_fr="Vidange", title_en="Oil change", every_km=15000,
                    vehicles=["perche-1"]),
    MaintenanceItem(id="pneus", title_fr="Pneus", title_en="Tyres", every_km=40,
                    vehicles=["perche-2"]),
    MaintenanceItem(id="courroie", title_fr="Courroie", title_en="Belt", every_hours=250,
                    vehicles=["perche-1"]),
    MaintenanceItem(id="extincteur", title_fr="Extincteur", title_en="Extinguisher",
                    every_days=365),
    MaintenanceItem(id="filtre", title_fr="Filtre", title_en="Filter", every_hours=10,
                    vehicles=["perche-2"])])  # fmt: skip


class Garage:
    def __init__(self, tmp: Path, port: int, now: datetime) -> None:
        self.clock = ManualClock(now)
        self.where = (48.45, 0.55)
        self.store = Store(tmp / "ground.db", self.clock)
        self.notifier = Notifier(NotifySettings.model_validate({"webhooks": [{
            "url": f"http://127.0.0.1:{port}/hooks", "timeout_s": 2, "backoff_s": 0.1}]}))
        self.notifier.start()
        self.engine = AlertEngine([RULE], AlertStorage(tmp / "ground.db"), LiveState(),
                                  with_second_bus(load_fleet(FLEET)), self.clock, self.notifier)

    def engine_reading(self, vehicle: str = "perche-1", **values: float) -> None:
        r = contract.Reading(vehicle=vehicle, ts=self.clock.now(), sensor="engine",
                             values=values)
        self.store.record([(r, self.clock.now())])

    def drive(self, vehicle: str, km: float) -> None:
        """A straight drive of `km` at 60 km/h ending now, a fix every 30 s (500 m)."""
        steps = round(km * 2)
        start = self.clock.now() - timedelta(seconds=30 * steps)
        lat, lon = self.where  # on from where the last drive ended
        self.store.record([(contract.Position(vehicle=vehicle, ts=start + timedelta(seconds=30 * i),
                                              lat=offset(lat, lon, 500 * i, 0)[0], lon=lon,
                                              speed=16.7), self.clock.now())
                           for i in range(steps + 1)])  # fmt: skip
        self.where = (offset(lat, lon, 500 * steps, 0)[0], lon)

    def open(self) -> dict[str, str]:
        return {a.title_en: a.vehicle for a in self.engine.open_alerts()}

    def at(self, when: datetime) -> list[str]:
        self.clock.set(when)
        return sorted(a.title_en for a in self.engine.evaluate())

    def close(self) -> None:
        self.notifier.flush(10)
        self.notifier.stop()
        self.engine.close()
        self.store.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


def test_by_date_soon_then_overdue_then_done(tmp_path: Path, receiver: Receiver) -> None:
    port = receiver.server.server_address[1]
    garage = Garage(tmp_path, int(port), datetime(2026, 1, 10, 9, 0, tzinfo=PARIS))
    assert [d.state for d in garage.engine.maintenance("perche-1")] == ["unrecorded"] * 4
    garage.engine.record_done("perche-1", "ct", "marc")
    assert garage.at(datetime(2026, 11, 20, 9, 0, tzinfo=PARIS)) == []  # 314 days: ok
    assert garage.at(datetime(2026, 12, 10, 9, 0, tzinfo=PARIS)) == [
        "Maintenance due soon: Roadworthiness test"]  # 31 days left, within 10 %
    assert garage.at(datetime(2026, 12, 10, 9, 5, tzinfo=PARIS)) == []  # not twice
    assert sorted(garage.at(datetime(2027, 1, 11, 9, 0, tzinfo=PARIS))) == [
        "Maintenance due soon: Roadworthiness test",  # closed
        "Maintenance overdue: Roadworthiness test"]  # opened
    assert garage.open() == {"Maintenance overdue: Roadworthiness test": "perche-1"}
    (ct,) = [d for d in garage.engine.maintenance("perche-1") if d.item.id == "ct"]
    assert ct.state == "overdue" and ct.left == [(-1.0, "j")] and ct.done is not None
    (overdue,) = garage.engine.open_alerts()
    assert (overdue.value_at_open, overdue.unit) == (1.0, "j")  # a day past
    closed = garage.engine.record_done("perche-1", "ct", "claire")
    assert [a.title_en for a in closed] == ["Maintenance overdue: Roadworthiness test"]
    assert garage.open() == {}
    (ct,) = [d for d in garage.engine.maintenance("perche-1") if d.item.id == "ct"]
    assert (ct.state, ct.done.who if ct.done else None) == ("ok", "claire")
    garage.close()
    events = [(p["event"], p["alert"]["title_fr"]) for p in receiver.posts]
    assert events == [("opened", "Entretien à prévoir : Contrôle technique"),
                      ("closed", "Entretien à prévoir : Contrôle technique"),
                      ("opened", "Entretien dépassé : Contrôle technique"),
                      ("closed", "Entretien dépassé : Contrôle technique")]


def test_by_odometer_by_gps_and_by_engine_hours(tmp_path: Path, receiver: Receiver) -> None:
    garage = Garage(tmp_path, int(receiver.server.server_address[1]),
                    datetime(2026, 11, 2, 8, 0, tzinfo=PARIS))
    garage.engine_reading(odometer_km=100_000.0, engine_hours=1_000.0)
    for vehicle, item in (("perche-1", "vidange"), ("perche-1", "courroie"),
                          ("perche-2", "pneus")):
        garage.engine.record_done(vehicle, item, "marc")
    garage.clock.advance(3600)
    garage.engine_reading(odometer_km=113_600.0, engine_hours=1_240.0)
    garage.drive("perche-2", 37)
    assert garage.at(garage.clock.now()) == [
        "Maintenance due soon: Belt", "Maintenance due soon: Oil change",
        "Maintenance due soon: Tyres"]
    garage.clock.advance(3600)
    garage.engine_reading(odometer_km=115_100.0, engine_hours=1_245.0)
    garage.drive("perche-2", 4)
    overdue = garage.at(garage.clock.now())
    assert "Maintenance overdue: Oil change" in overdue
    assert "Maintenance overdue: Tyres" in overdue
    assert "Maintenance overdue: Belt" not in overdue  # 5 h left
    due = {d.item.id: d for d in garage.engine.maintenance("perche-2")}
    assert due["pneus"].left[0][0] == pytest.approx(-1.0, abs=0.05)
    # A restart: the same alerts are followed, none opened again.
    garage.close()
    again = Garage(tmp_path, int(receiver.server.server_address[1]), garage.clock.now())
    assert again.at(again.clock.now()) == []
    assert len(again.open()) == 3
    with pytest.raises(KeyError):
        again.engine.record_done("perche-2", "vidange", "marc")  # not perche-2's item
    again.close()


def test_engine_hours_from_rpm_when_there_is_no_hour_counter(tmp_path: Path,
                                                            receiver: Receiver) -> None:
    garage = Garage(tmp_path, int(receiver.server.server_address[1]),
                    datetime(2026, 11, 2, 6, 0, tzinfo=PARIS))
    garage.engine.record_done("perche-2", "filtre", "marc")

    def run(minutes: int, rpm: float) -> None:  # a reading a minute
        for _ in range(minutes):
            garage.engine_reading("perche-2", rpm=rpm)
            garage.clock.advance(60)

    run(9 * 60 + 31, 800.0)  # 9 h 30 min running (the last reading holds into the next)
    run(120, 0.0)  # two hours off: not counted
    assert garage.at(garage.clock.now()) == ["Maintenance due soon: Filter"]
    (due,) = [d for d in garage.engine.maintenance("perche-2") if d.item.id == "filtre"]
    assert due.left == [(0.5, "h")]
    run(45, 900.0)
    assert sorted(garage.at(garage.clock.now())) == [
        "Maintenance due soon: Filter", "Maintenance overdue: Filter"]
    garage.close()


def test_two_distance_items_done_on_other_days_each_keep_their_count(
        tmp_path: Path, receiver: Receiver) -> None:  # fmt: skip
    """The rule asks at every batch: a bus with an oil change and tyres done on other days
    must not read its year of positions again at each ask (each count goes on from where
    it got to)."""
    garage = Garage(tmp_path, int(receiver.server.server_address[1]),
                    datetime(2026, 11, 2, 8, 0, tzinfo=PARIS))
    storage = garage.engine.storage
    first, second = garage.clock.now(), garage.clock.now() + timedelta(hours=1)
    garage.clock.set(second + timedelta(hours=1))
    garage.drive("perche-2", 10)  # a drive after both
    assert storage.gps_km("perche-2", first) == pytest.approx(10, abs=0.1)
    assert storage.gps_km("perche-2", second) == pytest.approx(10, abs=0.1)
    # Were either count read again from the start, it would find these rows gone.
    garage.store.db.execute("DELETE FROM positions")
    assert storage.gps_km("perche-2", first) == pytest.approx(10, abs=0.1)
    assert storage.gps_km("perche-2", second) == pytest.approx(10, abs=0.1)
    garage.close()
