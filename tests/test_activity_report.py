"""The funders' activity report against a simulated month's ground truth: November 2026
with a cancellation made in the console, a public holiday and a second bus that comes into
service mid-month; October 2026 across the clock change; a month with no data at all; a
visit of a bus of before the visit summaries."""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from ground.fleet import load_fleet, visits_on
from ground.pipeline import Arrived, Pipeline
from ground.reports.activity import Activity, Period, activity_report
from ground.reports.tables import Hidden, report_tables
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from tests.harness import FLEET
from tests.simulated_month import BAND, PARIS, Month

pytestmark = pytest.mark.timeout(120)


def expected(month: Month, keep: object) -> Activity:
    """The truth of the visits `keep(visit)` selects, added up independently of the
    report: from the generator's own record of what it sent."""
    truth = month.sim.truth
    figures = Activity()
    delays, waits = [], []
    for day in month.report.period.days():
        for v in visits_on(month.fleet, day):
            if not keep(v):  # type: ignore[operator]
                continue
            figures.planned += 1
            if v.cancelled is not None:
                figures.cancelled += 1
            elif v.id not in truth.held:
                figures.not_held += 1
            else:
                figures.held += 1
                arrived, departed = truth.held[v.id]
                figures.on_site += departed - arrived
                delays.append((arrived - v.arrive).total_seconds())
                s = truth.summaries.get(v.id)
                if s is None:
                    figures.unsummed += 1
                    continue
                for name in ("booked", "checked_in_name", "checked_in_code", "walk_in",
                             "seen", "absent", "no_show"):
                    setattr(figures, name, getattr(figures, name) + getattr(s, name))
                waits += s.waits_s
    figures.delays_s, figures.waits_s = delays, waits
    return figures


def assert_same(got: Activity, want: Activity) -> None:
    for name in ("planned", "held", "cancelled", "not_held", "on_site", "unsummed", "booked",
                 "checked_in_name", "checked_in_code", "walk_in", "seen", "absent", "no_show",
                 "checked_in"):
        assert getattr(got, name) == getattr(want, name), name
    assert sorted(got.delays_s) == sorted(want.delays_s)
    assert sorted(got.waits_s) == sorted(want.waits_s)
    if want.delays_s:
        assert got.delay_median_min == statistics.median(want.delays_s) / 60
        assert got.on_time_share == sum(d <= 300 for d in want.delays_s) / len(want.delays_s)
    if len(want.waits_s) > 1:
        assert got.wait_p90_min == pytest.approx(statistics.quantiles(
            want.waits_s, n=10, method="inclusive")[-1] / 60)
    assert got.no_show_rate == (want.no_show / want.booked if want.booked else None)


def test_each_commune_reconciles_with_the_month(november: Month) -> None:
    report = november.report
    assert [c.commune for c in report.communes] == sorted(
        s.commune for s in november.fleet.stops)
    for c in report.communes:
        assert_same(c.activity, expected(november, lambda v, c=c: v.stop.insee == c.insee))
    assert_same(report.total, expected(november, lambda v: True))
    # Counted by hand from the timetable: Nocé on Mondays (5) and Wednesdays (4) mornings
    # and afternoons, the 11th a public holiday, and perche-2 on the 19th and 26th.
    noce = next(c.activity for c in report.communes if c.insee == "61309")
    assert (noce.planned, noce.cancelled) == (11, 1)
    remalard = next(c.activity for c in report.communes if c.insee == "61345")
    assert (remalard.planned, remalard.cancelled) == (8, 1)


def test_cancellations_carry_their_reasons(november: Month) -> None:
    reasons = {(c.day, c.commune): c.reason for c in november.report.cancellations}
    assert reasons[(date(2026, 11, 24), "Rémalard en Perche")] == "Médecin malade"
    assert reasons[(date(2026, 11, 11), "Nocé")] == "Jour férié (Armistice)"
    assert len(reasons) == november.report.total.cancelled


def test_each_vehicle_reconciles_including_one_added_mid_month(november: Month) -> None:
    truth = november.sim.truth
    period = november.report.period
    hours = (period.end - period.start)
    assert hours == timedelta(days=30)
    by_id = {v.vehicle: v for v in november.report.vehicles}
    assert set(by_id) == {"perche-1", "perche-2"}
    for vehicle, v in by_id.items():
        assert_same(v.activity, expected(november, lambda d, vehicle=vehicle:
                                         d.vehicle == vehicle))
        assert v.km == pytest.approx(truth.km[vehicle], rel=1e-4)  # the wild fix left out
        assert v.driving == truth.driving[vehicle]
        assert v.fridge.outside == truth.outside[vehicle]
        assert v.fridge.unknown == truth.unknown[vehicle]
        assert v.fridge.inside + v.fridge.outside + v.fridge.unknown == hours
        assert [(e.start, e.end) for e in v.fridge.excursions] == [
            (start, end) for who, start, end in truth.excursions if who == vehicle]
        assert all(e.highest == 9.5 for e in v.fridge.excursions)
    late = by_id["perche-2"]
    assert late.activity.planned == 4  # 17, 19, 24, 26 November
    # Before it came into service it has no readings: that time is "no reading".
    assert late.fridge.unknown >= datetime(2026, 11, 16, tzinfo=PARIS) - period.start


def test_a_month_across_the_clock_change(october: Month) -> None:
    report = october.report
    hours = report.period.end - report.period.start
    assert hours == timedelta(hours=745)  # 25 October lasts 25 hours
    (bus,) = report.vehicles
    assert bus.fridge.inside + bus.fridge.outside + bus.fridge.unknown == hours
    assert bus.fridge.outside == october.sim.truth.outside["perche-1"]
    assert_same(bus.activity, expected(october, lambda v: True))
    # The Monday after the change: its timetable's 08:30 is 07:30 UTC, not 06:30.
    (after,) = [o for o in report.visits if o.visit.id == "2026-10-26/noce/am"]
    assert after.arrived is not None and after.delay is not None
    assert after.delay == after.arrived - datetime(2026, 10, 26, 8, 30, tzinfo=PARIS)
    assert abs(after.delay) < timedelta(minutes=30)


def test_a_month_with_no_data(november: Month) -> None:
    report = activity_report(november.fleet, november.store, Period.month("2027-01", PARIS),
                             BAND)
    assert report.total.planned > 0 and report.total.held == 0
    assert report.total.not_held == report.total.planned - report.total.cancelled
    assert report.total.delay_median_min is None and report.total.wait_p90_min is None
    assert report.total.no_show_rate is None and report.total.on_time_share is None
    for bus in report.vehicles:
        assert (bus.km, bus.driving, bus.fridge.excursions) == (0, timedelta(0), [])
        assert bus.fridge.unknown == timedelta(days=31)
    new_year = [c for c in report.cancellations if c.day == date(2027, 1, 1)]
    assert new_year and all(c.reason == "Jour férié (Jour de l'an)" for c in new_year)


def test_a_range_of_days_and_a_bad_month() -> None:
    period = Period(date(2026, 11, 3), date(2026, 11, 17), PARIS)
    assert period.start == datetime(2026, 11, 3, tzinfo=PARIS)
    assert not period.is_month and Period.month("2026-02", PARIS).last == date(2026, 2, 28)
    for bad in ("2026-13", "novembre", "2026"):
        with pytest.raises(ValueError):
            Period.month(bad, PARIS)
    with pytest.raises(ValueError):
        Period(date(2026, 11, 17), date(2026, 11, 3), PARIS)


def test_small_counts_are_hidden(november: Month) -> None:
    shown = {t.name: t for t in report_tables(november.report, min_count=1)}
    hidden = {t.name: t for t in report_tables(november.report, min_count=20)}
    patients = [c.key for c in shown["communes"].columns if c.patients]
    for name in ("communes", "vehicules"):
        for key in patients:
            for exact, cell in zip(shown[name].column(key), hidden[name].column(key),
                                   strict=True):
                assert isinstance(exact, int)
                if 0 < exact < 20:
                    assert cell == Hidden(20) and str(cell) == "< 20"
                elif cell != exact:  # hidden beside another, or nothing hidden
                    assert cell == Hidden(20) and name == "communes"
    # A column hiding one commune's count hides another's: the total cannot give it back.
    for key in patients:
        cells = hidden["communes"].column(key)
        assert sum(isinstance(c, Hidden) for c in cells) != 1
    # Figures made from few patients are hidden with them; visits and hours never are.
    for row_shown, row_hidden in zip(shown["communes"].rows, hidden["communes"].rows,
                                     strict=True):
        by_key = dict(zip([c.key for c in shown["communes"].columns], row_hidden, strict=True))
        assert by_key["planned"] == row_shown[2]
        if isinstance(by_key["booked"], Hidden):
            assert by_key["no_show_rate"] in (Hidden(20), None)
    assert any(0 < w < 20 for w in shown["communes"].column("walk_in"))  # type: ignore[operator]


def test_a_bus_of_before_is_summed_up_from_its_ticket_events(tmp_path: Path) -> None:
    """No summary (a kiosk of before December 2026): the ticket events and the last queue
    state, through the real pipeline and store, give the visit's figures."""
    fleet = load_fleet(FLEET)
    store = Store(tmp_path / "ground.db")
    visit, t0 = "2026-11-02/noce/am", datetime(2026, 11, 2, 8, 40, tzinfo=PARIS)

    def at(minutes: float) -> datetime:
        return t0 + timedelta(minutes=minutes)

    messages: list[contract.VisitEvent | contract.TicketEvent | contract.QueueState] = [
        contract.VisitEvent(vehicle="perche-1", ts=at(0), event="arrival", visit=visit,
                            stop="noce", lat=48.3838, lon=0.6783)]
    for minutes, ticket, appointment, event in [
            (1, 1, "RDV-1", "checked_in"), (2, 2, None, "checked_in"),
            (3, 3, "RDV-2", "checked_in"), (10, 1, "RDV-1", "called"),
            (25, 1, "RDV-1", "seen"), (26, 2, None, "called"), (40, 2, None, "seen"),
            (41, 3, "RDV-2", "called"), (45, 3, "RDV-2", "absent")]:  # fmt: skip
        messages.append(contract.TicketEvent(vehicle="perche-1", ts=at(minutes), visit=visit,
                                             ticket=ticket, appointment=appointment,
                                             event=event))  # type: ignore[arg-type]
    messages.append(contract.QueueState(vehicle="perche-1", ts=at(46), visit=visit,
                                        open=False, waiting=0, booked_remaining=2,
                                        consult_min=15.0, wait_min=0))
    # At Bellême the geofence missed the arrival, but the kiosk checked a patient in.
    messages += [contract.TicketEvent(vehicle="perche-1", ts=at(150 + m), ticket=1,
                                      visit="2026-11-02/belleme/am", event=event)
                 for m, event in ((0, "checked_in"), (5, "called"), (20, "seen"))]
    Pipeline(store, LiveState(), {"perche-1"}).run(
        [Arrived(contract.topic("perche-1", contract.Channel(m.kind)), m.to_json(), m.ts)
         for m in messages])
    report = activity_report(fleet, store, Period(date(2026, 11, 2), date(2026, 11, 2),
                                                  PARIS), BAND)
    noce = next(c.activity for c in report.communes if c.commune == "Nocé")
    assert (noce.held, noce.unsummed, noce.booked, noce.checked_in_name, noce.walk_in,
            noce.seen, noce.absent, noce.no_show) == (1, 0, 4, 2, 1, 2, 1, 2)
    assert sorted(noce.waits_s) == [9 * 60, 24 * 60, 38 * 60]
    belleme = next(c.activity for c in report.communes if c.commune == "Bellême")
    assert (belleme.held, belleme.not_held, belleme.walk_in, belleme.seen) == (1, 0, 1, 1)
    assert belleme.delays_s == [] and belleme.on_site == timedelta(0)  # no arrival known
    store.close()
