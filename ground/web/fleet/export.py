"""The fridge's log as CSV, for the pharmacist's cold-chain records: every sample of every
probe over whole local days, flagged samples kept (empty value, their flag said)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

from ground.web.fleet.views import Dashboard

MAX_CSV_DAYS = 366
CSV_FIRST_DAY, CSV_LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # the days one may ask for
Row = tuple[datetime, str, float | None, str | None]  # time, probe, °C, flag


def fridge_log(dash: Dashboard, vehicle: str, start: datetime, end: datetime) -> list[Row]:
    s = dash.board.state.get(vehicle)
    rows = []
    for q in dash.probes(s):
        for ts, value, flag in dash.store.series(vehicle, "fridge", q, start):
            if ts < end:
                rows.append((ts, q, value, flag))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def fridge_csv(rows: list[Row], zone: ZoneInfo) -> str:
    """time (ISO 8601 with its offset, local), probe, °C (empty when flagged), flag."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
    w.writerow(["time", "probe", "temp_c", "flag"])
    for ts, probe, value, flag in rows:
        w.writerow([ts.astimezone(zone).isoformat(timespec="seconds"), probe,
                    "" if value is None else f"{value:.2f}", flag or ""])  # fmt: skip
    return buf.getvalue()
