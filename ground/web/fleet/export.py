"""The fridge's log as CSV, for the pharmacist's cold-chain records: every sample of every
probe over whole local days, flagged samples kept (empty value, their flag said)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from ground.web.fleet.views import Dashboard

MAX_CSV_DAYS = 366
CSV_FIRST_DAY, CSV_LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # the days one may ask for
Row = tuple[datetime, str, float | None, str | None]  # time, probe, °C, flag


def asked_days(start: date | None, end: date | None, today: date,
               default_days: int) -> tuple[date, date]:
    """The days a download or a page asks for, `from` and `to` inclusive (by default the
    last `default_days` up to today); ValueError (in French) when they cannot be.

    Days near the ends of the calendar have no UTC equivalent (0001-01-01 in Paris starts
    in year 0, 9999-12-31 ends in year 10000): none that old is kept anyway."""
    end = end or today
    start = start or end - timedelta(days=default_days - 1)
    if not (CSV_FIRST_DAY <= start <= end <= CSV_LAST_DAY) or (end - start).days >= MAX_CSV_DAYS:
        raise ValueError(f"« du » doit précéder « au », {MAX_CSV_DAYS} jours au plus, entre "
                         f"{CSV_FIRST_DAY} et {CSV_LAST_DAY} · from must be on or before to, at "
                         f"most {MAX_CSV_DAYS} days, between {CSV_FIRST_DAY} and {CSV_LAST_DAY}")
    return start, end


def local_span(start: date, end: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """From the start of `start` to the end of `end`, local days (23 or 25 hours at the
    clock changes)."""
    return (datetime.combine(start, time(0), zone),
            datetime.combine(end + timedelta(days=1), time(0), zone))


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
