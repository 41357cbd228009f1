"""What the public API and the commune page's live stream send (the /openapi.json schema)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from ground.precision import Said
from ground.views import VisitStatus


class VisitOut(BaseModel):
    visit: str = Field(description="Visit id, e.g. 2026-11-23/noce/am (also the iCalendar UID)")
    vehicle: str
    vehicle_name: str
    day: date
    day_label_fr: str = Field(description='e.g. "lundi 23 novembre"')
    half: str = Field(description="am, pm or day")
    half_label_fr: str = Field(description="matin, après-midi or journée")
    planned_arrive: datetime
    planned_depart: datetime
    status: VisitStatus
    label_fr: str = Field(description='French status label, e.g. "retard de 12 min"')
    label_en: str
    eta: datetime | None = Field(description="Predicted arrival, to the second (the model's "
                                 "own); null once arrived. What may be told of it: `eta_said`")
    eta_said: Said | None = Field(None, description=(
        "How precisely the arrival may be told, by the accuracy record of the last four weeks "
        "at this horizon: minute (\"14:07\"), around (rounded to 5 min, \"vers 14:05\"; also "
        "while the record is too small to know), range (\"entre 14:00 et 14:20\": 8 in 10 "
        "recorded arrivals fell inside), by (a range that starts now), soon (\"dans quelques "
        "minutes\"); null without an ETA"))
    eta_from: datetime | None = Field(None, description=(
        "The first minute told (equal to eta_to for one time; now for by and soon)"))
    eta_to: datetime | None = Field(None, description=(
        "The last minute told (a range's end; now plus 5 min for soon)"))
    eta_precision_min: int | None = Field(None, description=(
        "How far the told time is to be taken, in minutes: 1 (minute), 5 (around, soon), or "
        "the range's width"))
    etd: datetime | None = Field(description="Predicted departure; null once departed")
    delay_min: int
    arrived_at: datetime | None
    departed_at: datetime | None
    cancel_reason: str
    place: str = Field("", description="Where the bus parks for this visit")
    moved_from: datetime | None = Field(
        None, description="The planned arrival before the coordinator moved the visit")
    added: bool = Field(False, description="A one-off visit, outside the timetable")
    note: str = Field("", description="Why the visit was moved or added")


class DatedVisitOut(VisitOut):
    """A visit in the list of visits: with its commune."""

    stop: str
    commune: str
    insee: str


class QueueOut(BaseModel):
    waiting: int = Field(description="People waiting at the médicobus's check-in")
    wait_min: int = Field(description="Estimated wait, in minutes, for someone arriving now")
    paused: bool
    updated_at: datetime


class StopOut(BaseModel):
    stop: str
    commune: str
    insee: str
    place: str
    lat: float
    lon: float
    next_visit: VisitOut | None
    vehicle_presence: str | None = Field(description="online, offline, stale or null")
    last_seen: datetime | None
    last_seen_min: int | None = Field(description="Minutes since last_seen, when generated")
    link_lost: bool = Field(
        description="The bus of today's unfinished visit is offline or stale"
    )
    updated_at: datetime
    generated_at: datetime
    queue: QueueOut | None = Field(
        description="The waiting room, while the bus consults here (counts only)"
    )


class StopDetailOut(StopOut):
    upcoming: list[VisitOut]


class ErrorOut(BaseModel):
    detail: str


# --- the commune page ----------------------------------------------------------------------


class RowTexts(BaseModel):
    status: VisitStatus
    cells: list[str] = Field(description="date, half-day, hours, status (and why cancelled)")


class PageTexts(BaseModel):
    """The live parts of a commune's page, worded here: the page's script only places
    them, so the page with and without JavaScript says exactly the same."""

    texts: dict[str, str] = Field(
        description='Element id -> its text, e.g. "nv-eta": "Arrivée estimée : vers 08:45"; '
        "an empty text hides the element"
    )
    status: str = Field(description="The next visit's status (its colour); empty without one")
    rows: list[RowTexts] = Field(description="The table of upcoming visits")


class CommunePageOut(StopDetailOut):
    """What the commune page shows and its live stream sends: the API's view of the
    commune (same fields as /api/v1/stops/{insee}) with the page's texts."""

    page: PageTexts
