"""Hand-made accuracy records in a real ground database: the ETAs the ground "published" for
the demo fleet's visits of the four weeks before a day (kept by the real EtaRecord), and the
arrivals the bus "reported" (real visit events in the real Store), with the errors a test
chooses."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from pathlib import Path

from ground.accuracy import Prediction
from ground.eta_record import EtaRecord
from ground.fleet import load_fleet, visits_on
from ground.store import Store
from medicobus import contract
from tests.harness import FLEET

OUTLIERS = 4  # visits at each end of the spread


def fill(database: Path, day: date, spread_s: tuple[float, float],
         ahead: timedelta = timedelta(minutes=30), weeks: int = 4) -> int:
    """For each visit of the demo fleet from `weeks` weeks before `day` (that day's excluded,
    the period's first day too: what is published on it may fall before the look-back) to
    the day before: one ETA published `ahead` of the arrival it announced, and the bus's
    real arrival. The first OUTLIERS visits came `spread_s[0]` seconds after the announced
    time (negative: before it), the last OUTLIERS `spread_s[1]`, the others on time: for 31
    to 40 visits (four weeks of the demo fleet: 33) and `spread_s[0]` ≤ 0 ≤ `spread_s[1]`,
    the nearest-rank 10th and 90th percentiles of the error are then exactly `spread_s`.
    Returns the number of visits."""
    fleet = load_fleet(FLEET)
    first = day - timedelta(weeks=weeks) + timedelta(days=1)
    visits = [v for n in range((day - first).days)
              for v in visits_on(fleet, first + timedelta(days=n))]
    record, store = EtaRecord(database), Store(database)
    try:
        for i, v in enumerate(visits):
            error = (spread_s[0] if i < OUTLIERS else
                     spread_s[1] if i >= len(visits) - OUTLIERS else 0.0)
            came = v.arrive.astimezone(UTC)  # on the timetable; the ETA was `error` off it
            announced = came - timedelta(seconds=error)
            record.note([Prediction(announced - ahead, v.id, announced, v.vehicle, v.stop.id)])
            store.record([(contract.VisitEvent(
                vehicle=v.vehicle, ts=came, event="arrival", visit=v.id, stop=v.stop.id,
                lat=v.stop.lat, lon=v.stop.lon), came)])
    finally:
        record.close()
        store.close()
    return len(visits)

