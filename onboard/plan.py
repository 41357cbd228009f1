"""The day's plan on the bus, kept on disk so arrival detection and check-in work offline
and after a restart: the last plan and appointments the ground sent, and which visits the
bus arrived at / left. Shared by the agent (which writes it) and the kiosk (which reads)."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from medicobus import contract
from medicobus.storage import Database, Migrations, open_database, run_script

migrations = Migrations("plan")


@migrations()
def m001_plan_appointments_progress(db: Database) -> None:
    run_script(db, """
CREATE TABLE IF NOT EXISTS plan (vehicle TEXT PRIMARY KEY, day TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS appointments (
                   vehicle TEXT PRIMARY KEY, day TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS progress (
                   visit TEXT, event TEXT, ts TEXT, PRIMARY KEY (visit, event));""")


@migrations()
def m002_parking(db: Database) -> None:
    """Where the bus really parks at each stop (onboard/geofence.py learns it)."""
    run_script(db, """
CREATE TABLE IF NOT EXISTS parking (
                   stop TEXT, lat REAL, lon REAL, seen TEXT, PRIMARY KEY (stop, lat, lon));""")


class PlanStore:
    def __init__(self, path: Path | str) -> None:
        self.db = open_database(path, migrations, synchronous="FULL")
        self._lock = threading.Lock()

    def save(self, plan: contract.Plan) -> None:
        with self._lock:
            self.db.table("plan").upsert(
                {"vehicle": plan.vehicle, "day": plan.day.isoformat(),
                 "body": plan.model_dump_json()}, pk="vehicle",
            )  # fmt: skip

    def load(self) -> contract.Plan | None:
        with self._lock:
            row = self.db.execute("SELECT body FROM plan LIMIT 1").fetchone()
        return contract.Plan.model_validate_json(row[0]) if row else None

    def save_appointments(self, appointments: contract.Appointments) -> None:
        with self._lock:
            self.db.table("appointments").upsert(
                {"vehicle": appointments.vehicle, "day": appointments.day.isoformat(),
                 "body": appointments.model_dump_json()}, pk="vehicle",
            )  # fmt: skip

    def load_appointments(self) -> contract.Appointments | None:
        with self._lock:
            row = self.db.execute("SELECT body FROM appointments LIMIT 1").fetchone()
        return contract.Appointments.model_validate_json(row[0]) if row else None

    def mark(self, visit: str, event: str, ts: datetime) -> None:
        with self._lock:
            self.db.table("progress").upsert({"visit": visit, "event": event, "ts": ts.isoformat()},
                                       pk=("visit", "event"))

    def progress(self) -> dict[tuple[str, str], datetime]:
        with self._lock:
            rows = self.db.execute("SELECT visit, event, ts FROM progress").fetchall()
        return {(v, e): datetime.fromisoformat(ts) for v, e, ts in rows}

    def park(self, stop: str, lat: float, lon: float, ts: datetime) -> None:
        with self._lock:
            self.db.table("parking").upsert(
                {"stop": stop, "lat": round(lat, 5), "lon": round(lon, 5),
                 "seen": ts.isoformat()}, pk=("stop", "lat", "lon"))

    def parking(self) -> dict[str, list[tuple[float, float]]]:
        """The places the bus parked at each stop, outside its fence."""
        with self._lock:
            rows = self.db.execute("SELECT stop, lat, lon FROM parking").fetchall()
        spots: dict[str, list[tuple[float, float]]] = {}
        for stop, lat, lon in rows:
            spots.setdefault(stop, []).append((lat, lon))
        return spots
