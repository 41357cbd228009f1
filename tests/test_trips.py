"""Trips, stops and the daily summary per vehicle (as Traccar reports them), against the
simulated month's drives: each drive one trip, the time between two drives one stop, named
after the commune it is at; the days add up to the month's km and driving time."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from ground.reports.export import csv_text
from ground.reports.trips import days, stops, trip_tables, trips
from tests.simulated_month import Month

pytestmark = pytest.mark.timeout(120)


def test_each_drive_is_a_trip_and_between_them_a_stop(november: Month) -> None:
    period = november.report.period
    for vehicle in ("perche-1", "perche-2"):
        drives = [d for d in november.sim.truth.drives if d[0] == vehicle]
        found = trips(vehicle, november.store.positions_between(vehicle, period.start,
                                                                period.end))
        assert [(t.start, t.end) for t in found] == [(s, e) for _, s, e, _ in drives]
        for t, (_, _, _, metres) in zip(found, drives, strict=True):
            assert t.metres == pytest.approx(metres, rel=1e-4)  # the wild fix left out
            assert t.driving == t.end - t.start and t.top_ms == pytest.approx(13.9)
        parked = stops(found, november.fleet.stops)
        assert [(p.start, p.end) for p in parked] == [
            (a[2], b[1]) for a, b in zip(drives, drives[1:], strict=False)]
        communes = {(s.lat, s.lon): s.commune for s in november.fleet.stops}
        assert all(p.place == communes.get((p.lat, p.lon), "") for p in parked)
        assert any(p.place == "Nocé" for p in parked) and any(p.place == "" for p in parked)


def test_the_days_add_up_to_the_month(november: Month) -> None:
    period = november.report.period
    for v in november.report.vehicles:
        month = days(november.fleet, november.store, v.vehicle, period)
        assert [d.day for d in month] == list(period.days())
        assert sum(d.km for d in month) == pytest.approx(v.km, rel=1e-6)
        assert sum((d.driving for d in month), timedelta(0)) == v.driving
        assert all(t.start.astimezone(period.zone).date() == d.day
                   for d in month for t in d.trips)
    perche2 = days(november.fleet, november.store, "perche-2", period)
    assert all(not d.trips for d in perche2 if d.day.day < 16)  # not in service yet


def test_as_csv(november: Month) -> None:
    period = november.report.period
    month = days(november.fleet, november.store, "perche-1", period)
    trips_t, stops_t, days_t = trip_tables(month, period)
    rows = list(csv.reader(io.StringIO(csv_text(days_t)), delimiter=";"))
    assert rows[0][:3] == ["Véhicule / Vehicle", "Jour / Day", "Trajets / Trips"]
    assert len(rows) == 1 + 30
    assert [int(r[2]) for r in rows[1:]] == [len(d.trips) for d in month]
    assert [float(r[4].replace(",", ".")) for r in rows[1:]] == [round(d.km, 2) for d in month]
    assert len(trips_t.rows) == sum(len(d.trips) for d in month)
    assert len(stops_t.rows) == sum(len(d.stops) for d in month)
