"""A report made whole: the activity of a period, in one of the formats funders use, with
the operator's name and logo from the configuration (`[reports]` in the ground's)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ground.alerts.rules import Rule, limits
from ground.fleet import Fleet
from ground.reports.activity import FRIDGE, ActivityReport, Period, activity_report
from ground.reports.export import csv_text, xlsx_bytes
from ground.reports.pdf import pdf_bytes, period_fr, report_html
from ground.reports.tables import report_tables
from ground.store import Store

Format = Literal["pdf", "xlsx", "csv"]
MEDIA = {"pdf": "application/pdf", "csv": "application/zip",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class ReportSettings(BaseModel):
    """`[reports]` in the ground's configuration."""

    model_config = ConfigDict(extra="forbid")
    operator: Annotated[str, Field(min_length=1, max_length=120)] = "Médicobus"
    logo: Path | None = None  # PNG, JPEG or SVG; relative to the configuration file
    # Counts of patients below this are written "< N" (docs/privacy.md).
    min_count: Annotated[int, Field(ge=1, le=100)] = 5


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
