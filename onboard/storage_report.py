"""The bus's storage, reported to the ground as the readings of a sensor named "storage".

What a fleet manager must hear about the bus's disk travels as a `contract.Reading` (no
change to the contract): `free_mb` on the data directory's disk, how many positions and
other messages the outbox refused for want of space (since the agent started), and how
many database files are set aside as damaged (medicobus.storage). Its codes say what is
wrong now: `disk_full` while the outbox refuses positions, `set_aside_<file>` (outbox,
plan, kiosk) while a damaged file lies set aside in the data directory. The ground's
trouble-code rule opens an alert for each code, and closes it once the bus reports
without it: the disk has room again, someone took the set-aside file away.

Sent when the agent starts, when the codes change, when a count changes (at most once a
minute) and every ten minutes. The outbox keeps it even when the disk is full (it is not a
position).
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from medicobus import contract
from medicobus.clock import Clock
from medicobus.storage import set_aside
from onboard.outbox import EXPENDABLE, Outbox, OutboxFull

log = logging.getLogger(__name__)

SENSOR = "storage"
HEARTBEAT = timedelta(minutes=10)
MIN_GAP = timedelta(minutes=1)  # a count climbing while the disk is full: once a minute


class StorageReport:
    def __init__(self, outbox: Outbox, data_dir: Path, vehicle: str, clock: Clock) -> None:
        self.outbox = outbox
        self.data_dir = data_dir
        self.vehicle = vehicle
        self.clock = clock
        self._sent: tuple[list[str], tuple[float, ...]] | None = None
        self._sent_at: datetime | None = None

    def reading(self) -> contract.Reading:
        """The storage as it is now."""
        files = set_aside(self.data_dir)
        codes = {f"set_aside_{p.name.split('.')[0]}" for p in files}
        if self.outbox.full:
            codes.add("disk_full")
        refused = self.outbox.refused
        return contract.Reading(
            vehicle=self.vehicle, ts=self.clock.now(), sensor=SENSOR,
            values={
                "free_mb": round(shutil.disk_usage(self.data_dir).free / 2**20, 1),
                "refused_positions": float(sum(refused[k] for k in EXPENDABLE)),
                "refused_events": float(sum(n for k, n in refused.items()
                                            if k not in EXPENDABLE)),
                "set_aside_files": float(len(files)),
            },
            codes=sorted(codes),
        )  # fmt: skip

    def send_if_due(self) -> bool:
        """Put the report in the outbox if it is due; whether it was put."""
        reading = self.reading()
        now = reading.ts
        counts = tuple(v or 0.0 for k, v in reading.values.items() if k != "free_mb")
        said = (reading.codes or [], counts)
        last = self._sent_at
        due = (self._sent is None or said[0] != self._sent[0]
               or (said[1] != self._sent[1] and now - (last or now) >= MIN_GAP)
               or last is None or abs(now - last) >= HEARTBEAT)
        if not due:
            return False
        try:
            self.outbox.put(reading)
        except OutboxFull:
            return False  # logged by the outbox; tried again at the next step
        self._sent, self._sent_at = said, now
        if reading.codes:
            log.warning("storage: %s", ", ".join(reading.codes))
        return True
