"""How precise a published ETA may claim to be (ground.precision): the claim made from a real
accuracy record (a ground database filled by hand: tests/precision_records.py), its three
outcomes, an empty or too small record, never a time already past, rounding across an hour,
midnight and the clock changes; and what the public is then told, through the real ground
service: the commune page in French and English (and live, in Chromium), the embedded
block, the JSON API and the mairie's delay notice, while the fleet's pages keep the minute."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import Browser, expect

from ground.accuracy import Prediction, Scored
from ground.eta_record import EtaRecord, recorded
from ground.mairies import Notice, Slot, body, payload, relay_text
from ground.precision import (
    LOOK_BACK,
    NOT_KNOWN,
    RETRY,
    Claim,
    Precision,
    PrecisionTable,
    Said,
    Spread,
    precision_table,
)
from ground.service import GroundService
from ground.store import Store
from ground.web.format import hm
from medicobus.brokers import Mosquitto
from tests.clocks import ManualClock
from tests.console import console_ground, logged_in, url
from tests.harness import PARIS, VEHICLE, wait_until
from tests.precision_records import fill
from tests.test_mairies import notice
from tests.test_web_browser import open_page
from tests.test_web_pages import text_of, towards

MONDAY = date(2026, 11, 23)  # Nocé 08:30
MARCH = date(2027, 3, 9)  # tests/test_mairies.py's day
NOCE = "61309"
# The error's 10th and 90th percentiles, in seconds (positive: the bus came later).
PRECISE = (-120.0, 120.0)  # 9 in 10 within 2 min: the minute may be claimed
MODERATE = (-240.0, 300.0)  # within 5 min: rounded to 5 min
WIDE = (-240.0, 720.0)  # up to 12 min late: a range
EARLY = (-1500.0, 720.0)  # some came 25 min before the ETA: a range may begin before now
SPREADS = {"precise": PRECISE, "moderate": MODERATE, "wide": WIDE, "early": EARLY}


def at(hh: int, mm: int, ss: int = 0, day: date = MONDAY, fold: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=PARIS, fold=fold)


def table_of(database: Path, day: date, spread: tuple[float, float] | None) -> PrecisionTable:
    """The table the service makes at 08:00 on `day` from a database filled with `spread`
    (None: left empty)."""
    if spread is not None:
        assert 31 <= fill(database, day, spread) <= 40  # where the percentiles are exact
    record, store = EtaRecord(database), Store(database)
    try:
        precision = Precision(functools.partial(recorded, record, store),
                              ManualClock(at(8, 0, day=day)))
        precision.daily(day)
        return precision.table
    finally:
        record.close()
        store.close()


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PrecisionTable]:
    made = {name: table_of(tmp_path_factory.mktemp(name) / "ground.db", MONDAY, spread)
            for name, spread in SPREADS.items()}
    return made | {"empty": table_of(tmp_path_factory.mktemp("empty") / "ground.db", MONDAY,
                                     None)}


# -- the table and the claim ----------------------------------------------------------------


def test_the_record_gives_the_spread_at_the_horizon_it_was_published(
        tables: dict[str, PrecisionTable]) -> None:
    # Published 30 min ahead of the arrival they announced: the 20–40 min bucket only.
    assert tables["wide"].spreads == {"20–40 min": Spread(n=33, visits=33, early_s=-240.0,
                                                          late_s=720.0, within_s=720.0)}
    assert tables["empty"] == NOT_KNOWN


@pytest.mark.parametrize(("record", "claim"), [
    ("precise", Claim(Said.MINUTE, at(8, 34), at(8, 34), 1)),
    ("moderate", Claim(Said.AROUND, at(8, 35), at(8, 35), 5)),
    # 08:34:12 − 4 min, + 12 min, widened outward to 5-min marks
    ("wide", Claim(Said.RANGE, at(8, 30), at(8, 50), 20)),
    ("empty", Claim(Said.AROUND, at(8, 35), at(8, 35), 5)),  # a new install: not the minute
])
def test_each_outcome_from_the_record(tables: dict[str, PrecisionTable], record: str,
                                      claim: Claim) -> None:
    assert tables[record].claim(at(8, 34, 12), at(8, 0)) == claim


def test_a_horizon_the_record_has_not_seen_is_rounded(tables: dict[str, PrecisionTable]
                                                      ) -> None:
    # 7 min ahead (the 5–10 min bucket): nothing recorded there, however precise elsewhere.
    assert tables["precise"].claim(at(8, 7, 40), at(8, 0)) == Claim(
        Said.AROUND, at(8, 10), at(8, 10), 5)


def _scored(visits: int, per_visit: int, error_s: float) -> list[Scored]:
    found = []
    for v in range(visits):
        came = at(8, 30, day=MONDAY - timedelta(days=v + 1))
        announced = came - timedelta(seconds=error_s)
        for k in range(per_visit):  # 30, 29... min ahead of the arrival announced
            found.append(Scored(Prediction(announced - timedelta(minutes=30 - k), f"visit-{v}",
                                           announced), came))
    return found


def test_too_few_predictions_or_visits_do_not_claim_the_minute(tmp_path: Path) -> None:
    # Tuesday to Sunday of the week before, to the minute: 6 predictions are not enough.
    assert fill(tmp_path / "week.db", MONDAY, PRECISE, weeks=1) == 6
    week = table_of(tmp_path / "week.db", MONDAY, None)
    assert week.spreads["20–40 min"].n == 6 and week.spreads["20–40 min"].within_s <= 120
    assert week.claim(at(8, 34, 12), at(8, 0)).said is Said.AROUND
    # 40 predictions, but of 4 visits: one odd morning would decide; of 10 visits, known.
    assert precision_table(_scored(4, 10, 30)).claim(at(8, 34, 12), at(8, 0)).said \
        is Said.AROUND  # fmt: skip
    assert precision_table(_scored(10, 4, 30)).claim(at(8, 34, 12), at(8, 0)).said \
        is Said.MINUTE  # fmt: skip


def test_never_a_time_already_past(tables: dict[str, PrecisionTable]) -> None:
    # Rounded, 08:07:10 would say 08:05 at 08:06: "in a few minutes" (the next five).
    assert tables["moderate"].claim(at(8, 7, 10), at(8, 6, 20)) == Claim(
        Said.SOON, at(8, 6), at(8, 11), 5)
    # To the minute, an ETA within the current minute is still that minute.
    assert tables["empty"].claim(at(8, 6, 50), at(8, 6, 20)).said is Said.SOON
    # A range that would begin at 07:55 (08:22 − 25 min) begins now.
    assert tables["early"].claim(at(8, 22), at(8, 0)) == Claim(Said.BY, at(8, 0), at(8, 35),
                                                               35)
    # A range over already (every bus 24 min before its ETA: 08:21 is 07:57, to 08:00): in
    # a few minutes.
    behind = precision_table(_scored(10, 4, -1440))
    assert behind.claim(at(8, 21), at(8, 0, 30)) == Claim(Said.SOON, at(8, 0), at(8, 5), 5)


@settings(max_examples=300, deadline=None)
@given(record=st.sampled_from([*SPREADS, "empty"]),
       now_s=st.integers(0, 86_400 * 7), ahead_s=st.integers(-600, 4 * 3600))
def test_any_claim_is_a_time_to_come_and_a_whole_number(
        tables: dict[str, PrecisionTable], record: str, now_s: int, ahead_s: int) -> None:
    now = at(0, 0) + timedelta(seconds=now_s, microseconds=now_s % 7 * 1000)
    claim = tables[record].claim(now + timedelta(seconds=ahead_s), now)
    this_minute = now.replace(second=0, microsecond=0)
    assert this_minute.timestamp() <= claim.earliest.timestamp() <= claim.latest.timestamp()
    assert claim.earliest.second == claim.latest.second == 0 and claim.precision_min >= 1
    if claim.said in (Said.MINUTE, Said.AROUND):
        assert claim.earliest == claim.latest
    if claim.said in (Said.AROUND, Said.RANGE):
        assert claim.earliest.minute % 5 == 0 and claim.latest.minute % 5 == 0
    if claim.said in (Said.RANGE, Said.BY, Said.SOON):
        assert claim.precision_min * 60 == (claim.latest - claim.earliest).total_seconds()
    json.dumps([claim.earliest.isoformat(), claim.precision_min], allow_nan=False)


def test_rounding_across_the_hour_and_midnight(tables: dict[str, PrecisionTable]) -> None:
    moderate, precise, wide = tables["moderate"], tables["precise"], tables["wide"]
    assert moderate.claim(at(8, 58, 40), at(8, 30)).earliest == at(9, 0)
    assert precise.claim(at(8, 59, 59), at(8, 30)).earliest == at(8, 59)  # the minute it is
    assert wide.claim(at(8, 50), at(8, 25)) == Claim(Said.RANGE, at(8, 45), at(9, 5), 20)
    tuesday = MONDAY + timedelta(days=1)
    assert moderate.claim(at(23, 58), at(23, 30)).earliest == at(0, 0, day=tuesday)
    late = wide.claim(at(23, 50), at(23, 25))
    assert (late.earliest, late.latest) == (at(23, 45), at(0, 5, day=tuesday))
    assert late.latest.isoformat() == "2026-11-24T00:05:00+01:00"


def test_the_clock_changes(tmp_path: Path) -> None:
    # 25 October 2026, 03:00 summer time is 02:00 winter time; 28 March 2027, 02:00 winter
    # time is 03:00 summer time. Worked out on the real instants, shown on the wall's clock.
    autumn, spring = date(2026, 10, 25), date(2027, 3, 28)
    around = NOT_KNOWN.claim(at(2, 58, day=autumn), at(2, 40, day=autumn))  # summer time
    # (On the instants: Python compares two times of one zone on their wall clock.)
    assert around.earliest.astimezone(UTC) == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    assert around.earliest.isoformat() == "2026-10-25T02:00:00+01:00"
    assert around.earliest.timestamp() > at(2, 40, day=autumn).timestamp()
    # A record over each change: its errors are the instants', not the wall clock's.
    for day, first_day in ((date(2026, 11, 2), autumn), (date(2027, 4, 5), spring)):
        wide = table_of(tmp_path / f"{day}.db", day, WIDE)
        assert wide.spreads["20–40 min"].early_s == -240 and \
            wide.spreads["20–40 min"].late_s == 720, first_day  # fmt: skip
        assert wide.claim(at(8, 34, 12, day=day), at(8, 0, day=day)) == Claim(
            Said.RANGE, at(8, 30, day=day), at(8, 50, day=day), 20)
    across = wide.claim(at(2, 57, day=autumn), at(2, 30, day=autumn))
    assert across.earliest.isoformat() == "2026-10-25T02:50:00+02:00"
    assert across.latest.isoformat() == "2026-10-25T02:10:00+01:00"  # 20 min later
    assert across.precision_min == 20
    assert hm(across.latest) == "02:10"
    around = NOT_KNOWN.claim(at(1, 58, day=spring), at(1, 30, day=spring))
    assert around.earliest.isoformat() == "2027-03-28T03:00:00+02:00"
    across = wide.claim(at(1, 55, day=spring), at(1, 30, day=spring))
    assert across.earliest.isoformat() == "2027-03-28T01:50:00+01:00"
    assert across.latest.isoformat() == "2027-03-28T03:10:00+02:00"
    assert across.precision_min == 20


def test_made_daily_and_a_failed_read_keeps_the_table(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    for name, spread in (("wide", WIDE), ("precise", PRECISE)):
        fill(tmp_path / f"{name}.db", MONDAY, spread)
    opened = {name: (EtaRecord(tmp_path / f"{name}.db"), Store(tmp_path / f"{name}.db"))
              for name in ("wide", "precise")}
    reading = ["wide"]
    clock = ManualClock(at(8, 0))
    precision = Precision(lambda since, until: recorded(*opened[reading[0]], since, until),
                          clock)
    try:
        assert precision.table == NOT_KNOWN  # before the first read: nothing known
        precision.daily(MONDAY)
        eta, now = at(8, 34, 12), at(8, 0)
        assert precision.claim(eta, now).said is Said.RANGE
        reading[0] = "precise"
        precision.daily(MONDAY)  # made once a day
        assert precision.claim(eta, now).said is Said.RANGE
        opened["precise"][0].close()  # the record cannot be read: the day's table stays
        clock.advance(24 * 3600)
        tuesday = MONDAY + timedelta(days=1)
        eta, now = at(8, 34, 12, day=tuesday), at(8, 0, day=tuesday)
        with caplog.at_level(logging.ERROR, logger="ground.precision"):
            precision.daily(tuesday)
        assert "could not be read" in caplog.text
        assert precision.claim(eta, now).said is Said.RANGE
        opened["precise"] = (EtaRecord(tmp_path / "precise.db"), opened["precise"][1])
        clock.advance(RETRY.total_seconds() - 60)
        precision.daily(tuesday)  # not before RETRY
        assert precision.claim(eta, now).said is Said.RANGE
        clock.advance(60)
        precision.daily(tuesday)
        # Tuesday's four weeks: the precise record's visits but Monday 26 October's.
        assert precision.table.spreads["20–40 min"].n == 33
        assert precision.claim(eta, now).said is Said.MINUTE
        assert timedelta(weeks=4) == LOOK_BACK
    finally:
        for record, store in opened.values():
            record.close()
            store.close()


# -- what the public is told --------------------------------------------------------------


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto
           ) -> Iterator[GroundService]:
    """The real ground service at 08:00 on Monday, its record filled with the spread named
    by the test's parameter (None: empty), the bus 22.8 km north of Nocé at 15 m/s: the
    board predicts 08:34:12 (22.8 km × 1.35 / 15 m/s), 4 min after the timetable."""
    spread = SPREADS.get(request.param)
    if spread is not None:
        fill(tmp_path / "ground.db", MONDAY, spread)
    with console_ground(tmp_path, mosquitto.port, clock=ManualClock(at(8, 0))) as g:
        yield g


def drive(g: GroundService, km: float) -> None:
    """What ingest does with a position: apply it, tell the board's listeners."""
    g.state.apply(towards(g.fleet.stop("noce"), km, g.clock.now()), g.clock.now())
    g.board.notify({VEHICLE})


@pytest.mark.parametrize(("served", "said", "fr", "en"), [
    ("precise", "minute", "Arrivée estimée : 08:34", "Expected at 08:34"),
    ("moderate", "around", "Arrivée estimée : vers 08:35", "Expected around 08:35"),
    ("wide", "range", "Arrivée estimée : entre 08:30 et 08:50",
     "Expected between 08:30 and 08:50"),
    (None, "around", "Arrivée estimée : vers 08:35", "Expected around 08:35"),
], indirect=["served"])
def test_the_public_is_told_what_the_record_allows(served: GroundService, said: str, fr: str,
                                                   en: str) -> None:
    g = served
    drive(g, 22.8)
    base = url(g)
    api = httpx.get(f"{base}/api/v1/stops/{NOCE}").json()["next_visit"]
    assert api["eta"] == "2026-11-23T08:34:12+01:00"  # kept, to the second
    assert api["status"] == "en_route" and api["eta_said"] == said
    french = text_of(httpx.get(f"{base}/communes/{NOCE}").text)
    english = text_of(httpx.get(f"{base}/communes/{NOCE}", params={"lang": "en"}).text)
    assert fr in french and "Arrivée estimée : 08:34" not in french.replace(fr, "")
    assert en in english and "Arrivée estimée" not in english
    assert fr in text_of(httpx.get(f"{base}/communes/{NOCE}/embed").text)
    listed = next(s for s in httpx.get(f"{base}/api/v1/stops").json() if s["insee"] == NOCE)
    visits = httpx.get(f"{base}/api/v1/visits", params={"insee": NOCE}).json()
    for told in (listed["next_visit"], visits[0]):
        assert {k: told[k] for k in ("eta_said", "eta_from", "eta_to", "eta_precision_min")} \
            == {k: api[k] for k in ("eta_said", "eta_from", "eta_to", "eta_precision_min")}
    # The fleet's map is not public: its managers keep the minute.
    client, _ = logged_in(g, "paul")
    stop = client.get("/fleet/api/map").json()["vehicles"][0]["stops"][0]
    assert stop["eta_text"] == "arrivée estimée 08:34 · ETA 08:34"
    assert g.delays.claim == g.precision.claim  # the mairie's delay notice says it so too


@pytest.mark.parametrize("served", ["wide"], indirect=True)
def test_the_api_says_the_range_and_its_width(served: GroundService) -> None:
    drive(served, 22.8)
    v = httpx.get(f"{url(served)}/api/v1/stops/{NOCE}").json()["next_visit"]
    assert (v["eta_said"], v["eta_from"], v["eta_to"], v["eta_precision_min"]) == (
        "range", "2026-11-23T08:30:00+01:00", "2026-11-23T08:50:00+01:00", 20)
    upcoming = httpx.get(f"{url(served)}/api/v1/stops/{NOCE}").json()["upcoming"][0]
    # Wednesday's visit, days ahead: beyond the record's horizons, rounded.
    assert (upcoming["eta"], upcoming["eta_said"], upcoming["eta_precision_min"]) == (
        "2026-11-25T14:00:00+01:00", "around", 5)


@pytest.mark.parametrize("served", ["wide"], indirect=True)
def test_the_range_updates_live_in_chromium(served: GroundService, browser: Browser) -> None:
    listening = len(served.board._listeners)
    page, csp = open_page(browser, f"{url(served)}/communes/{NOCE}", 1024, 900)
    try:
        # No position yet: the timetable's 08:30, −4 / +12 min.
        expect(page.locator("#nv-eta")).to_have_text("Arrivée estimée : entre 08:25 et 08:45")
        page.evaluate("window.__noReload = 1")
        expect(page.locator("#conn")).to_be_hidden()
        wait_until(lambda: len(served.board._listeners) > listening, what="the page's stream")
        drive(served, 22.8)
        expect(page.locator("#nv-eta")).to_have_text("Arrivée estimée : entre 08:30 et 08:50")
        assert page.evaluate("window.__noReload") == 1, "the page was reloaded"
        page.click("a.switch")
        expect(page.locator("#nv-eta")).to_have_text("Expected between 08:30 and 08:50")
        assert isinstance(served.clock, ManualClock)
        served.clock.advance(15 * 60)  # 08:15, 12 km away: 08:33, the 10–20 min bucket,
        drive(served, 12)  # which the record has not seen: rounded
        expect(page.locator("#nv-eta")).to_have_text("Expected around 08:35")
        csp.assert_none()
    finally:
        page.close()


@pytest.mark.parametrize(("claim", "line", "relay"), [
    (Claim(Said.MINUTE, at(9, 52, day=MARCH), at(9, 52, day=MARCH), 1), "9 h 52", "à 9 h 52"),
    (Claim(Said.AROUND, at(9, 50, day=MARCH), at(9, 50, day=MARCH), 5), "vers 9 h 50",
     "vers 9 h 50"),
    (Claim(Said.RANGE, at(9, 45, day=MARCH), at(10, 5, day=MARCH), 20),
     "entre 9 h 45 et 10 h 05", "entre 9 h 45 et 10 h 05"),
    # Read later than written, a notice says no "now".
    (Claim(Said.BY, at(9, 40, day=MARCH), at(10, 0, day=MARCH), 20), "d'ici 10 h",
     "d'ici 10 h"),
    (Claim(Said.SOON, at(9, 40, day=MARCH), at(9, 45, day=MARCH), 5), "peu après 9 h 40",
     "peu après 9 h 40"),
])
def test_the_mairies_delay_notice_says_what_the_record_allows(claim: Claim, line: str,
                                                              relay: str) -> None:
    delayed: Notice = notice(kind="delayed", reason="", delay_min=22,
                             before=Slot(at(8, 30, day=MARCH), at(12, 0, day=MARCH)),
                             after=Slot(at(9, 52, day=MARCH), at(12, 20, day=MARCH)),
                             claim=claim)
    assert f"Arrivée estimée : {line}\n" in body(delayed, PARIS)
    assert relay_text(delayed, PARIS) == (
        f"Médicobus : retard d'environ 22 min à Nocé ce mardi 9 mars : arrivée prévue {relay} "
        "au lieu de 8 h 30.")
    assert payload(delayed, PARIS)["eta_told"] == {
        "said": claim.said.value, "from": claim.earliest.isoformat(),
        "to": claim.latest.isoformat(), "precision_min": claim.precision_min}
