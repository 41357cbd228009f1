"""Maintenance reminders on a real store and the real alert engine: items due by date, by
GPS distance, by the OBD odometer and by engine hours; "due soon" then "overdue" raised as
alerts; done recorded with who and when, which closes them and restarts the interval."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ground.alerts import DEFAULT_RULES, AlertEngine, AlertStorage
from ground.fleet import load_fleet
from ground.maintenance import MaintenanceBook, MaintenanceItem, Refused, _engine_hours
from ground.service import GroundService
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from medicobus.geo import offset
from tests.clocks import ManualClock
from tests.console import logged_in
from tests.harness import FLEET, VEHICLE
from tests.test_web_pages import PARIS, text_of

MONDAY_8AM = datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)


class Garage:
    """A ground's store, alert engine and maintenance book on one SQLite file."""

    def __init__(self, db: Path, items: list[MaintenanceItem],
                 at: datetime = MONDAY_8AM) -> None:  # fmt: skip
        self.clock = ManualClock(at)
        fleet = load_fleet(FLEET)
        self.store = Store(db, self.clock)
        self.book = MaintenanceBook(items, fleet, self.store, db, self.clock)
        self.alerts = AlertEngine(DEFAULT_RULES, AlertStorage(db), LiveState(), fleet,
                                  self.clock, maintenance=self.book.due)  # fmt: skip

    def open(self) -> dict[str, str]:
        """The open alerts: rule -> title."""
        self.alerts.evaluate({VEHICLE})
        return {a.rule: a.title_fr for a in self.alerts.open_alerts(VEHICLE)
                if a.rule.startswith("maintenance")}

    def drive(self, km: float, start: tuple[float, float] = (48.38, 0.68)) -> tuple[float, float]:
        """A drive due east, a fix every 500 m at 15 m/s; where it ends."""
        lat, lon = start
        for _ in range(round(km * 2)):
            lat, lon = offset(lat, lon, 0.0, 500.0)
            self.clock.advance(33)
            self.store.record([(contract.Position(vehicle=VEHICLE, ts=self.clock.now(), lat=lat,
                                                  lon=lon, speed=15.0), self.clock.now())])
        return lat, lon

    def engine(self, values: dict[str, float]) -> None:
        self.store.record([(contract.Reading(vehicle=VEHICLE, ts=self.clock.now(),
                                             sensor="engine", values=values),
                            self.clock.now())])  # fmt: skip


def test_an_item_due_by_date_warns_then_is_overdue_then_done(tmp_path: Path) -> None:
    test = MaintenanceItem(id="controle-technique", name_fr="contrôle technique",
                           name_en="roadworthiness test", every_days=365,
                           last_done=date(2025, 12, 10))  # fmt: skip
    garage = Garage(tmp_path / "ground.db", [test])
    assert garage.open() == {"maintenance_soon": "entretien à prévoir : contrôle technique "
                                                 "(dans 17 jours)"}  # fmt: skip
    garage.clock.advance(18 * 86400)  # 11 December 2026: a year and a day
    assert garage.open() == {"maintenance_overdue": "entretien en retard : contrôle technique "
                                                    "(en retard de 1 jours)"}  # fmt: skip
    (overdue,) = garage.alerts.open_alerts(VEHICLE)
    assert overdue.severity == "critical"
    garage.book.record_done(VEHICLE, "controle-technique", date(2026, 12, 11), None, "claire",
                            "Dekra Mortagne")  # fmt: skip
    assert garage.open() == {}
    (due,) = garage.book.due(VEHICLE)
    assert (due.state, due.days, due.last.who) == ("ok", 0, "claire")  # type: ignore[union-attr]
    assert garage.book.history(VEHICLE, "controle-technique")[0].note == "Dekra Mortagne"


def test_distance_by_gps_then_by_the_odometer_and_engine_hours(tmp_path: Path) -> None:
    oil = MaintenanceItem(id="vidange", name_fr="vidange", name_en="oil change", every_km=30,
                          soon_km=5, last_done=date(2026, 11, 22))  # fmt: skip
    garage = Garage(tmp_path / "ground.db", [oil])
    end = garage.drive(20)
    (due,) = garage.book.due(VEHICLE)
    assert due.state == "ok" and due.km == pytest.approx(19.5, abs=0.6)  # fix to fix
    garage.clock.advance(60)  # a minute on: worked out again
    garage.drive(7, end)
    assert "dans 4 km" in garage.open()["maintenance_soon"]
    # Done at the garage, its odometer noted: from now on the bus's own count decides.
    garage.book.record_done(VEHICLE, "vidange", garage.clock.now().date(), 123_400, "claire")
    garage.engine({"odometer_km": 123_431.0, "rpm": 800})
    garage.clock.advance(60)
    assert garage.open() == {"maintenance_overdue": "entretien en retard : vidange (en retard "
                                                    "de 1 km)"}  # fmt: skip


def test_engine_hours_count_the_time_the_engine_turned() -> None:
    t0 = datetime(2026, 10, 25, 1, 0, tzinfo=PARIS)  # across the clock change, in UTC inside
    samples: list[tuple[datetime, float | None]] = [
        (t0 + timedelta(minutes=m), 900.0) for m in range(0, 180)]  # three hours, each minute
    samples += [(t0 + timedelta(hours=3), 0.0), (t0 + timedelta(hours=5), 750.0)]
    hours = _engine_hours(samples, t0, t0 + timedelta(hours=6))
    assert hours == pytest.approx(3 + 2 / 60)  # the lone sample stands two minutes, no more


def test_what_cannot_be_kept_is_refused(tmp_path: Path) -> None:
    item = MaintenanceItem(id="extincteur", name_fr="extincteur", name_en="extinguisher",
                           every_days=365)  # fmt: skip
    garage = Garage(tmp_path / "ground.db", [item])
    (due,) = garage.book.due(VEHICLE)
    assert due.state == "unknown" and due.left_fr() == "date du dernier entretien à renseigner"
    assert garage.open() == {}  # nothing to say until the last time is known
    with pytest.raises(Refused, match="futur"):
        garage.book.record_done(VEHICLE, "extincteur", date(2026, 11, 24), None, "claire")
    with pytest.raises(Refused, match="inconnu"):
        garage.book.record_done(VEHICLE, "pneus", date(2026, 11, 20), None, "claire")
    with pytest.raises(Refused, match="kilométrage"):
        garage.book.record_done(VEHICLE, "extincteur", date(2026, 11, 20), -5, "claire")
    assert garage.book.history(VEHICLE, "extincteur") == []
    garage.book.record_done(VEHICLE, "extincteur", date(2025, 12, 1), None, "claire")
    assert garage.book.due(VEHICLE)[0].state == "soon"  # 357 days: within 30 of a year


def test_the_fleet_manager_keeps_the_record_in_the_dashboard(
        console_service: GroundService) -> None:  # fmt: skip
    g = console_service
    client, csrf = logged_in(g, "claire")
    page = client.get(f"/fleet/vehicles/{VEHICLE}").text
    section = text_of(page[page.index('id="maintenance"'):page.index('class="export"')])
    assert section.count("à renseigner") == 4 and "contrôle technique" in section
    base = f"/fleet/vehicles/{VEHICLE}/maintenance"

    def done(item: str, **fields: str) -> httpx.Response:
        return client.post(f"{base}/{item}/done", data={"csrf": csrf, **fields})

    r = done("controle-technique", on="2025-12-10", odometer_km="118 250", note="Dekra")
    assert r.status_code == 303 and r.headers["location"].endswith("#maintenance")
    row = _row(client.get(f"/fleet/vehicles/{VEHICLE}").text, "controle-technique")
    assert "à prévoir" in row and "dans 17 jours" in row and "par claire, à 118" in row
    assert [a.rule for a in g.alerts.open_alerts(VEHICLE)] == ["maintenance_soon"]
    assert done("controle-technique", on="2026-11-23").status_code == 303
    assert "à jour" in _row(client.get(f"/fleet/vehicles/{VEHICLE}").text, "controle-technique")
    assert g.alerts.open_alerts(VEHICLE) == []  # closed at once, not at the next timer
    r = client.post(f"{base}/vidange/interval", data={"csrf": csrf, "every_km": "10000",
                                                       "every_days": "365"})  # fmt: skip
    assert r.status_code == 303
    assert "tous les 10 000 km ou 365 jours" in _row(
        client.get(f"/fleet/vehicles/{VEHICLE}").text, "vidange").replace("\u202f", " ")
    # What cannot be kept is said, and nothing of it is.
    for response, said in ((done("extincteur", on="demain"), "date invalide"),
                           (done("extincteur", on="2026-11-20", odometer_km="beaucoup"),
                            "nombre attendu"),
                           (done("extincteur", on="2026-12-25"), "dans le futur"),
                           (client.post(f"{base}/vidange/interval", data={"csrf": csrf}),
                            "au moins un intervalle"),
                           (client.post(f"{base}/vidange/interval", data={
                               "csrf": csrf, "every_km": "-3"}), "valeur invalide")):  # fmt: skip
        assert response.status_code == 422 and said in response.text
    assert g.maintenance.history(VEHICLE, "extincteur") == []
    for name in ("paul", "marie"):  # read only, coordination: may read, not record
        other, token = logged_in(g, name)
        assert "Fait le" not in other.get(f"/fleet/vehicles/{VEHICLE}").text
        r = other.post(f"{base}/extincteur/done", data={"csrf": token, "on": "2026-11-20"})
        assert r.status_code == 403
    assert done("extincteur", on="2026-11-20", csrf="forged").status_code == 403
    assert g.maintenance.history(VEHICLE, "extincteur") == []


def _row(html: str, item: str) -> str:
    start = html.index(f'id="maintenance-{item}"')
    return text_of(html[start:html.index("</tr>", start)])
