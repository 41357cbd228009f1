"""Timetable entries that recur by RFC 5545 rules, seasons, closures and dated exceptions
(cancel, move, add, park elsewhere), expanded by `ground.fleet.visits_on`."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from ground.fleet import Fleet, day_plan, visits_on
from ground.recurrence import Recurrence, RecurrenceError
from medicobus.settings import ConfigError, parse_toml

HEAD = """
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
"""


def entry(stop: str = "noce", half: str = "matin", arrive: str = "08:30",
          depart: str = "12:00", **rule: str) -> str:
    lines = ['vehicle = "bus-1"', f'stop = "{stop}"', f'half = "{half}"',
             f'arrive = "{arrive}"', f'depart = "{depart}"']
    lines += [f"{k} = {v}" if k in ("anchor", "start", "end") or v in ("true", "false")
              else f'{k} = "{v}"' for k, v in rule.items()]
    return "[[timetable]]\n" + "\n".join(lines) + "\n"


def fleet(*parts: str) -> Fleet:
    return parse_toml(HEAD + "".join(parts), Fleet, source="fleet.toml")


def days_at(f: Fleet, first: date, last: date, stop: str = "noce") -> list[date]:
    out, day = [], first
    while day <= last:
        out += [v.day for v in visits_on(f, day, stop=stop) if v.cancelled is None]
        day += timedelta(days=1)
    return out


def test_every_other_tuesday_from_its_anchor() -> None:
    f = fleet(entry(rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", anchor="2027-01-05"))
    held = days_at(f, date(2027, 1, 1), date(2027, 3, 31))
    assert held[:3] == [date(2027, 1, 5), date(2027, 1, 19), date(2027, 2, 2)]
    assert all(b - a == timedelta(days=14) for a, b in zip(held, held[1:], strict=False))
    assert f.timetable[0].describe_fr() == "un mardi sur deux (à partir du 5 janvier 2027)"


def test_first_and_third_thursday_of_the_month() -> None:
    f = fleet(entry(rrule="FREQ=MONTHLY;BYDAY=1TH,3TH"))
    held = days_at(f, date(2027, 1, 1), date(2027, 3, 31))
    assert held == [date(2027, 1, 7), date(2027, 1, 21), date(2027, 2, 4), date(2027, 2, 18),
                    date(2027, 3, 4), date(2027, 3, 18)]
    assert f.timetable[0].describe_fr() == "le 1er et le 3e jeudi du mois"


def test_season_and_weekly_shorthand() -> None:
    f = fleet(entry(day="lundi", start="2027-06-01", end="2027-06-30"))
    held = days_at(f, date(2027, 5, 1), date(2027, 7, 31))
    assert held == [date(2027, 6, 7), date(2027, 6, 14), date(2027, 6, 21), date(2027, 6, 28)]
    assert f.timetable[0].describe_fr() == "chaque lundi, du 1er juin 2027 au 30 juin 2027"


def test_public_holidays_skipped_unless_the_entry_says_otherwise() -> None:
    # Ascension 2027 is Thursday 6 May.
    f = fleet(entry(rrule="FREQ=MONTHLY;BYDAY=1TH"),
              entry(stop="belleme", half="après-midi", arrive="14:00", depart="17:00",
                    rrule="FREQ=MONTHLY;BYDAY=1TH", on_public_holidays="true"))
    (noce,) = visits_on(f, date(2027, 5, 6), stop="noce")
    assert noce.cancelled is not None and noce.cancelled.reason == "Jour férié (Ascension)"
    (belleme,) = visits_on(f, date(2027, 5, 6), stop="belleme")
    assert belleme.cancelled is None
    assert [v.stop for v in day_plan(f, "bus-1", date(2027, 5, 6)).visits] == ["belleme"]


def test_closure_cancels_with_its_reason() -> None:
    f = fleet(entry(day="mardi"), '[[closures]]\nfrom = 2027-08-02\nto = 2027-08-15\n'
              'reason = "Congés d\'été"\n')
    assert days_at(f, date(2027, 7, 26), date(2027, 8, 22)) == [date(2027, 7, 27),
                                                               date(2027, 8, 17)]
    (v,) = visits_on(f, date(2027, 8, 10))
    assert v.cancelled is not None and v.cancelled.reason == "Congés d'été"


@pytest.mark.parametrize(("rule", "anchor", "said"), [
    ("FREQ=HOURLY", None, "FREQ"),
    ("FREQ=WEEKLY;BYDAY=TU;BYHOUR=9", None, "BYHOUR"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", None, "anchor"),
    ("FREQ=MONTHLY", None, "anchor"),
    ("FREQ=WEEKLY;BYDAY=XX", None, "invalid"),
    ("FREQ=WEEKLY;INTERVAL=0;BYDAY=TU", date(2027, 1, 5), "INTERVAL"),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", None, "aucune date"),
    ("FREQ=WEEKLY;BYDAY", None, "illisible"),
])  # fmt: skip
def test_rules_a_tournee_cannot_use_are_refused(rule: str, anchor: date | None,
                                               said: str) -> None:
    with pytest.raises(RecurrenceError, match=said):
        Recurrence.parse(rule, anchor)


def test_a_bad_rule_in_the_file_names_the_file_and_the_line() -> None:
    text = HEAD + entry(day="lundi") + entry(stop="belleme", rrule="FREQ=WEEKLY;BYDAY=ZZ")
    with pytest.raises(ConfigError) as caught:
        parse_toml(text, Fleet, source="fleet.toml")
    line = text.splitlines().index("[[timetable]]", text.splitlines().index("[[timetable]]") + 1)
    assert f"fleet.toml: line {line + 1}: timetable[1]: rrule:" in str(caught.value)


def test_unknown_stop_names_its_line() -> None:
    text = HEAD + entry(day="lundi") + entry(stop="nowhere", day="mardi")
    with pytest.raises(ConfigError, match=r"line \d+: timetable\[1\]: unknown stop 'nowhere'"):
        parse_toml(text, Fleet, source="fleet.toml")


def test_two_visits_at_once_found_across_rules() -> None:
    # Every other Tuesday, on alternate weeks, at the same hours: never at once.
    fleet(entry(rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", anchor="2027-01-05"),
          entry(stop="belleme", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", anchor="2027-01-12"))
    # The 1st Tuesday of the month falls on a week of the fortnightly one sooner or later.
    with pytest.raises(ConfigError, match="two visits at once on mardi 5 janvier 2027"):
        fleet(entry(rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", anchor="2027-01-05"),
              entry(stop="belleme", rrule="FREQ=MONTHLY;BYDAY=1TU"))
    # Seasons that do not meet do not clash.
    fleet(entry(day="mardi", end="2027-03-31"), entry(stop="belleme", day="mardi",
                                                      start="2027-04-01"))


def test_dated_exceptions_cancel_move_add_and_park_elsewhere() -> None:
    f = fleet(entry(day="mardi"), """
[[cancellations]]
date = 2027-03-09
stop = "noce"
half = "matin"
reason = "Médecin malade"
[[moves]]
visit = "2027-03-16/noce/am"
day = 2027-03-18
arrive = "14:00"
depart = "17:00"
reason = "Marché le mardi"
[[additions]]
vehicle = "bus-1"
stop = "belleme"
day = 2027-03-19
half = "matin"
arrive = "09:00"
depart = "11:00"
reason = "Campagne de vaccination"
[[places]]
date = 2027-03-23
stop = "noce"
place = "Parking du stade"
lat = 48.3850
lon = 0.6800
reason = "Marché"
""")
    (cancelled,) = visits_on(f, date(2027, 3, 9))
    assert cancelled.cancelled is not None and cancelled.cancelled.reason == "Médecin malade"
    assert visits_on(f, date(2027, 3, 16)) == []
    (moved,) = visits_on(f, date(2027, 3, 18))
    assert moved.id == "2027-03-16/noce/am" and moved.arrive.time() == time(14, 0)
    assert moved.planned_as is not None and moved.planned_as[0].date() == date(2027, 3, 16)
    assert moved.note == "Marché le mardi" and moved.cancelled is None
    (added,) = visits_on(f, date(2027, 3, 19))
    assert (added.id, added.entry, added.note) == ("2027-03-19/belleme/am", None,
                                                   "Campagne de vaccination")
    (elsewhere,) = visits_on(f, date(2027, 3, 23))
    assert (elsewhere.stop.place, elsewhere.stop.lat) == ("Parking du stade", 48.385)
    assert day_plan(f, "bus-1", date(2027, 3, 23)).visits[0].lat == 48.385
    (usual,) = visits_on(f, date(2027, 3, 30))
    assert usual.stop.place == "Place de l'église"


def test_a_move_across_the_october_clock_change_keeps_local_hours() -> None:
    # Saturday 30 October 2027 (summer time) moved to Monday 1 November? a holiday:
    # the file says so, so it is held; to Tuesday 2 November (winter time) here.
    f = fleet(entry(day="samedi"), """
[[moves]]
visit = "2027-10-30/noce/am"
day = 2027-11-02
""")
    (moved,) = visits_on(f, date(2027, 11, 2))
    assert moved.arrive.time() == time(8, 30) and moved.arrive.utcoffset() == timedelta(hours=1)
    assert moved.planned_as is not None
    assert moved.planned_as[0].utcoffset() == timedelta(hours=2)


def test_the_demo_fleet_mixes_weekly_entries_and_a_fortnightly_pair() -> None:
    from ground.fleet import load_fleet

    f = load_fleet(Path(__file__).parent.parent / "medicobus" / "defaults" / "fleet.toml")
    assert sum(e.day is not None for e in f.timetable) == 9  # the weekly shorthand, as before
    thursdays = [date(2026, 11, 26), date(2026, 12, 3), date(2026, 12, 10)]
    mornings = [[v.stop.id for v in visits_on(f, d) if v.half == "am"] for d in thursdays]
    assert mornings == [["pervencheres"], ["bazoches"], ["pervencheres"]]
