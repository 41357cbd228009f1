"""The report as a PDF in French (English beside it): HTML from a template, charts as SVG,
rendered by WeasyPrint. A4 landscape, the operator's name and logo at the top, the tables
split by subject so each fits the page's width."""

from __future__ import annotations

import base64
import logging
import mimetypes
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from weasyprint import HTML

from ground.reports.activity import ActivityReport
from ground.reports.charts import Series, bars
from ground.reports.tables import Cell, Column, Hidden, Table
from ground.web.format import FR, day_label_fr

TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger(__name__)
# WeasyPrint logs each step of each document at INFO: a line a step in the ground's log.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())

VISITS = ["planned", "held", "cancelled", "not_held", "hours_on_site", "delay_median",
          "delay_p90", "on_time"]
PATIENTS = ["booked", "checked_in_name", "checked_in_code", "walk_in", "checked_in", "seen",
            "absent", "no_show", "no_show_rate", "wait_median", "wait_p90", "unsummed"]
ROAD = ["km", "driving_h", "fridge_inside_h", "fridge_outside_h", "fridge_unknown_h",
        "excursions", "longest_min"]
# (table, French title, English title, the label column, the columns shown)
SECTIONS = [
    ("communes", "Visites par commune", "Visits per commune", "commune", VISITS),
    ("communes", "Patients par commune", "Patients per commune", "commune", PATIENTS),
    ("vehicules", "Visites par véhicule", "Visits per vehicle", "vehicle", VISITS),
    ("vehicules", "Patients par véhicule", "Patients per vehicle", "vehicle", PATIENTS),
    ("vehicules", "Route et chaîne du froid", "Road and cold chain", "vehicle", ROAD),
    ("annulations", "Visites annulées", "Cancelled visits", "day",
     ["commune", "vehicle", "half", "reason"]),
    ("excursions", "Excursions de température du réfrigérateur",
     "Fridge temperature excursions", "vehicle", ["start", "end", "minutes", "highest",
                                                  "lowest"]),
]


FIGURE = Column("figure", "", "", "float")  # how the summary writes its figures
COUNT = Column("count", "", "", "int")


@dataclass(frozen=True)
class Section:
    title_fr: str
    title_en: str
    columns: list[Column]
    rows: list[list[tuple[Column, str]]]


def cell_fr(cell: Cell, column: Column) -> str:
    """A cell as the PDF writes it: French decimal comma, no thousands separator (a
    figure stays one word for whoever copies it), "—" for no figure."""
    if cell is None:
        return "—"
    if isinstance(cell, Hidden | str):
        return str(cell)
    if isinstance(cell, datetime):
        return format_datetime(cell, "dd/MM/yyyy HH:mm", locale=FR)
    if isinstance(cell, date):
        return format_date(cell, "dd/MM/yyyy", locale=FR)
    if column.kind == "share":
        return format_percent(cell, "0.0 %", locale=FR)
    if isinstance(cell, int):
        return str(cell)
    return format_decimal(cell, "0.##", locale=FR)


def period_fr(report: ActivityReport) -> tuple[str, str]:
    p = report.period
    if p.is_month:
        return (format_date(p.first, "LLLL y", locale=FR),
                format_date(p.first, "LLLL y", locale="en"))
    return (f"du {day_label_fr(p.first)} {p.first.year} au {day_label_fr(p.last)} "
            f"{p.last.year}", f"{p.first.isoformat()} to {p.last.isoformat()}")


def _sections(tables: dict[str, Table]) -> list[Section]:
    sections = []
    for name, fr, en, label, keys in SECTIONS:
        table = tables[name]
        index = {c.key: i for i, c in enumerate(table.columns)}
        columns = [table.columns[index[k]] for k in (label, *keys)]
        rows = [[(c, cell_fr(row[index[c.key]], c)) for c in columns] for row in table.rows]
        sections.append(Section(fr, en, columns, rows))
    return sections


def _logo(path: Path | None) -> str | None:
    """The logo inlined as a data URI: the PDF never depends on a file or a network."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:  # a report without the logo, rather than no report
        log.warning("the report's logo cannot be read (%s): made without it", exc)
        return None
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def report_html(report: ActivityReport, tables: list[Table], operator: str,
                logo: Path | None, made: datetime, min_count: int) -> str:
    by_name = {t.name: t for t in tables}
    communes = by_name["communes"]
    labels = [str(c) for c in communes.column("commune")]
    charts = [
        bars("Visites prévues et tenues / Visits planned and held", labels, [
            Series("prévues / planned", "#9db7db", communes.column("planned")),
            Series("tenues / held", "#0b4f9c", communes.column("held"))]),
        bars("Patients vus et sans rendez-vous / Patients seen and walk-ins", labels, [
            Series("vus / seen", "#00695c", communes.column("seen")),
            Series("sans RDV / walk-ins", "#b35c00", communes.column("walk_in"))]),
    ]  # fmt: skip
    total = report.total
    km = sum(v.km for v in report.vehicles)
    summary = [
        ("visites prévues", "visits planned", str(total.planned)),
        ("visites tenues", "visits held", str(total.held)),
        ("visites annulées", "visits cancelled", str(total.cancelled)),
        ("heures sur place", "hours on site", cell_fr(round(total.hours_on_site, 2), FIGURE)),
        ("patients vus", "patients seen", cell_fr(_small(total.seen, min_count), COUNT)),
        ("km parcourus", "km driven", cell_fr(round(km, 1), FIGURE)),
        ("excursions du réfrigérateur", "fridge excursions", str(len(report.excursions))),
    ]  # fmt: skip
    fr, en = period_fr(report)
    zone = report.period.zone
    return _env.get_template("report.html").render(
        title=f"Rapport d'activité {fr} — {operator}", operator=operator, logo=_logo(logo),
        css=Markup((TEMPLATES / "report.css").read_text()),  # ours: not to be escaped
        period_fr=fr, period_en=en,
        first=f"{day_label_fr(report.period.first)} {report.period.first.year}",
        last=f"{day_label_fr(report.period.last)} {report.period.last.year}", zone=zone.key,
        made=f"{day_label_fr(made.astimezone(zone).date())} {made.astimezone(zone).year} à "
             f"{format_datetime(made, 'HH:mm', tzinfo=zone, locale=FR)}",
        made_en=f"{made.astimezone(zone):%Y-%m-%d %H:%M}",
        summary=summary, charts=charts, sections=_sections(by_name), min_count=min_count,
        band=[format_decimal(b, "0.#", locale=FR) for b in report.band])  # fmt: skip


def _small(count: int, min_count: int) -> int | Hidden:
    return Hidden(min_count) if 0 < count < min_count else count


def pdf_bytes(html: str) -> bytes:
    pdf = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    assert pdf is not None  # given no target, WeasyPrint returns the document
    return bytes(pdf)
