"""The report as funders get it, read back by real readers: the PDF rendered to images by
pdftoppm and its text read by pdftotext (poppler-utils), the XLSX by openpyxl, the CSVs by
Python's csv module; every figure compared with the report's tables, whose figures
tests/test_activity_report.py compares with the simulated month's truth."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image

from ground.reports.activity import Period, activity_report
from ground.reports.make import ReportSettings, file_name, render
from ground.reports.pdf import SECTIONS
from ground.reports.tables import Cell, Hidden, Table, report_tables
from tests.simulated_month import Month

pytestmark = pytest.mark.timeout(120)

MADE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
MAGENTA = (255, 0, 255)
LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60">'
        '<rect width="120" height="60" fill="#ff00ff"/></svg>')


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ReportSettings:
    logo = tmp_path_factory.mktemp("logo") / "logo.svg"
    logo.write_text(LOGO)
    return ReportSettings(operator="Communauté de communes du Perche", logo=logo)


@pytest.fixture(scope="module")
def tables(november: Month, settings: ReportSettings) -> dict[str, Table]:
    return {t.name: t for t in report_tables(november.report, settings.min_count)}


def test_the_tables_hold_the_reports_figures(november: Month) -> None:
    everything = {t.name: t for t in report_tables(november.report, min_count=1)}
    for table, rows, key in (("communes", november.report.communes, "commune"),
                             ("vehicules", november.report.vehicles, "vehicle")):
        t = everything[table]
        for row, figures in zip(t.rows, rows, strict=True):
            cells = dict(zip([c.key for c in t.columns], row, strict=True))
            a = figures.activity
            assert cells[key] in (getattr(figures, key, None), getattr(figures, "commune", None))
            assert (cells["planned"], cells["held"], cells["cancelled"], cells["seen"],
                    cells["walk_in"], cells["no_show"]) == (
                a.planned, a.held, a.cancelled, a.seen, a.walk_in, a.no_show)
            assert cells["hours_on_site"] == round(a.hours_on_site, 2)
            assert cells["wait_p90"] == (None if a.wait_p90_min is None
                                         else round(a.wait_p90_min, 1))
    by_vehicle = {r[0]: dict(zip([c.key for c in everything["vehicules"].columns], r,
                                 strict=True)) for r in everything["vehicules"].rows}
    for v in november.report.vehicles:
        assert by_vehicle[v.vehicle]["km"] == round(v.km, 1)
        assert by_vehicle[v.vehicle]["fridge_outside_h"] == round(
            v.fridge.outside.total_seconds() / 3600, 2)
        assert by_vehicle[v.vehicle]["excursions"] == len(v.fridge.excursions)


def _parsed(text: str) -> Cell:
    """A cell as the PDF or a CSV wrote it, read back as a value."""
    text = text.strip()
    if text in ("—", ""):
        return None
    if m := re.fullmatch(r"<\s*(\d+)", text):
        return Hidden(int(m[1]))
    if m := re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", text):
        return date(int(m[3]), int(m[2]), int(m[1]))
    if m := re.fullmatch(r"(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2})", text):
        return datetime(int(m[3]), int(m[2]), int(m[1]), int(m[4]), int(m[5]))
    if m := re.fullmatch(r"(-?\d+(?:,\d+)?)\s*%", text):
        return round(float(m[1].replace(",", ".")) / 100, 3)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+,\d+", text):
        return float(text.replace(",", "."))
    return text


def _same(read: Cell, cell: Cell) -> bool:
    if isinstance(cell, float) and isinstance(read, int | float):
        return abs(read - cell) < 1e-9
    if isinstance(cell, datetime) and isinstance(read, datetime):
        return read == cell.replace(second=0, microsecond=0)
    return read == cell


def test_the_pdf_reads_right(tmp_path: Path, november: Month, settings: ReportSettings,
                             tables: dict[str, Table]) -> None:
    pdf = tmp_path / file_name(november.report, "pdf")
    pdf.write_bytes(render(november.report, "pdf", settings, MADE))
    assert pdf.name == "rapport-activite-2026-11.pdf"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "Communauté de communes du Perche" in text
    assert "Rapport d'activité — novembre 2026" in text
    assert "établi le mardi 1er décembre 2026 à 09:00" in text  # 08:00 UTC, Paris time
    # Each section's rows, by their first cell, every figure in its column.
    headings = [f"{fr} / {en}" for _, fr, en, _, _ in SECTIONS]
    for (name, _, _, label, keys), heading in zip(SECTIONS, headings, strict=True):
        table = tables[name]
        body = text.split(heading, 1)[1]
        later = [h for h in headings[headings.index(heading) + 1:] if h in body]
        body = body.split(later[0], 1)[0] if later else body.split("Lecture / Reading")[0]
        index = {c.key: i for i, c in enumerate(table.columns)}
        lines = body.splitlines()
        for row in table.rows:
            first = _pdf_text(row[index[label]])
            (line,) = [x for x in lines if x.strip().startswith(first + "  ")
                       and all(_pdf_text(row[index[k]]) in x for k in keys
                               if isinstance(row[index[k]], str | date))]
            cells = re.split(r"\s{2,}", line.strip())
            assert len(cells) == 1 + len(keys), line
            for key, got in zip([label, *keys], cells, strict=True):
                assert _same(_parsed(got), row[index[key]]), (name, key, line)
    # Drawn: pages as images, the logo's colour at the top left of the first.
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")],
                   check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    first = Image.open(pages[0]).convert("RGB")
    width, height = first.size
    assert width > height  # landscape
    corner = [first.getpixel((x, y)) for x in range(width // 4) for y in range(height // 5)]
    assert sum(p == MAGENTA for p in corner) > 100
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True,
                          text=True).stdout
    assert re.search(r"Author:\s+Communauté de communes du Perche", info)


def _pdf_text(cell: Cell) -> str:
    if isinstance(cell, date) and not isinstance(cell, datetime):
        return cell.strftime("%d/%m/%Y")
    if isinstance(cell, datetime):
        return cell.strftime("%d/%m/%Y %H:%M")
    return str(cell)


def test_the_xlsx_reads_right(tmp_path: Path, november: Month, settings: ReportSettings,
                              tables: dict[str, Table]) -> None:
    path = tmp_path / "rapport.xlsx"
    path.write_bytes(render(november.report, "xlsx", settings, MADE))
    book = load_workbook(path)
    assert book.sheetnames == list(tables)
    assert book.properties.creator == settings.operator
    for name, table in tables.items():
        sheet = book[name]
        rows = list(sheet.iter_rows(values_only=True))
        assert list(rows[0]) == [c.heading for c in table.columns]
        assert len(rows) == 1 + len(table.rows)
        for read, row in zip(rows[1:], table.rows, strict=True):
            for got, cell, column in zip(read, row, table.columns, strict=True):
                if isinstance(cell, Hidden):
                    assert got == "< 5"
                elif isinstance(cell, date) and not isinstance(cell, datetime):
                    assert got == datetime.combine(cell, datetime.min.time())
                elif isinstance(cell, float):  # a whole float is stored as a whole number
                    assert isinstance(got, int | float) and got == cell, (name, column.key)
                else:
                    assert got == cell and type(got) is type(cell), (name, column.key)
    # Typed and formatted: a share is a number shown as a percentage.
    on_time = [c.key for c in tables["communes"].columns].index("on_time") + 1
    cell = book["communes"].cell(row=3, column=on_time)
    assert isinstance(cell.value, float) and cell.number_format == "0.0%"


def test_the_csvs_read_right(november: Month, settings: ReportSettings,
                             tables: dict[str, Table]) -> None:
    archive = zipfile.ZipFile(io.BytesIO(render(november.report, "csv", settings, MADE)))
    assert archive.namelist() == [f"{name}.csv" for name in tables]
    for name, table in tables.items():
        raw = archive.read(f"{name}.csv")
        assert raw.startswith(b"\xef\xbb\xbf")  # what French Excel needs to read UTF-8
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
        assert rows[0] == [c.heading for c in table.columns]
        for read, row in zip(rows[1:], table.rows, strict=True):
            for got, cell in zip(read, row, strict=True):
                if isinstance(cell, date):
                    assert got == (cell.strftime("%Y-%m-%d %H:%M")
                                   if isinstance(cell, datetime) else cell.isoformat())
                elif isinstance(cell, float):
                    assert float(got.replace(",", ".")) == cell
                else:
                    assert got == ("" if cell is None else str(cell))


def test_a_month_with_no_data_still_makes_every_format(november: Month,
                                                       settings: ReportSettings) -> None:
    empty = activity_report(november.fleet, november.store,
                            Period.month("2027-02", november.report.period.zone), (2.0, 8.0))
    for fmt in ("pdf", "xlsx", "csv"):
        assert render(empty, fmt, settings, MADE)  # type: ignore[arg-type]


def test_a_logo_that_cannot_be_read_leaves_it_out(tmp_path: Path, november: Month,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = ReportSettings(operator="CC du Perche", logo=tmp_path / "gone.png")
    pdf = render(november.report, "pdf", settings, MADE)
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, check=True,
                          capture_output=True).stdout.decode()
    assert "CC du Perche" in text and "logo cannot be read" in caplog.text
