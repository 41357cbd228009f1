"""The accuracy record on the fleet dashboard: the ETAs the ground published, scored against
the arrivals the buses reported, by horizon for the fleet, per vehicle, per stop and per
week, on a page every role reads and as CSV; through the real ground service."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import httpx

from ground.accuracy import Prediction
from ground.service import GroundService
from medicobus import contract
from tests.console import logged_in, url
from tests.harness import VEHICLE
from tests.test_web_pages import PARIS, text_of

NOCE = "2026-11-23/noce/am"


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 11, 23, hh, mm, tzinfo=PARIS)


def row(html: str, bucket: str) -> list[str]:
    """The first table row of a horizon bucket, as its cells' texts."""
    m = re.search(rf'<tr[^>]*data-bucket="{bucket}">(.*?)</tr>', html, flags=re.S)
    assert m, f"no {bucket} row"
    return [text_of(c) for c in re.findall(r"<td>(.*?)</td>", m.group(1), flags=re.S)]


def test_the_record_scored_on_the_dashboard_and_as_csv(console_service: GroundService) -> None:
    g = console_service
    # Announced at 08:20 for 08:30, at 08:28 for 08:31; the bus came at 08:33.
    g.eta_record.note([Prediction(at(8, 20), NOCE, at(8, 30), VEHICLE, "noce")])
    g.eta_record.note([Prediction(at(8, 28), NOCE, at(8, 31), VEHICLE, "noce")])
    g.store.record([(contract.VisitEvent(vehicle=VEHICLE, ts=at(8, 33), event="arrival",
                                         visit=NOCE, stop="noce", lat=48.3838, lon=0.6783),
                     at(8, 33))])  # fmt: skip
    client, _ = logged_in(g, "paul")  # read only: reading the record is allowed
    page = client.get("/fleet/precision", params={"from": "2026-11-23", "to": "2026-11-23"})
    assert page.status_code == 200
    html = page.text
    assert "2 annonces" in text_of(html)
    # 13 min ahead, 3 min early: inside the 10–15 min window (−1.5 / +4.5); 5 min ahead,
    # 2 min early: inside the 3–6 min window (−1 / +2.5).
    assert row(html, "10–20 min") == ["10–20 min", "1", "3,0 min", "3,0 min", "+3,0 min", "100 %"]
    assert row(html, "5–10 min") == ["5–10 min", "1", "2,0 min", "2,0 min", "+2,0 min", "100 %"]
    assert row(html, "all") == ["toutes", "2", "2,5 min", "3,0 min", "+2,5 min", "100 %"]
    assert row(html, "0–5 min")[1:3] == ["0", "—"]
    for said in ("Médicobus du Perche", "Nocé", "2026-W48"):
        assert f"<summary>{said}</summary>" in html
    assert 'href="/fleet/precision"' in client.get("/fleet/").text  # the way in
    exported = client.get("/fleet/precision.csv", params={"from": "2026-11-23",
                                                          "to": "2026-11-23"})  # fmt: skip
    assert exported.headers["content-disposition"].endswith(
        'filename="precision-eta-2026-11-23_2026-11-23.csv"')
    lines = list(csv.reader(io.StringIO(exported.text)))
    assert [(r[3], r[4], r[5], r[7], r[8]) for r in lines[1:]] == [
        ("2026-11-23T08:20:00+01:00", "2026-11-23T08:30:00+01:00", "2026-11-23T08:33:00+01:00",
         "3.0", "oui"),
        ("2026-11-23T08:28:00+01:00", "2026-11-23T08:31:00+01:00", "2026-11-23T08:33:00+01:00",
         "2.0", "oui")]


def test_an_empty_or_odd_period_is_said(console_service: GroundService) -> None:
    client, _ = logged_in(console_service, "claire")
    default = client.get("/fleet/precision").text
    assert "Du 27/10/2026 au 23/11/2026" in default  # the last four weeks
    assert 'id="no-record"' in default
    backwards = client.get("/fleet/precision", params={"from": "2026-11-23",
                                                       "to": "2026-11-01"})  # fmt: skip
    assert backwards.status_code == 422 and "doit précéder" in backwards.text
    assert client.get("/fleet/precision.csv", params={"from": "2026-11-23",
                                                      "to": "2026-11-01"}).status_code == 422
    anonymous = httpx.get(f"{url(console_service)}/fleet/precision", follow_redirects=False)
    assert anonymous.status_code == 303
