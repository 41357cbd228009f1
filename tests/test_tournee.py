"""The coordinator's changes to the tournée (`ground.tournee`): checked, kept with who,
when and why in a real SQLite file, undone, never half-applied, and exported to TOML."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ground.fleet import Fleet, day_plan, load_fleet, visits_on
from ground.tournee import Changed, Refused, Tournee, export_toml
from medicobus.cli import main
from medicobus.settings import parse_toml
from tests.clocks import ManualClock
from tests.harness import FLEET as DEMO_FLEET

PARIS = ZoneInfo("Europe/Paris")
FLEET = """
timezone = "Europe/Paris"
[[vehicles]]
id = "bus-1"
name = "Bus 1"
[[stops]]
id = "noce"
commune = "Nocé"
insee = "61309"
lat = 48.3838
lon = 0.6783
place = "Place de l'église"
[[stops]]
id = "belleme"
commune = "Bellême"
insee = "61038"
lat = 48.3753
lon = 0.5603
[[timetable]]
vehicle = "bus-1"
stop = "noce"
half = "matin"
arrive = "08:30"
depart = "12:00"
rrule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"
anchor = 2027-02-23
[[timetable]]
vehicle = "bus-1"
stop = "belleme"
half = "après-midi"
arrive = "14:00"
depart = "17:00"
day = "mardi"
"""
MONDAY = datetime(2027, 3, 8, 9, 0, tzinfo=PARIS)  # the day before a Nocé Tuesday


@pytest.fixture
def base() -> Fleet:
    return parse_toml(FLEET, Fleet, source="fleet.toml")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY)


@pytest.fixture
def tournee(base: Fleet, tmp_path: Path, clock: ManualClock) -> Tournee:
    return Tournee(base, tmp_path / "ground.db", clock)


def test_cancel_is_kept_with_who_when_why_and_told(tournee: Tournee, base: Fleet,
                                                   tmp_path: Path, clock: ManualClock) -> None:
    heard: list[Changed] = []
    tournee.subscribe(heard.append)
    changed = tournee.cancel("2027-03-09/noce/am", "Médecin malade", "marie")
    assert changed is not None and heard == [changed]
    (d,) = changed.differences
    assert (d.kind, d.visit, changed.communes, changed.vehicles) == (
        "cancelled", "2027-03-09/noce/am", {"61309"}, {"bus-1"})
    visit = next(v for v in visits_on(tournee.fleet, date(2027, 3, 9)) if v.stop.id == "noce")
    assert visit.cancelled is not None and visit.cancelled.reason == "Médecin malade"
    assert [v.stop for v in day_plan(tournee.fleet, "bus-1", date(2027, 3, 9)).visits] == [
        "belleme"]
    (kept,) = tournee.history()
    assert (kept.kind, kept.who, kept.reason, kept.at) == ("cancel", "marie", "Médecin malade",
                                                           clock.now())
    # Kept across a restart; the same cancellation saved twice changes nothing.
    again = Tournee(base, tmp_path / "ground.db", clock)
    assert again.fleet == tournee.fleet
    assert again.cancel("2027-03-09/noce/am", "Médecin malade", "marie") is None
    assert len(again.history()) == 1


def test_move_add_and_park_elsewhere(tournee: Tournee) -> None:
    moved = tournee.move("2027-03-09/noce/am", "Marché le mardi", "marie",
                         day=date(2027, 3, 10), arrive=time(9, 0))
    assert moved is not None and [d.kind for d in moved.differences] == ["moved"]
    assert moved.days == {date(2027, 3, 9), date(2027, 3, 10)}
    (held,) = visits_on(tournee.fleet, date(2027, 3, 10))
    assert (held.id, held.arrive.time(), held.depart.time()) == ("2027-03-09/noce/am",
                                                                time(9, 0), time(12, 0))
    added = tournee.add("bus-1", "noce", date(2027, 3, 11), "pm", time(14, 0), time(16, 0),
                        "Vaccination", "marie")
    assert added is not None and added.differences[0].kind == "added"
    parked = tournee.park("belleme", date(2027, 3, 16), "Parking du stade", 48.38, 0.56,
                          "Marché", "marie")
    assert parked is not None
    (b,) = visits_on(tournee.fleet, date(2027, 3, 16), stop="belleme")
    assert b.stop.place == "Parking du stade"


@pytest.mark.parametrize(("act", "field", "said"), [
    (lambda t: t.cancel("2027-03-08/noce/am", "x", "m"), "visit", "pas au planning"),
    (lambda t: t.cancel("2027-02-23/noce/am", "x", "m"), "visit", "passée"),
    (lambda t: t.cancel("2027-03-09/noce/am", "  ", "m"), "reason", "pourquoi"),
    (lambda t: t.cancel("nonsense", "x", "m"), "visit", "inconnue"),
    # Easter Monday 2027 is 29 March.
    (lambda t: t.move("2027-03-09/noce/am", "x", "m", day=date(2027, 3, 29)), "day",
     "Lundi de Pâques"),
    (lambda t: t.move("2027-03-09/noce/am", "x", "m", arrive=time(15, 0), depart=time(16, 0)),
     "arrive", "déjà une visite"),
    (lambda t: t.add("bus-1", "nowhere", date(2027, 3, 11), "am", time(9), time(10), "x", "m"),
     "stop", "arrêt inconnu"),
    (lambda t: t.add("bus-1", "noce", date(2027, 3, 1), "am", time(9), time(10), "x", "m"),
     "day", "passée"),
    (lambda t: t.add("bus-1", "noce", date(2027, 3, 9), "am", time(9), time(10), "x", "m"),
     "half", "existe déjà"),
    (lambda t: t.add("bus-1", "noce", date(2027, 3, 11), "am", time(10), time(9), "x", "m"),
     "form", "not after"),
    (lambda t: t.edit_entry(None, {"vehicle": "bus-1", "stop": "noce", "half": "am",
                                   "arrive": "08:00", "depart": "09:00",
                                   "rrule": "FREQ=WEEKLY;BYDAY=QQ"}, date(2027, 3, 9), "x",
                            "m"), "rrule", "règle invalide"),
    (lambda t: t.edit_entry(None, {"vehicle": "bus-1", "stop": "noce", "half": "pm",
                                   "arrive": "15:00", "depart": "16:00", "day": "mardi"},
                            date(2027, 3, 9), "x", "m"), "arrive", "déjà une visite"),
])  # fmt: skip
def test_refused_changes_say_which_field_and_change_nothing(
        tournee: Tournee, act: object, field: str, said: str) -> None:  # fmt: skip
    before = tournee.fleet
    with pytest.raises(Refused) as caught:
        act(tournee)  # type: ignore[operator]
    assert caught.value.field == field and said in f"{caught.value.fr} {caught.value.en}"
    assert tournee.fleet is before and tournee.history() == []
    count = tournee.db.execute("SELECT count(*) FROM tournee_changes").fetchone()[0]
    assert count == 0


def test_a_recurring_entry_edited_from_a_date_keeps_the_past(tournee: Tournee) -> None:
    key = next(e.key for e in tournee.fleet.timetable if e.stop == "belleme")
    changed = tournee.edit_entry(key, {"vehicle": "bus-1", "stop": "belleme", "half": "pm",
                                       "arrive": "14:00", "depart": "17:00",
                                       "rrule": "FREQ=MONTHLY;BYDAY=2TU"},
                                 date(2027, 3, 17), "Moins de monde", "marie")
    assert changed is not None
    held = lambda day: [v.stop.id for v in visits_on(tournee.fleet, day)]  # noqa: E731
    assert held(date(2027, 3, 16)) == ["belleme"]  # before: every Tuesday still
    assert held(date(2027, 3, 23)) == ["noce"]
    assert held(date(2027, 4, 13)) == ["belleme"]  # the 2nd Tuesday of April
    descriptions = sorted(e.describe_fr() for e in tournee.fleet.timetable)
    assert "le 2e mardi du mois, à partir du 17 mars 2027" in descriptions
    assert "chaque mardi, jusqu'au 16 mars 2027" in descriptions


def test_undo_restores_and_is_kept(tournee: Tournee) -> None:
    first = tournee.cancel("2027-03-09/noce/am", "Neige", "marie")
    assert first is not None
    undone = tournee.undo(first.change.id, "Routes dégagées", "paul")
    assert undone is not None and undone.differences[0].kind == "restored"
    visit = next(v for v in visits_on(tournee.fleet, date(2027, 3, 9)) if v.stop.id == "noce")
    assert visit.cancelled is None
    assert [(c.kind, c.undone_by) for c in tournee.history()] == [
        ("undo", None), ("cancel", undone.change.id)]
    assert tournee.undo(first.change.id, "encore", "paul") is None


def test_a_listener_that_fails_does_not_undo_the_change(tournee: Tournee) -> None:
    def broken(changed: Changed) -> None:
        raise RuntimeError("mail server on fire")

    tournee.subscribe(broken)
    assert tournee.cancel("2027-03-09/noce/am", "Neige", "marie") is not None
    assert len(tournee.history()) == 1


def test_export_reads_back_to_the_same_visits(tournee: Tournee, tmp_path: Path) -> None:
    tournee.cancel("2027-03-09/noce/am", "Neige", "marie")
    tournee.move("2027-03-23/noce/am", "Marché", "marie", day=date(2027, 3, 24))
    tournee.add("bus-1", "noce", date(2027, 3, 11), "pm", time(14, 0), time(16, 0),
                "Vaccination", "marie")
    tournee.park("belleme", date(2027, 3, 16), "Parking du stade", 48.38, 0.56, "Marché", "m")
    key = next(e.key for e in tournee.fleet.timetable if e.stop == "belleme")
    tournee.edit_entry(key, None, date(2027, 4, 1), "Fin de saison", "marie")
    text = export_toml(tournee.fleet)
    again = parse_toml(text, Fleet, source="export.toml")
    for n in range(60):
        day = date.fromordinal(date(2027, 3, 8).toordinal() + n)
        assert [(v.id, v.arrive, v.stop.place, v.cancelled) for v in visits_on(again, day)] == [
            (v.id, v.arrive, v.stop.place, v.cancelled) for v in visits_on(tournee.fleet, day)]


def test_the_command_line_exports_the_tournee_with_its_changes(tmp_path: Path) -> None:
    database = tmp_path / "ground.db"
    tournee = Tournee(load_fleet(DEMO_FLEET), database, ManualClock(
        datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)))  # fmt: skip
    tournee.cancel("2026-11-23/pervencheres/pm", "Médecin malade", "marie")
    tournee.close()
    config = tmp_path / "ground.toml"
    config.write_text(f'fleet = "{DEMO_FLEET}"\ndatabase = "{database}"\n', encoding="utf-8")
    out = tmp_path / "tournee.toml"
    assert main(["ground", "--config", str(config), "--export-tournee", str(out)]) == 0
    exported = load_fleet(out)
    (cancelled,) = [v for v in visits_on(exported, date(2026, 11, 23)) if v.cancelled]
    assert (cancelled.stop.id, cancelled.cancelled.reason) == ("pervencheres", "Médecin malade")
    assert main(["ground", "--config", str(config), "--export-tournee",
                 str(tmp_path / "missing" / "x.toml")]) == 2  # fmt: skip
