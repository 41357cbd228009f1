"""The funders' reports in the fleet dashboard: the real ground service's app under a real
uvicorn, logged in as a fleet manager (who may download them) and as a read-only account
(who may not); what is downloaded read back by openpyxl, pdftotext and csv."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from ground.alerts.rules import MaintenanceItem, MaintenanceRule
from ground.fleet import load_fleet
from ground.reports.tables import report_tables
from ground.service import GroundService, GroundSettings
from ground.web.auth import AuthSettings, User
from ground.web.server import HttpSettings
from medicobus.brokers import free_port
from tests.clocks import ManualClock
from tests.harness import FLEET
from tests.simulated_month import PARIS, Month
from tests.test_fleet_pages import HASHES, OTHER, OTHER_PASSWORD, PASSWORD, USER, login
from tests.test_web_pages import LiveServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Month]]:
    """October 2026 in the ground's database, its dashboard served; 5 November today."""
    tmp = tmp_path_factory.mktemp("ground")
    month = Month(tmp, "2026-10", load_fleet(FLEET))
    users = AuthSettings(session_secret="s3cret-for-tests-only-0123456789", users=[
        User(name=USER, password_hash=HASHES[USER], role="fleet"),
        User(name=OTHER, password_hash=HASHES[OTHER], role="readonly")])  # fmt: skip
    service = GroundService(GroundSettings(fleet=FLEET, database=tmp / "ground.db",
                                           dashboard=users, http=HttpSettings(port=free_port())),
                            ManualClock(datetime(2026, 11, 5, 10, 0, tzinfo=PARIS)))
    with LiveServer(service.app) as server:
        yield server.url, month
    for part in (service.alerts, service.tournee, service.store, month):  # never started
        part.close()


@pytest.fixture
def manager(dashboard: tuple[str, Month]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard[0], timeout=30) as client:
        login(client, USER, PASSWORD)  # type: ignore[arg-type]
        yield client


def test_a_fleet_manager_downloads_a_months_report(dashboard: tuple[str, Month],
                                                   manager: httpx.Client) -> None:
    _, month = dashboard
    assert 'href="/fleet/reports"' in manager.get("/fleet/").text
    page = manager.get("/fleet/reports").text
    link = "/fleet/reports/download?month=2026-10&amp;format=xlsx"
    assert link in page and "11/2026 (en cours" in page
    r = manager.get(link.replace("&amp;", "&"))
    assert r.status_code == 200
    assert r.headers["content-disposition"] == (
        'attachment; filename="rapport-activite-2026-10.xlsx"')
    book = load_workbook(io.BytesIO(r.content))
    for table in report_tables(month.report):
        rows = list(book[table.name].iter_rows(values_only=True))[1:]
        assert [[c for c in read if isinstance(c, int | float)] for read in rows] == [
            [c for c in row if isinstance(c, int | float)] for row in table.rows]
    pdf = manager.get("/fleet/reports/download", params={"month": "2026-10"})
    assert pdf.headers["content-type"] == "application/pdf"
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, check=True,
                          capture_output=True).stdout.decode()
    assert "Rapport d'activité — octobre 2026" in text


def test_a_range_as_csv(manager: httpx.Client) -> None:
    r = manager.get("/fleet/reports/download",
                    params={"from": "2026-10-05", "to": "2026-10-18", "format": "csv"})
    assert r.status_code == 200
    assert 'filename="rapport-activite-2026-10-05_2026-10-18.zip"' in r.headers[
        "content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert names == ["communes.csv", "vehicules.csv", "annulations.csv", "excursions.csv"]


@pytest.mark.parametrize("params", [
    {"month": "2026-13"}, {"month": "2026-10", "format": "docx"}, {"from": "2026-10-05"},
    {"from": "2026-10-18", "to": "2026-10-05"}, {"from": "2025-01-01", "to": "2026-10-05"},
])  # fmt: skip
def test_a_wrong_request_is_refused_clearly(manager: httpx.Client,
                                            params: dict[str, str]) -> None:
    r = manager.get("/fleet/reports/download", params=params)
    assert r.status_code == 422 and "Période ou format invalide" in r.text


def test_only_the_fleet_role_downloads(dashboard: tuple[str, Month]) -> None:
    with httpx.Client(base_url=dashboard[0], timeout=30) as reader:
        assert reader.get("/fleet/reports", follow_redirects=False).status_code in (302, 303)
        login(reader, OTHER, OTHER_PASSWORD)  # type: ignore[arg-type]
        assert 'href="/fleet/reports"' not in reader.get("/fleet/").text
        for path in ("/fleet/reports", "/fleet/reports/download?month=2026-10"):
            r = reader.get(path)
            assert r.status_code == 403 and "réservé à la gestion de flotte" in r.text


def test_a_vehicles_trips_and_stops_of_a_day(dashboard: tuple[str, Month],
                                             manager: httpx.Client) -> None:
    _, month = dashboard
    assert 'href="/fleet/vehicles/perche-1/trips"' in manager.get(
        "/fleet/vehicles/perche-1").text
    day = month.sim.truth.drives[0][1].astimezone(PARIS).date()
    drives = [d for d in month.sim.truth.drives if d[1].astimezone(PARIS).date() == day]
    page = manager.get("/fleet/vehicles/perche-1/trips", params={"day": day.isoformat()})
    assert page.status_code == 200
    trips_part = page.text.split('id="trajets"')[1].split('id="arrets"')[0]
    assert trips_part.count("<tr>") == 1 + len(drives)  # the heading row, one per drive
    for _, start, end, _ in drives:
        for moment in (start, end):
            assert moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") in trips_part
    r = manager.get("/fleet/vehicles/perche-1/trips.csv",
                    params={"from": day.isoformat(), "to": day.isoformat(), "table": "jours"})
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    (_, row) = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert row[:3] == ["perche-1", day.isoformat(), str(len(drives))]
    km = sum(metres for *_, metres in drives) / 1000
    assert float(row[4].replace(",", ".")) == pytest.approx(km, abs=0.01)
    bad = manager.get("/fleet/vehicles/perche-1/trips.csv", params={"table": "x"})
    assert bad.status_code == 422


def test_maintenance_recorded_in_the_dashboard(tmp_path: Path) -> None:
    """A fleet manager sees the oil change due soon and records it done: the reminder
    closes; a read-only account sees the item but may not record it."""
    rule = MaintenanceRule(id="maintenance", title_fr="entretien", title_en="maintenance",
                           items=[MaintenanceItem(id="ct", title_fr="Contrôle technique",
                                                  title_en="Roadworthiness test",
                                                  every_days=365)])
    users = AuthSettings(session_secret="s3cret-for-tests-only-0123456789", users=[
        User(name=USER, password_hash=HASHES[USER], role="fleet"),
        User(name=OTHER, password_hash=HASHES[OTHER], role="readonly")])  # fmt: skip
    clock = ManualClock(datetime(2025, 12, 1, 10, 0, tzinfo=PARIS))
    service = GroundService(GroundSettings(fleet=FLEET, database=tmp_path / "ground.db",
                                           dashboard=users, alerts=[rule],
                                           http=HttpSettings(port=free_port())), clock)
    service.alerts.record_done("perche-1", "ct", "garage")
    clock.set(datetime(2026, 11, 10, 10, 0, tzinfo=PARIS))  # 21 days left
    service.alerts.evaluate()
    with LiveServer(service.app) as server, httpx.Client(base_url=server.url) as manager:
        login(manager, USER, PASSWORD)  # type: ignore[arg-type]
        page = manager.get("/fleet/vehicles/perche-1").text
        section = page.split('id="maintenance"')[1].split("</section>")[0]
        assert "Contrôle technique" in section and "bientôt dû" in section and "21 j" in section
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', section)
        assert csrf and [a.title_en for a in service.alerts.open_alerts()] == [
            "Maintenance due soon: Roadworthiness test"]
        r = manager.post("/fleet/vehicles/perche-1/maintenance/ct/done",
                         data={"csrf": csrf[1]}, headers={"Origin": server.url},
                         follow_redirects=False)
        assert r.status_code == 303, r.text
        assert service.alerts.open_alerts() == []
        section = manager.get("/fleet/vehicles/perche-1").text.split(
            'id="maintenance"')[1].split("</section>")[0]
        assert "à jour" in section and USER in section
        with httpx.Client(base_url=server.url) as reader:
            login(reader, OTHER, OTHER_PASSWORD)  # type: ignore[arg-type]
            html = reader.get("/fleet/vehicles/perche-1").text
            section = html.split('id="maintenance"')[1].split("</section>")[0]
            assert "Contrôle technique" in section and "Fait aujourd" not in section
            token = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
            assert token
            r = reader.post("/fleet/vehicles/perche-1/maintenance/ct/done",
                            data={"csrf": token[1]}, headers={"Origin": server.url})
            assert r.status_code == 403 and "réservé à la gestion de flotte" in r.text
    for part in (service.alerts, service.tournee, service.store):
        part.close()


def test_a_fleet_manager_adds_a_maintenance_item(tmp_path: Path) -> None:
    users = AuthSettings(session_secret="s3cret-for-tests-only-0123456789",
                         users=[User(name=USER, password_hash=HASHES[USER], role="fleet")])
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=PARIS))
    service = GroundService(GroundSettings(fleet=FLEET, database=tmp_path / "ground.db",
                                           dashboard=users,  # the default alert rules
                                           http=HttpSettings(port=free_port())), clock)
    with LiveServer(service.app) as server, httpx.Client(base_url=server.url) as manager:
        login(manager, USER, PASSWORD)  # type: ignore[arg-type]
        html = manager.get("/fleet/vehicles/perche-1").text
        assert "Aucun entretien suivi" in html
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
        assert token
        post = {"csrf": token[1], "id": "sonde", "title_fr": "Étalonnage de la sonde",
                "title_en": "Probe calibration", "every_days": "365", "every_km": ""}
        bad = manager.post("/fleet/vehicles/perche-1/maintenance", headers={
            "Origin": server.url}, data={**post, "every_days": ""})
        assert bad.status_code == 422 and "au moins un intervalle" in bad.text
        r = manager.post("/fleet/vehicles/perche-1/maintenance", data=post,
                         headers={"Origin": server.url}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert "Étalonnage de la sonde" in manager.get("/fleet/vehicles/perche-1").text
        r = manager.post("/fleet/vehicles/perche-1/maintenance/sonde/done",
                         data={"csrf": token[1]}, headers={"Origin": server.url},
                         follow_redirects=False)
        assert r.status_code == 303
    clock.set(datetime(2026, 12, 20, 10, 0, tzinfo=PARIS))  # 16 days left
    assert [a.title_fr for a in service.alerts.evaluate()] == [
        "Entretien à prévoir : Étalonnage de la sonde"]
    for part in (service.alerts, service.tournee, service.store):
        part.close()
