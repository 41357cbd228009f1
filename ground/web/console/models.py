"""What the coordinator's console sends and gets back: the changes to the tournée (one
body per kind, told apart by `kind`) and their answers, in /openapi.json."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Half = Literal["am", "pm", "day"]
Reason = Annotated[str, Field(description="Why (shown to the mairies and in the record)",
                              max_length=200)]  # fmt: skip


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CancelIn(_In):
    kind: Literal["cancel"]
    visit: str = Field(description="Visit id, e.g. 2027-03-09/noce/am")
    reason: Reason


class MoveIn(_In):
    kind: Literal["move"]
    visit: str
    day: date | None = Field(None, description="New date (default: the same)")
    arrive: time | None = None
    depart: time | None = None
    place: str | None = Field(None, description="Where the bus parks instead")
    lat: float | None = None
    lon: float | None = None
    reason: Reason


class AddIn(_In):
    kind: Literal["add"]
    vehicle: str
    stop: str
    day: date
    half: Half
    arrive: time
    depart: time
    reason: Reason


class PlaceIn(_In):
    kind: Literal["place"]
    stop: str
    day: date
    place: str
    lat: float
    lon: float
    reason: Reason


class EntryFields(_In):
    vehicle: str
    stop: str
    half: Half
    arrive: time
    depart: time
    day: str | None = Field(None, description='Every week on this day ("mardi"), or…')
    rrule: str | None = Field(None, description='…an RFC 5545 rule, "FREQ=WEEKLY;INTERVAL=2;'
                              'BYDAY=TU"')  # fmt: skip
    anchor: date | None = Field(None, description="The date the rule counts from")
    start: date | None = None
    end: date | None = None
    on_public_holidays: bool = False


class EntryIn(_In):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    kind: Literal["entry"]
    key: str | None = Field(None, description="The recurring entry changed (none: a new one)")
    entry: EntryFields | None = Field(None, description="What it becomes (none: it ends)")
    since: date = Field(alias="from", description="From this date on; before, as it was")
    reason: Reason


class UndoIn(_In):
    kind: Literal["undo"]
    change: int = Field(description="The id of the change to undo")
    reason: Reason


ChangeIn = Annotated[CancelIn | MoveIn | AddIn | PlaceIn | EntryIn | UndoIn,
                     Field(discriminator="kind")]  # fmt: skip


class SlotOut(BaseModel):
    day: date
    arrive: datetime
    depart: datetime
    place: str
    cancelled: bool
    reason: str


class DifferenceOut(BaseModel):
    visit: str
    kind: str = Field(description="cancelled, restored, moved, added or removed")
    vehicle: str
    stop: str
    commune: str
    insee: str
    before: SlotOut | None
    after: SlotOut | None


class ChangeOut(BaseModel):
    id: int
    kind: str
    kind_fr: str
    who: str
    at: datetime
    reason: str
    undone_by: int | None
    body: dict[str, object]


class ChangedOut(BaseModel):
    change: ChangeOut | None = Field(description="null: it changed nothing (saved twice)")
    differences: list[DifferenceOut]


class RefusedOut(BaseModel):
    field: str = Field(description="The form field at fault")
    detail_fr: str
    detail_en: str


class SessionOut(BaseModel):
    user: str
    role: str = Field(description="fleet, coordination or readonly")
    csrf: str = Field(description="Send it as the X-CSRF-Token header of a change")
