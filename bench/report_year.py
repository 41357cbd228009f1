"""The funders' report on a year of a 10-vehicle fleet: how long `activity_report` takes
against reading the same rows with bare SQL queries, in the same run.

    .venv/bin/python -m bench.report_year [--runs 3] [--vehicles 10]

A ground database is filled once with a year (2026) of each vehicle's traffic, stored
through `Store.record` as ingest stores it: positions every 30 s on the half hour's drive to
each visit and every 10 minutes while parked there (about 100 a day), an arrival, a
departure and a kiosk summary per visit held, and a fridge reading every 5 minutes. Then, per run:
- the baseline: for each vehicle, SELECT the year's positions, fridge samples, events and
  summaries it has, `fetchall()`, nothing else;
- the report: `activity_report` for the year (the tournée's visits of 365 days, the
  figures per commune and vehicle, km and driving time, the cold chain), then its tables.
Target: the report in a few seconds (≤ 10 s) on this machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from bench.common import FLEET, PARIS
from ground.fleet import Fleet, Vehicle, load_fleet, visits_on
from ground.reports.activity import Period, activity_report
from ground.reports.tables import report_tables
from ground.store import Store
from medicobus import contract
from medicobus.geo import offset

TARGET_S = 10.0
YEAR = 2026


def fleet_of(vehicles: int) -> Fleet:
    """The demo's timetable, one copy per vehicle."""
    base = load_fleet(FLEET)
    ids = [f"bus-{n:02d}" for n in range(1, vehicles + 1)]
    return base.model_copy(update={
        "vehicles": [Vehicle(id=i, name=f"Médicobus {i}") for i in ids],
        "timetable": [e.model_copy(update={"vehicle": i}) for i in ids
                      for e in base.timetable]})  # fmt: skip


def fill(store: Store, fleet: Fleet, seed: int = 1) -> int:
    """A year of each vehicle's messages into `store`; how many rows."""
    r = random.Random(seed)
    period = Period(date(YEAR, 1, 1), date(YEAR, 12, 31), PARIS)
    rows = 0
    for v in fleet.vehicles:
        batch: list[tuple[contract.Position | contract.VisitEvent | contract.Reading
                          | contract.VisitSummary, datetime]] = []
        for day in period.days():
            at = datetime.combine(day, datetime.min.time(), PARIS)
            for visit in visits_on(fleet, day, v.id):
                if visit.cancelled is not None:
                    continue
                s = visit.stop
                arrived = visit.arrive + timedelta(minutes=r.randrange(-5, 25))
                for i in range(60):  # half an hour's drive in, every 30 s
                    lat, lon = offset(s.lat, s.lon, (60 - i) * 400, 0)
                    batch.append((contract.Position(vehicle=v.id, lat=lat, lon=lon, speed=13.9,
                                                    ts=arrived - timedelta(seconds=30 * (60 - i))),
                                  arrived))  # fmt: skip
                departed = visit.depart
                t = arrived
                while t < departed:
                    batch.append((contract.Position(vehicle=v.id, ts=t, lat=s.lat, lon=s.lon,
                                                    speed=0.0), t))
                    t += timedelta(minutes=10)
                for event, when in (("arrival", arrived), ("departure", departed)):
                    batch.append((contract.VisitEvent(vehicle=v.id, ts=when, event=event,
                                                      visit=visit.id, stop=s.id, lat=s.lat,
                                                      lon=s.lon), when))  # fmt: skip
                batch.append((contract.VisitSummary(
                    vehicle=v.id, ts=departed, visit=visit.id, opened=arrived, closed=departed,
                    booked=6, checked_in_name=4, checked_in_code=1, walk_in=3, seen=8, absent=0,
                    no_show=1, waits_s=sorted(r.randrange(0, 3600) for _ in range(8))),
                    departed))  # fmt: skip
            for i in range(288):
                ts = at + timedelta(minutes=5 * i)
                batch.append((contract.Reading(vehicle=v.id, ts=ts, sensor="fridge",
                                               values={"temp_c": 4 + r.random() * 3}), ts))
            if len(batch) > 20_000:
                store.record(batch)
                rows += len(batch)
                batch = []
        store.record(batch)
        rows += len(batch)
    return rows


def bare_read(store: Store, fleet: Fleet, period: Period) -> int:
    """The same rows, read by plain SQL and nothing else done with them."""
    start, end = period.start.isoformat(), period.end.isoformat()
    n = 0
    db = store.db.conn
    for v in fleet.vehicles:
        for sql in ("SELECT ts, lat, lon, speed, acc FROM positions WHERE vehicle = ? "
                    "AND ts >= ? AND ts < ? ORDER BY ts",
                    "SELECT ts, value FROM samples WHERE vehicle = ? AND sensor = 'fridge' "
                    "AND quantity = 'temp_c' AND ts >= ? AND ts < ? ORDER BY ts",
                    "SELECT * FROM events WHERE vehicle = ? AND ts >= ? AND ts < ?",
                    "SELECT * FROM visit_summaries WHERE vehicle = ? AND ts >= ? AND ts < ?"):
            n += len(db.execute(sql, [v.id, start, end]).fetchall())
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_year", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vehicles", type=int, default=10)
    args = parser.parse_args(argv)
    fleet = fleet_of(args.vehicles)
    period = Period(date(YEAR, 1, 1), date(YEAR, 12, 31), PARIS)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        store = Store(Path(tmp) / "ground.db")
        t0 = time.monotonic()
        rows = fill(store, fleet)
        print(f"filled {rows:,} messages in {time.monotonic() - t0:.0f} s "
              f"({store.count('positions'):,} positions, {store.count('samples'):,} samples)")
        bare, made = [], []
        for _ in range(args.runs):
            t = time.monotonic()
            read = bare_read(store, fleet, period)
            bare.append(time.monotonic() - t)
            t = time.monotonic()
            report = activity_report(fleet, store, period, (2.0, 8.0))
            report_tables(report)
            made.append(time.monotonic() - t)
        b, m = statistics.median(bare), statistics.median(made)
        runs = ", ".join(f"{x:.2f}" for x in bare)
        print(f"bare SQL read of {read:,} rows: {b:.2f} s (runs {runs})")
        print(f"report of the year: {m:.2f} s (runs {', '.join(f'{x:.2f}' for x in made)}); "
              f"ratio {m / b:.1f}; {report.total.planned:,} visits; target <= {TARGET_S:.0f} s: "
              f"{'met' if m <= TARGET_S else 'NOT met'}")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
