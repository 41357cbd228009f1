"""The activity report as tables: what the CSV, XLSX and PDF all write, cell for cell.

Each figure is rounded here once (hours to the hundredth, minutes and km to the tenth,
shares to the thousandth), so the three formats say the same numbers. Headings are French
with the English beside them.

Small-count suppression (docs/privacy.md): a count of patients from 1 to `min_count` - 1
is written "< 5" (for a threshold of 5), and so are the figures made from few patients (a
median wait of three patients, a no-show rate of four bookings). Where a commune's column
would hide a single cell, the next smallest count of that column is hidden too, so that
the vehicle's total cannot give the hidden one back by subtraction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from ground.fleet import HALF_LABELS_FR
from ground.reports.activity import Activity, ActivityReport

Kind = Literal["int", "float", "share", "text", "date", "datetime"]


@dataclass(frozen=True)
class Hidden:
    """A small count, not shown."""

    below: int

    def __str__(self) -> str:
        return f"< {self.below}"


Cell = int | float | str | date | datetime | Hidden | None


@dataclass(frozen=True)
class Column:
    key: str
    fr: str
    en: str
    kind: Kind = "int"
    patients: bool = False  # a count of patients: suppressed when small

    @property
    def heading(self) -> str:
        return f"{self.fr} / {self.en}"


@dataclass(frozen=True)
class Table:
    name: str  # the sheet's and the CSV file's name
    title_fr: str
    title_en: str
    columns: list[Column]
    rows: list[list[Cell]]

    def column(self, key: str) -> list[Cell]:
        i = [c.key for c in self.columns].index(key)
        return [row[i] for row in self.rows]


def _r(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


# The visit figures of a commune or a vehicle: (column, how it is read from Activity).
VISIT_COLUMNS: list[tuple[Column, Callable[[Activity], Cell]]] = [
    (Column("planned", "Visites prévues", "Visits planned"), lambda a: a.planned),
    (Column("held", "Tenues", "Held"), lambda a: a.held),
    (Column("cancelled", "Annulées", "Cancelled"), lambda a: a.cancelled),
    (Column("not_held", "Non tenues", "Not held"), lambda a: a.not_held),
    (Column("hours_on_site", "Heures sur place", "Hours on site", "float"),
     lambda a: _r(a.hours_on_site, 2)),
    (Column("delay_median", "Retard médian (min)", "Median delay (min)", "float"),
     lambda a: _r(a.delay_median_min, 1)),
    (Column("delay_p90", "Retard p90 (min)", "Delay p90 (min)", "float"),
     lambda a: _r(a.delay_p90_min, 1)),
    (Column("on_time", "À l'heure (± 5 min)", "On time (5 min)", "share"),
     lambda a: _r(a.on_time_share, 3)),
    (Column("booked", "Rendez-vous", "Bookings", patients=True), lambda a: a.booked),
    (Column("checked_in_name", "Arrivées RDV (nom)", "Check-ins, booked (name)",
            patients=True), lambda a: a.checked_in_name),
    (Column("checked_in_code", "Arrivées RDV (code)", "Check-ins, booked (code)",
            patients=True), lambda a: a.checked_in_code),
    (Column("walk_in", "Sans rendez-vous", "Walk-ins", patients=True), lambda a: a.walk_in),
    (Column("checked_in", "Arrivées (total)", "Check-ins (total)", patients=True),
     lambda a: a.checked_in),
    (Column("seen", "Patients vus", "Patients seen", patients=True), lambda a: a.seen),
    (Column("absent", "Absents à l'appel", "Absent when called", patients=True),
     lambda a: a.absent),
    (Column("no_show", "RDV non honorés", "No-shows", patients=True), lambda a: a.no_show),
    (Column("no_show_rate", "Taux de RDV non honorés", "No-show rate", "share"),
     lambda a: _r(a.no_show_rate, 3)),
    (Column("wait_median", "Attente médiane (min)", "Median wait (min)", "float"),
     lambda a: _r(a.wait_median_min, 1)),
    (Column("wait_p90", "Attente p90 (min)", "Wait p90 (min)", "float"),
     lambda a: _r(a.wait_p90_min, 1)),
    (Column("unsummed", "Visites sans bilan de la borne", "Visits without kiosk summary"),
     lambda a: a.unsummed),
]


def report_tables(report: ActivityReport, min_count: int = 5) -> list[Table]:
    visit_columns = [c for c, _ in VISIT_COLUMNS]
    communes = Table(
        "communes", "Activité par commune", "Activity per commune",
        [Column("commune", "Commune", "Commune", "text"),
         Column("insee", "Code INSEE", "INSEE code", "text"), *visit_columns],
        [[c.commune, c.insee, *_visit_cells(c.activity, min_count)] for c in report.communes])
    _hide_complements(communes, min_count)
    vehicles = Table(
        "vehicules", "Activité par véhicule", "Activity per vehicle",
        [Column("vehicle", "Véhicule", "Vehicle", "text"),
         Column("name", "Nom", "Name", "text"), *visit_columns,
         Column("km", "Km parcourus", "Km driven", "float"),
         Column("driving_h", "Heures de conduite", "Driving hours", "float"),
         Column("fridge_inside_h", "Frigo 2–8 °C (h)", "Fridge within range (h)", "float"),
         Column("fridge_outside_h", "Frigo hors plage (h)", "Fridge out of range (h)",
                "float"),
         Column("fridge_unknown_h", "Frigo sans relevé (h)", "Fridge, no reading (h)",
                "float"),
         Column("excursions", "Excursions", "Excursions"),
         Column("longest_min", "Plus longue (min)", "Longest (min)", "float")],
        [[v.vehicle, v.name, *_visit_cells(v.activity, min_count), _r(v.km, 1),
          _hours(v.driving), _hours(v.fridge.inside),
          _hours(v.fridge.outside), _hours(v.fridge.unknown), len(v.fridge.excursions),
          _r(max((e.minutes for e in v.fridge.excursions), default=None), 1)]
         for v in report.vehicles])  # fmt: skip
    cancellations = Table(
        "annulations", "Visites annulées", "Cancelled visits",
        [Column("day", "Date", "Date", "date"), Column("commune", "Commune", "Commune", "text"),
         Column("vehicle", "Véhicule", "Vehicle", "text"),
         Column("half", "Demi-journée", "Half-day", "text"),
         Column("reason", "Motif", "Reason", "text")],
        [[c.day, c.commune, c.vehicle, HALF_LABELS_FR.get(c.half, c.half), c.reason or "—"]
         for c in report.cancellations])  # fmt: skip
    zone = report.period.zone
    excursions = Table(
        "excursions", "Excursions de température du réfrigérateur",
        "Fridge temperature excursions",
        [Column("vehicle", "Véhicule", "Vehicle", "text"),
         Column("start", "Début", "Start", "datetime"), Column("end", "Fin", "End", "datetime"),
         Column("minutes", "Durée (min)", "Length (min)", "float"),
         Column("highest", "Maximum (°C)", "Highest (°C)", "float"),
         Column("lowest", "Minimum (°C)", "Lowest (°C)", "float")],
        [[e.vehicle, e.start.astimezone(zone).replace(tzinfo=None),
          e.end.astimezone(zone).replace(tzinfo=None), _r(e.minutes, 1), e.highest, e.lowest]
         for e in report.excursions])  # fmt: skip
    return [communes, vehicles, cancellations, excursions]


def _hours(span: timedelta) -> float:
    return round(span.total_seconds() / 3600, 2)


def _visit_cells(a: Activity, min_count: int) -> list[Cell]:
    cells: list[Cell] = []
    for column, read in VISIT_COLUMNS:
        value = read(a)
        if column.patients and isinstance(value, int) and 0 < value < min_count:
            value = Hidden(min_count)
        cells.append(value)
    few = {"no_show_rate": 0 < a.booked < min_count or 0 < a.no_show < min_count,
           "wait_median": 0 < len(a.waits_s) < min_count,
           "wait_p90": 0 < len(a.waits_s) < min_count}
    return [Hidden(min_count) if few.get(c.key) and cell is not None else cell
            for (c, _), cell in zip(VISIT_COLUMNS, cells, strict=True)]


def _hide_complements(table: Table, min_count: int) -> None:
    """In each column of patients, one hidden cell hides the next smallest with it."""
    for i, column in enumerate(table.columns):
        if not column.patients:
            continue
        cells: Sequence[Cell] = [row[i] for row in table.rows]
        if sum(isinstance(c, Hidden) for c in cells) != 1:
            continue
        shown = [(c, n) for n, c in enumerate(cells) if isinstance(c, int) and c > 0]
        if shown:
            _, n = min(shown)
            table.rows[n][i] = Hidden(min_count)
