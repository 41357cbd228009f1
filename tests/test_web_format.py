"""The pages' French wording of dates, times and numbers (ground.web.format, on Babel)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from ground.web.format import age, day_label_fr, half_label, hm, hms, hour, number, when

PARIS = ZoneInfo("Europe/Paris")


def test_days_as_french_writes_them() -> None:
    assert day_label_fr(date(2026, 11, 23)) == "lundi 23 novembre"
    assert day_label_fr(date(2026, 12, 1)) == "mardi 1er décembre"
    assert day_label_fr(date(2027, 8, 2)) == "lundi 2 août"
    assert (half_label("pm"), half_label("pm", "en")) == ("après-midi", "afternoon")


def test_times_in_the_fleets_zone_whatever_the_machines() -> None:
    moment = datetime(2026, 7, 14, 6, 5, 9, tzinfo=UTC)  # summer time: 08:05 in Paris
    assert hm(moment, PARIS) == "08:05" and hms(moment, PARIS) == "08:05:09"
    assert hm(moment.astimezone(PARIS)) == "08:05"  # the moment's own zone by default
    assert hm(None) == ""
    assert hour(moment, PARIS) == "08h"
    assert when(moment, PARIS, moment + timedelta(hours=3)) == "08:05"
    assert when(moment, PARIS, moment + timedelta(days=1)) == "14/07 08:05"


def test_numbers_with_a_decimal_comma() -> None:
    assert number(4.26) == "4,3" and number(9.6) == "9,6" and number(-3.24) == "-3,2"
    assert number(-0.04) == "0,0" and number(-0.4, 0) == "0"
    assert number(1500, 0) == "1500"  # no thousands separator in the tiles' figures
    assert number(12.95, 2) == "12,95"


def test_ages_keep_their_minutes() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=PARIS)
    assert age(now - timedelta(minutes=12), now) == "12 min"
    assert age(now - timedelta(minutes=125), now) == "2 h 05"
    assert age(now - timedelta(days=3), now) == "3 j"
    assert age(now + timedelta(minutes=1), now) == "0 min"
