"""The accuracy record: the ETAs the ground publishes, kept with when they were made, and
scored once the bus has arrived (ground/accuracy.py), as TransitClock keeps its table of
prediction accuracy.

The service notes what its board publishes once a minute (`note`). Kept: each visit's
prediction every minute while it is under 20 min ahead, every 5 min further ahead (a
thousand buses' day stays a few hundred thousand rows); scoring weighs the rows alike, so
the record's figures are of that sampling. Scored against the arrivals the buses reported.
The table is its own migration set (`ground_eta_record`) in the ground's database, on a
connection of its own at `synchronous=NORMAL`: a power cut may lose the last predictions
noted, which only thins the record.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from ground.accuracy import Prediction, Scored, score
from ground.store import Store
from medicobus.clock import Clock
from medicobus.storage import Database, Migrations, open_database, run_script

migrations = Migrations("ground_eta_record")
NEAR = timedelta(minutes=20)
EVERY_NEAR, EVERY_FAR = timedelta(minutes=1), timedelta(minutes=5)
KEEP = timedelta(days=400)  # a year of weeks to compare, and the same month last year


@migrations()
def m001_eta_predictions(db: Database) -> None:
    run_script(db, """
        CREATE TABLE IF NOT EXISTS eta_predictions (
            vehicle TEXT NOT NULL, visit TEXT NOT NULL, stop TEXT NOT NULL,
            made_at TEXT NOT NULL, arrive TEXT NOT NULL, PRIMARY KEY (visit, made_at));
        CREATE INDEX IF NOT EXISTS eta_predictions_made ON eta_predictions (made_at);
    """)


class EtaRecord:
    def __init__(self, path: Path | str, clock: Clock | None = None) -> None:
        self.db = open_database(path, migrations, synchronous="NORMAL", clock=clock)
        self._lock = threading.Lock()
        self._last: dict[str, datetime] = {}  # visit -> when its last prediction was kept

    def note(self, predictions: Sequence[Prediction]) -> int:
        """Keep the predictions due (by the sampling above); returns how many."""
        due = []
        for p in predictions:
            last = self._last.get(p.visit)
            every = EVERY_NEAR if p.arrive - p.made_at < NEAR else EVERY_FAR
            if last is None or p.made_at - last >= every - timedelta(seconds=1):
                due.append(p)
        if not due:
            return 0
        with self._lock:
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO eta_predictions VALUES (?, ?, ?, ?, ?)",
                [(p.vehicle, p.visit, p.stop, _utc(p.made_at), _utc(p.arrive)) for p in due])
        self._last.update((p.visit, p.made_at) for p in due)
        if len(self._last) > 10_000:  # yesterday's visits: one per visit is kept at most
            self._last = dict(sorted(self._last.items(), key=lambda kv: kv[1])[-5_000:])
        return len(due)

    def predictions(self, since: datetime, until: datetime) -> list[Prediction]:
        with self._lock:
            rows = self.db.execute(
                "SELECT vehicle, visit, stop, made_at, arrive FROM eta_predictions "
                "WHERE made_at >= ? AND made_at < ? ORDER BY made_at, visit",
                [_utc(since), _utc(until)]).fetchall()
        return [Prediction(datetime.fromisoformat(made), visit, datetime.fromisoformat(arrive),
                           vehicle, stop) for vehicle, visit, stop, made, arrive in rows]

    def scored(self, since: datetime, until: datetime, actual: dict[str, datetime]
               ) -> list[Scored]:
        """The predictions made from `since` to before `until`, scored against `actual`."""
        return score(self.predictions(since, until), actual)

    def purge(self, now: datetime) -> int:
        with self._lock:
            return self.db.execute("DELETE FROM eta_predictions WHERE made_at < ?",
                                   [_utc(now - KEEP)]).rowcount

    def close(self) -> None:
        self.db.close()


def recorded(record: EtaRecord, store: Store, since: datetime, until: datetime
             ) -> list[Scored]:
    """The ETAs published from `since` to before `until`, scored against the arrivals the
    buses reported (up to a day after, for a visit predicted late in the period)."""
    actual = {visit: ts for _, visit, ts in store.crossings("arrival", since,
                                                             until + timedelta(days=1))}
    return record.scored(since, until, actual)


def as_csv(scored: Sequence[Scored], zone: tzinfo) -> str:
    """One line per scored prediction, times in the fleet's zone (a spreadsheet's user
    reads local times); French headers first, as the dashboard's other exports."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["véhicule / vehicle", "arrêt / stop", "visite / visit",
                "faite à / made at", "annoncée / predicted", "réelle / actual",
                "horizon (min)", "écart (min) / error (min)", "dans la fenêtre / in window"])
    for s in scored:
        p = s.prediction
        window = s.in_window
        w.writerow([p.vehicle, p.stop, p.visit, _local(p.made_at, zone), _local(p.arrive, zone),
                    _local(s.actual, zone), f"{s.horizon_min:.1f}", f"{s.error_s / 60:.1f}",
                    "" if window is None else ("oui" if window else "non")])
    return out.getvalue()


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _local(t: datetime, zone: tzinfo) -> str:
    return t.astimezone(zone).isoformat(timespec="seconds")
