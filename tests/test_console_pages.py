"""The coordinator's console pages through the real ground service (Mosquitto, uvicorn,
SQLite): the week, the month, the recurring entries and the history, read by every role;
the forms only for the coordination; a form's change made, said, and undone; a refused one
coming back at its field, in French, with what was typed, and nothing kept."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from ground.fleet import load_fleet, visits_on
from ground.service import GroundService
from tests.brokers import Mosquitto
from tests.console import VISIT, console_ground, logged_in, url
from tests.test_example_fleets import FLEETS

FORM = 'action="/fleet/tournee/changes"'
WEEK = "/fleet/tournee?semaine=2026-W48"  # Monday 23 to Sunday 29 November 2026
PAGES = (WEEK, "/fleet/tournee/mois?mois=2026-12", "/fleet/tournee/regulieres",
         "/fleet/tournee/historique")  # fmt: skip


def post(client: httpx.Client, csrf: str, back: str, form: str, **fields: str) -> httpx.Response:
    return client.post("/fleet/tournee/changes", data={
        "csrf": csrf, "back": back, "form": form, **fields})


def visit_item(html: str, visit: str) -> str:
    """What the week page says of one visit (before its forms)."""
    start = html.index(f'data-visit="{visit}"')
    return html[start:min(i for i in (html.find("<details", start), html.find("</li>", start))
                          if i != -1)]


def test_every_role_reads_only_the_coordination_changes(console_service: GroundService) -> None:
    for name, forms in (("marie", True), ("claire", False), ("paul", False)):
        client, _ = logged_in(console_service, name)
        for path in PAGES:
            r = client.get(path)
            assert r.status_code == 200, (name, path)
            assert (FORM in r.text) == (forms and ("W48" in path or "regulieres" in path)), path
            assert "Lecture seule" in r.text or forms
        assert 'href="/fleet/tournee"' in client.get("/fleet/").text  # the way in
    anonymous = httpx.get(f"{url(console_service)}/fleet/tournee", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/fleet/login?next=/fleet/tournee")


def test_the_week_and_the_month_show_the_fortnightly_thursdays(
        console_service: GroundService) -> None:  # fmt: skip
    client, _ = logged_in(console_service, "paul")
    week = client.get(WEEK).text
    assert "Semaine 48, du lundi 23 au dimanche 29 novembre 2026" in week
    monday = week[week.index('id="day-perche-1-2026-11-23"'):
                  week.index('id="day-perche-1-2026-11-24"')]  # fmt: skip
    assert re.findall(r'class="hours">([^<]+)</span> <strong>([^<]+)</strong>', monday) == [
        ("08:30–10:30", "Nocé"), ("11:00–12:30", "Bellême"), ("14:00–17:00", "Pervenchères")]
    thursday = week[week.index('id="day-perche-1-2026-11-26"'):]
    assert "Pervenchères" in thursday[:thursday.index("</ol>")].split('id="day-')[1]
    month = client.get("/fleet/tournee/mois?mois=2026-12").text
    assert "Décembre 2026" in month

    def cell(day: str) -> str:
        start = month.index(f'id="day-perche-1-2026-12-{day}"')
        return month[start:month.index("</td>", start)]

    assert "Bazoches-sur-Hoëne" in cell("03") and "Pervenchères" not in cell("03")
    assert "Pervenchères" in cell("10") and "Bazoches-sur-Hoëne" not in cell("10")
    assert "Bazoches-sur-Hoëne" in cell("17")
    assert "Noël" in cell("25") and "status-cancelled" in cell("25")
    assert "status-planned" not in cell("25")  # nothing runs at Christmas
    entries = client.get("/fleet/tournee/regulieres").text
    assert "un jeudi sur deux" in entries and "chaque lundi" in entries


def test_a_cancellation_by_form_is_made_said_and_undone(console_service: GroundService) -> None:
    client, csrf = logged_in(console_service, "marie")
    r = post(client, csrf, WEEK, "x-cancel", kind="cancel", visit=VISIT, reason="Neige")
    assert r.status_code == 303
    assert r.headers["location"] == WEEK + "&fait=1"
    page = client.get(r.headers["location"]).text
    assert "Modification n° 1 enregistrée : annulation, Pervenchères, lundi 23 novembre" in page
    item = visit_item(page, VISIT)
    assert "annulée" in item and "Motif : Neige" in item
    history = client.get("/fleet/tournee/historique").text
    assert "Neige" in history and "marie" in history and "tournee.toml" in history
    r = post(client, csrf, "/fleet/tournee/historique", "undo-1", kind="undo", change="1",
             reason="Route dégagée")
    assert r.status_code == 303
    assert "prévue" in visit_item(client.get(WEEK).text, VISIT)
    assert "annulée par la n° 2" in client.get("/fleet/tournee/historique").text
    again = post(client, csrf, "/fleet/tournee/historique", "undo-1", kind="undo", change="1",
                 reason="Route dégagée")
    assert "Rien n'a changé" in client.get(again.headers["location"]).text


@pytest.mark.parametrize(("fields", "field", "french"), [
    ({"kind": "move", "visit": VISIT, "day": "2026-12-25", "reason": "Marché"}, "day", "Noël"),
    ({"kind": "move", "visit": VISIT, "arrive": "11:30", "depart": "13:00", "reason": "Marché"},
     "arrive", "déjà une visite"),
    ({"kind": "move", "visit": VISIT, "day": "2026-13-40", "reason": "Marché"}, "day",
     "date invalide"),
    ({"kind": "cancel", "visit": VISIT, "reason": "   "}, "reason", "dites pourquoi"),
    ({"kind": "add", "vehicle": "perche-1", "stop": "noce", "day": "2026-11-20", "half": "pm",
      "arrive": "14:00", "depart": "16:00", "reason": "Rattrapage"}, "day", "passée"),
])  # fmt: skip
def test_a_refused_form_comes_back_at_its_field(console_service: GroundService,
                                                fields: dict[str, str], field: str,
                                                french: str) -> None:  # fmt: skip
    client, csrf = logged_in(console_service, "marie")
    form = "add-perche-1" if fields["kind"] == "add" else \
        f"{VISIT.replace('/', '-')}-{fields['kind']}"  # fmt: skip
    r = post(client, csrf, WEEK, form, **fields)
    assert r.status_code == 422
    tag = re.search(rf'<input[^>]*name="{field}"[^>]*>', r.text[r.text.index(f'id="{form}"'):])
    assert tag and 'aria-invalid="true"' in tag.group(0), r.text
    assert french in r.text[r.text.index(f'id="{form}-error"'):][:300]
    if fields.get("day"):
        assert f'value="{fields["day"]}"' in tag.group(0)  # what was typed, kept
    assert re.search(r"<details[^>]* open>", r.text)  # the form stays open at the error
    assert console_service.tournee.history() == []


def test_roles_and_tokens_are_checked_on_the_form(console_service: GroundService) -> None:
    for name in ("paul", "claire"):
        client, csrf = logged_in(console_service, name)
        r = post(client, csrf, WEEK, "x", kind="cancel", visit=VISIT, reason="Neige")
        assert r.status_code == 403 and "réservé à la coordination" in r.text
    client, csrf = logged_in(console_service, "marie")
    assert post(client, "forged", WEEK, "x", kind="cancel", visit=VISIT,
                reason="Neige").status_code == 403  # fmt: skip
    other = client.post("/fleet/tournee/changes", headers={"Origin": "https://evil.example"},
                        data={"csrf": csrf, "kind": "cancel", "visit": VISIT, "reason": "x"})
    assert other.status_code == 403
    away = post(client, csrf, "https://evil.example/fleet/tournee", "x", kind="cancel",
                visit=VISIT, reason="Neige")
    assert away.headers["location"].startswith("/fleet/tournee?")  # never off the site
    assert console_service.tournee.history()[0].reason == "Neige"


def test_add_move_and_a_recurring_entry_by_form(console_service: GroundService) -> None:
    client, csrf = logged_in(console_service, "marie")
    added = post(client, csrf, WEEK, "add-perche-1", kind="add", vehicle="perche-1",
                 stop="remalard", day="2026-11-28", half="pm", arrive="14:00", depart="16:30",
                 reason="Campagne de vaccination")
    assert added.status_code == 303
    saturday = client.get(WEEK).text
    item = visit_item(saturday, "2026-11-28/remalard/pm")
    assert "ajoutée" in item and "14:00–16:30" in item and "Campagne de vaccination" in item
    moved = post(client, csrf, WEEK, "m", kind="move", visit="2026-11-24/remalard/am",
                 arrive="09:30", depart="11:30", place="Place de la mairie", reason="Marché")
    assert moved.status_code == 303, moved.text
    item = visit_item(client.get(WEEK).text, "2026-11-24/remalard/am")
    assert "déplacée" in item and "09:30–11:30" in item and "Place de la mairie" in item
    assert "prévue mardi 24 novembre" in item
    # A rule that is not one: refused at the rule's field, nothing kept.
    entries = client.get("/fleet/tournee/regulieres").text
    key = re.search(r'name="key" value="(pervencheres-pm[^"]*)"', entries)
    assert key, entries
    form = f"entry-{key.group(1)}"
    fields = {"kind": "entry", "key": key.group(1), "from": "2026-12-01",
              "entry.vehicle": "perche-1", "entry.stop": "pervencheres", "entry.half": "pm",
              "entry.arrive": "14:00", "entry.depart": "17:00", "entry.day": "",
              "entry.anchor": "2026-12-07", "reason": "Une semaine sur deux"}  # fmt: skip
    bad = post(client, csrf, "/fleet/tournee/regulieres", form,
               **{**fields, "entry.rrule": "FREQ=HOURLY"})
    assert bad.status_code == 422
    rule = re.search(r'<input[^>]*name="entry.rrule"[^>]*>', bad.text[bad.text.index(
        f'id="{form}"'):])  # fmt: skip
    assert rule and 'aria-invalid="true"' in rule.group(0)
    assert 'value="FREQ=HOURLY"' in rule.group(0) and "FREQ doit valoir" in bad.text
    assert console_service.tournee.history()[0].kind == "move"  # nothing kept of the refused rule
    good = post(client, csrf, "/fleet/tournee/regulieres", form,
                **{**fields, "entry.rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"})
    assert good.status_code == 303, good.text
    page = client.get(good.headers["location"]).text
    assert "un lundi sur deux" in page and "enregistrée" in page
    month = client.get("/fleet/tournee/mois?mois=2026-12").text
    mondays = [d for d in ("07", "14", "21", "28")
               if "Pervenchères" in month[month.index(f"2026-12-{d}\""):][:1500].split("</td>")[0]]
    assert mondays == ["07", "21"]


def test_odd_addresses_show_the_current_week_and_say_so(console_service: GroundService) -> None:
    client, _ = logged_in(console_service, "paul")
    for path, said in (("/fleet/tournee?semaine=demain", "Semaine invalide"),
                       ("/fleet/tournee/mois?mois=2026-13", "Mois invalide"),
                       ("/fleet/tournee?vehicule=inconnu", "Véhicule inconnu"),
                       ("/fleet/tournee?semaine=2026-W99", "Semaine invalide")):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 200 and said in r.text, path
        assert "Semaine 48" in r.text or "Novembre 2026" in r.text


@pytest.mark.parametrize("name", ["evreux", "orne", "haute-vienne"])
def test_each_example_fleet_runs_in_the_console(tmp_path: Path, mosquitto: Mosquitto,
                                                name: str) -> None:  # fmt: skip
    """The three example fleets, served by the ground: their weeks, months and rules read,
    and a visit of the next week cancelled through the form."""
    path = FLEETS / f"{name}.toml"
    fleet = load_fleet(path)
    with console_ground(tmp_path, mosquitto.port, path) as g:
        client, csrf = logged_in(g, "marie")
        week = "/fleet/tournee?semaine=2026-W49"  # 30 November to 6 December 2026
        visits = [v for n in range(7) for v in visits_on(fleet, date(2026, 11, 30)
                                                         + timedelta(days=n))
                  if v.cancelled is None]  # fmt: skip
        assert visits, name
        page = client.get(week).text
        assert all(f'data-visit="{v.id}"' in page for v in visits)
        assert client.get("/fleet/tournee/mois?mois=2027-01").status_code == 200
        rules = client.get("/fleet/tournee/regulieres").text
        assert all(e.describe_fr() in rules for e in fleet.timetable)
        target = visits[0]
        r = post(client, csrf, week, "c", kind="cancel", visit=target.id, reason="Neige")
        assert r.status_code == 303, r.text
        assert "annulée" in visit_item(client.get(week).text, target.id)
