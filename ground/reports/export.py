"""The report's tables as the files a funder opens in a spreadsheet: CSV and XLSX.

CSV as French spreadsheets read it: UTF-8 with a byte order mark (else Excel reads it as
Windows-1252), `;` between fields and a decimal comma; dates in ISO 8601, which no locale
misreads. One file per table (put together in a ZIP by `ground.reports.make`). XLSX
(openpyxl): one sheet per table, cells typed (numbers as numbers with their format, dates
as dates), a hidden small count as the text "< 5".
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from ground.reports.tables import Cell, Column, Hidden, Table


def csv_text(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([c.heading for c in table.columns])
    for row in table.rows:
        writer.writerow([_csv_cell(cell) for cell in row])
    return out.getvalue()


def _csv_cell(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return repr(cell).replace(".", ",")
    if isinstance(cell, datetime):
        return cell.strftime("%Y-%m-%d %H:%M")
    if isinstance(cell, date):
        return cell.isoformat()
    return str(cell)


FORMATS = {"float": "0.0#", "share": "0.0%", "date": "DD/MM/YYYY",
           "datetime": "DD/MM/YYYY HH:MM", "int": "0"}


def xlsx_bytes(tables: list[Table], title: str, operator: str) -> bytes:
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    book.properties.title = title
    book.properties.creator = operator
    for table in tables:
        sheet = book.create_sheet(table.name)
        sheet.append([c.heading for c in table.columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row in table.rows:
            sheet.append([_xlsx_cell(cell) for cell in row])
        for i, column in enumerate(table.columns, start=1):
            letter = get_column_letter(i)
            sheet.column_dimensions[letter].width = _width(column)
            for cell in sheet[letter][1:]:
                if not isinstance(cell.value, str):
                    cell.number_format = FORMATS.get(column.kind, "General")
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_cell(cell: Cell) -> object:
    return str(cell) if isinstance(cell, Hidden) else cell


def _width(column: Column) -> float:
    return {"text": 24.0, "datetime": 17.0, "date": 12.0}.get(column.kind, 13.0)
