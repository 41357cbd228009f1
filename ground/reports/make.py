"""A report made whole: the activity of a period, in one of the formats funders use, with
the operator's name and logo from the configuration (`[reports]` in the ground's)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ground.alerts.rules import Rule, limits
from ground.fleet import Fleet
from ground.notify import Address, SmtpServer
from ground.reports.activity import FRIDGE, ActivityReport, Period, activity_report
from ground.reports.export import csv_text, xlsx_bytes
from ground.reports.pdf import pdf_bytes, period_fr, report_html
from ground.reports.tables import report_tables
from ground.reports.trips import Day, days
from ground.store import Store
from medicobus.clock import Clock

Format = Literal["pdf", "xlsx", "csv"]
MEDIA = {"pdf": "application/pdf", "csv": "application/zip",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class ReportMail(BaseModel):
    """`[reports.email]`: whom the monthly report goes to (ground/reports/mailing.py), and
    through which server."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    smtp: SmtpServer
    to: Annotated[list[Address], Field(min_length=1)]
    formats: Annotated[list[Format], Field(min_length=1)] = ["pdf", "xlsx"]


class ReportSettings(BaseModel):
    """`[reports]` in the ground's configuration."""

    model_config = ConfigDict(extra="forbid")
    operator: Annotated[str, Field(min_length=1, max_length=120)] = "Médicobus"
    logo: Path | None = None  # PNG, JPEG or SVG; relative to the configuration file
    # Counts of patients below this are written "< N" (docs/privacy.md).
    min_count: Annotated[int, Field(ge=1, le=100)] = 5
    email: ReportMail | None = None  # last month's report, on the first working day


def build(fleet: Fleet, store: Store, period: Period, rules: list[Rule]) -> ActivityReport:
    """The period's report, the fridge judged by the band the alert rules watch."""
    return activity_report(fleet, store, period, limits(rules, *FRIDGE))


def render(report: ActivityReport, fmt: Format, settings: ReportSettings,
           made: datetime) -> bytes:
    """The report as a file's bytes: a PDF, an XLSX, or a ZIP of one CSV per table."""
    tables = report_tables(report, settings.min_count)
    if fmt == "pdf":
        return pdf_bytes(report_html(report, tables, settings.operator, settings.logo, made,
                                     settings.min_count))
    if fmt == "xlsx":
        fr, _ = period_fr(report)
        return xlsx_bytes(tables, f"Rapport d'activité {fr}", settings.operator)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for table in tables:  # with the byte order mark French spreadsheets look for
            archive.writestr(f"{table.name}.csv", csv_text(table).encode("utf-8-sig"))
    return out.getvalue()


def file_name(report: ActivityReport, fmt: Format) -> str:
    p = report.period
    span = f"{p.first:%Y-%m}" if p.is_month else f"{p.first.isoformat()}_{p.last.isoformat()}"
    return f"rapport-activite-{span}.{'zip' if fmt == 'csv' else fmt}"


@dataclass(frozen=True)
class Made:
    report: ActivityReport
    name: str  # the file's
    media: str  # its MIME type
    content: bytes


class Reporter:
    """Makes reports on the ground's data: for the command, the dashboard and the monthly
    e-mail. `fleet` gives the tournée as it is now (the coordinator changes it)."""

    def __init__(self, fleet: Callable[[], Fleet], store: Store, rules: list[Rule],
                 settings: ReportSettings, clock: Clock) -> None:
        self.fleet, self.store, self.rules = fleet, store, rules
        self.settings, self.clock = settings, clock

    def make(self, period: Period, fmt: Format) -> Made:
        report = build(self.fleet(), self.store, period, self.rules)
        return Made(report, file_name(report, fmt), MEDIA[fmt],
                    render(report, fmt, self.settings, self.clock.now()))

    def days(self, vehicle: str, period: Period) -> list[Day]:
        """The vehicle's trips, stops and summary for each day of `period`."""
        return days(self.fleet(), self.store, vehicle, period)
