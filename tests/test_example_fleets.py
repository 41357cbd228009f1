"""The example fleets of config/fleets/, imitating the seeds' three operations: real communes,
and timetables that, expanded day by day over pinned months, keep each operation's cadence,
never put a vehicle in two places at once, and cancel public holidays and closures."""

from __future__ import annotations

import functools
import itertools
import json
import math
import tomllib
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ground.fleet import DatedVisit, Fleet, load_fleet, visits_on
from medicobus.cli import main

ROOT = Path(__file__).resolve().parents[1]
FLEETS = ROOT / "config" / "fleets"
NAMES = ["evreux", "orne", "haute-vienne"]
EXTRACT = json.loads((ROOT / "tests/fixtures/communes_extract.json").read_text("utf-8"))
PARIS = ZoneInfo("Europe/Paris")

# Across the new year: Christmas and New Year's Day fall on Fridays.
WINTER = (date(2026, 12, 1), date(2027, 2, 28))
# Easter Monday, 1 and 8 May (Saturdays), Ascension (a Thursday), Whit Monday; the clocks go
# forward on Sunday 28 March.
SPRING = (date(2027, 3, 1), date(2027, 5, 31))
WINDOWS = pytest.mark.parametrize("window", [WINTER, SPRING], ids=["winter", "spring"])
HOLIDAYS = {
    date(2026, 12, 25): "Noël",
    date(2027, 1, 1): "Jour de l'an",
    date(2027, 3, 29): "Lundi de Pâques",
    date(2027, 5, 6): "Ascension",
    date(2027, 5, 17): "Lundi de Pentecôte",
}
# What each fleet's holidays and closures cancel in the two windows: (day, stop).
HOLIDAY_CANCELLED = {
    "evreux": {(date(2026, 12, 25), "jouy-sur-eure"), (date(2027, 3, 29), "bois-le-roi"),
               (date(2027, 3, 29), "marcilly-sur-eure"), (date(2027, 5, 6), "plessis-grohan"),
               (date(2027, 5, 17), "couture-boussey"), (date(2027, 5, 17), "croth")},
    "orne": {(date(2026, 12, 25), "longny"), (date(2027, 1, 1), "longny"),
             (date(2027, 3, 29), "perche-en-noce"), (date(2027, 5, 6), "remalard"),
             (date(2027, 5, 17), "perche-en-noce")},
    "haute-vienne": {(date(2026, 12, 25), "lauriere"),
                     (date(2026, 12, 25), "saint-sulpice-lauriere"), (date(2027, 1, 1), "razes"),
                     (date(2027, 5, 6), "bessines"), (date(2027, 5, 6), "fromental"),
                     (date(2027, 5, 17), "saint-sulpice-les-feuilles")},
}  # fmt: skip
CLOSURES = {  # first day, last day, reason, and what it cancels in the windows
    "evreux": (date(2027, 2, 22), date(2027, 2, 26), "Congés d'hiver de l'équipe",
               {(date(2027, 2, 22), "couture-boussey"), (date(2027, 2, 22), "croth"),
                (date(2027, 2, 25), "saint-germain-sur-avre"),
                (date(2027, 2, 26), "jouy-sur-eure")}),
    "orne": (date(2026, 12, 28), date(2026, 12, 31), "Fermeture de fin d'année",
             {(date(2026, 12, 28), "perche-en-noce"), (date(2026, 12, 29), "belleme"),
              (date(2026, 12, 29), "bazoches-sur-hoene"), (date(2026, 12, 30), "moulins-la-marche"),
              (date(2026, 12, 30), "tourouvre"), (date(2026, 12, 31), "remalard")}),
    "haute-vienne": (date(2027, 4, 26), date(2027, 4, 30), "Congés de printemps",
                     {(date(2027, 4, 26), "lussac-les-eglises"),
                      (date(2027, 4, 28), "chateauponsac")}),
}  # fmt: skip
# The Doctobus: every other Monday (week A or B), every third Thursday or Friday.
EVREUX_EVERY = {"couture-boussey": 14, "croth": 14, "bois-le-roi": 14, "marcilly-sur-eure": 14,
                "marcilly-la-campagne": 21, "saint-germain-sur-avre": 21, "plessis-grohan": 21,
                "sacquenville": 21, "jouy-sur-eure": 21}  # fmt: skip


def fleet_file(name: str) -> Path:
    return FLEETS / f"{name}.toml"


@functools.cache
def fleet(name: str) -> Fleet:
    return load_fleet(fleet_file(name))


def expand(name: str, window: tuple[date, date]) -> list[DatedVisit]:
    """The fleet's visits, cancelled ones included, asked for day by day as the ground does."""
    first, last = window
    days = (first + timedelta(n) for n in range((last - first).days + 1))
    return [v for day in days for v in visits_on(fleet(name), day)]


def dates_by_stop(visits: list[DatedVisit]) -> dict[str, list[date]]:
    found: dict[str, list[date]] = defaultdict(list)
    for v in visits:
        found[v.stop.id].append(v.day)
    return {stop: sorted(days) for stop, days in found.items()}


def assert_every(days: list[date], every: int, window: tuple[date, date], stop: str) -> None:
    """Visits exactly `every` days apart, from the window's first such day to its last."""
    gaps = {(b - a).days for a, b in itertools.pairwise(days)}
    assert gaps == {every}, f"{stop}: visits {gaps} days apart, not {every}"
    assert (days[0] - window[0]).days < every and (window[1] - days[-1]).days < every, stop


def stops_raw(name: str) -> list[dict]:
    return tomllib.loads(fleet_file(name).read_text("utf-8"))["stops"]


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    # An equirectangular approximation: exact enough within a few kilometres.
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return 6_371_000 * math.hypot(x, math.radians(lat2 - lat1))


def test_the_extract_holds_the_fleets_communes_from_the_official_list() -> None:
    used = {s["insee"] for name in NAMES for s in stops_raw(name)}
    assert set(EXTRACT["communes"]) == used, "run scripts/extract_communes.py again"
    assert EXTRACT["source"].startswith("@etalab/decoupage-administratif ")


@pytest.mark.parametrize(("name", "departement", "count"),
                         [("evreux", "27", 9), ("orne", "61", 7), ("haute-vienne", "87", 15)])
def test_each_stop_is_a_current_commune_of_its_departement(
    name: str, departement: str, count: int
) -> None:
    stops = fleet(name).stops
    assert len(stops) == len({s.insee for s in stops}) == count
    for s in stops:
        official = EXTRACT["communes"][s.insee]
        assert (s.commune, official["type"]) == (official["nom"], "commune-actuelle")
        assert official["departement"] == departement, s.commune
        # The bus parks in the bourg, where the mairie and the salle des fêtes are.
        centre = official["centre"]
        assert metres(s.lat, s.lon, centre["lat"], centre["lon"]) < 1000, s.commune
        assert s.radius_m <= 200, s.commune


def test_the_communes_are_those_the_operations_serve() -> None:
    evreux = [EXTRACT["communes"][s.insee] for s in fleet("evreux").stops]
    assert {c["epci"]["nom"] for c in evreux} == {"CA Evreux Portes de Normandie"}
    assert "Évreux" not in {c["nom"] for c in evreux}
    orne = [EXTRACT["communes"][s.insee] for s in fleet("orne").stops]
    assert {c["arrondissement"] for c in orne} == {"Mortagne-au-Perche"}  # the CPTS's
    for s in fleet("haute-vienne").stops:  # north-east: north and east of Limoges
        assert s.lat > 46.0 and s.lon > 1.15, s.commune


@pytest.mark.parametrize("name", NAMES)
def test_mairie_contacts_are_reserved_example_addresses(name: str) -> None:
    for s in stops_raw(name):
        for contact in s["contacts"]:
            assert contact["email"].endswith(("@example.fr", "@example.org")), contact


@WINDOWS
def test_evreux_visits_each_commune_every_two_or_three_weeks(window: tuple[date, date]) -> None:
    visits = expand("evreux", window)
    assert {v.entry.half for v in visits} <= {"am", "pm"}  # half-days only
    assert {v.entry.vehicle for v in visits} == {"doctobus-1"}
    by_stop = dates_by_stop(visits)
    assert by_stop.keys() == EVREUX_EVERY.keys()
    for stop, days in by_stop.items():
        assert_every(days, EVREUX_EVERY[stop], window, stop)


@WINDOWS
def test_orne_runs_five_days_a_week_over_seven_communes(window: tuple[date, date]) -> None:
    visits = expand("orne", window)
    first, last = window
    weekdays = {first + timedelta(n) for n in range((last - first).days + 1)
                if (first + timedelta(n)).weekday() < 5}  # fmt: skip
    assert {v.day for v in visits} == weekdays  # every Monday to Friday, no weekend
    assert {v.entry.half for v in visits} == {"am", "pm", "day"}  # half-days and days
    by_stop = dates_by_stop(visits)
    assert len(by_stop) == 7
    for stop, days in by_stop.items():
        assert_every(days, 7, window, stop)  # the weekly plan


@WINDOWS
def test_haute_vienne_visits_each_commune_once_or_twice_a_month(
    window: tuple[date, date],
) -> None:
    by_stop = dates_by_stop(expand("haute-vienne", window))
    assert len(by_stop) == 15
    per_month = set()
    for stop, days in by_stop.items():
        months: dict[tuple[int, int], list[date]] = defaultdict(list)
        for day in days:
            months[(day.year, day.month)].append(day)
        assert len(months) == 3, stop
        counts = {len(found) for found in months.values()}
        assert len(counts) == 1 and counts <= {1, 2}, f"{stop}: {counts} visits a month"
        per_month |= counts
        # The same weekday of the same ranks each month: "le 1er et le 3e jeudi".
        ranks = {tuple((d.weekday(), (d.day - 1) // 7 + 1) for d in found)
                 for found in months.values()}  # fmt: skip
        assert len(ranks) == 1, f"{stop}: {ranks}"
    assert per_month == {1, 2}


@pytest.mark.parametrize("name", NAMES)
@WINDOWS
def test_no_vehicle_is_in_two_places_at_once(name: str, window: tuple[date, date]) -> None:
    by_vehicle: dict[str, list[DatedVisit]] = defaultdict(list)
    for v in expand(name, window):
        by_vehicle[v.entry.vehicle].append(v)
        # Paris wall-clock times on the day, on either side of the clock change.
        local = v.arrive.astimezone(PARIS)
        assert (local.date(), local.time()) == (v.day, v.entry.arrive)
        summer = date(2027, 3, 28) < v.day < date(2027, 10, 31)
        assert v.arrive.utcoffset() == timedelta(hours=2 if summer else 1)
    for visits in by_vehicle.values():
        visits.sort(key=lambda v: v.arrive)
        for a, b in itertools.pairwise(visits):
            assert a.depart <= b.arrive, f"{a.stop.id} and {b.stop.id} on {a.day}"


@pytest.mark.parametrize("name", NAMES)
def test_public_holidays_and_closures_cancel_visits_with_their_reason(name: str) -> None:
    first, last, reason, closed = CLOSURES[name]
    cancelled = set()
    for v in expand(name, WINTER) + expand(name, SPRING):
        if v.day in HOLIDAYS or first <= v.day <= last:
            assert v.cancelled is not None, f"{v.stop.id} on {v.day}"
            assert HOLIDAYS.get(v.day, reason) in v.cancelled.reason
            cancelled.add((v.day, v.stop.id))
        else:
            assert v.cancelled is None, f"{v.stop.id} on {v.day}: {v.cancelled}"
    assert cancelled == HOLIDAY_CANCELLED[name] | closed


@pytest.mark.parametrize(("name", "summary"), [
    ("evreux", "1 vehicles, 9 stops, 9 timetable entries, 2 closures"),
    ("orne", "1 vehicles, 7 stops, 7 timetable entries, 2 closures"),
    ("haute-vienne", "1 vehicles, 15 stops, 15 timetable entries, 2 closures"),
])  # fmt: skip
def test_the_command_checks_a_fleet_file_on_its_own(
    name: str, summary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ground", "--check", "--fleet", str(fleet_file(name))]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and str(fleet_file(name)) in out and summary in out


@pytest.mark.parametrize(("broken", "problem"), [
    ('rrule = "FREQ=WEEKLY;INTERVAL=3;BYDAY=FR"', 'rrule = "FREQ=FORTNIGHTLY;BYDAY=FR"'),
    ('stop = "jouy-sur-eure"', 'stop = "saint-andre"'),
], ids=["bad-rrule", "unknown-stop"])  # fmt: skip
def test_the_command_names_the_file_and_the_problem_of_a_broken_fleet(
    broken: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = fleet_file("evreux").read_text("utf-8")
    assert broken in text
    path = tmp_path / "doctobus.toml"
    path.write_text(text.replace(broken, problem), "utf-8")
    assert main(["ground", "--check", "--fleet", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line " in err and "Traceback" not in err
    assert ("rrule" if "rrule" in broken else "unknown stop 'saint-andre'") in err


def test_fleet_goes_with_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["ground", "--fleet", str(fleet_file("orne"))])
    assert done.value.code == 2 and "--check" in capsys.readouterr().err
