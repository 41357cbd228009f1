"""What a commune's page and the public API show: plain, immutable views of visits.

No patient data ever reaches these: only the bus's timetable, status and predicted times.
All datetimes are aware and in the fleet's time zone (Europe/Paris by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class VisitStatus(StrEnum):
    PLANNED = "planned"  # prévu
    EN_ROUTE = "en_route"  # en route
    LATE = "late"  # retard de N min (not yet arrived, predicted late by 5 min or more)
    ARRIVED = "arrived"  # arrivé (parked, consultations not started yet)
    CONSULTING = "consulting"  # en consultation
    DEPARTED = "departed"  # reparti
    CANCELLED = "cancelled"  # annulé
    UNCONFIRMED = "unconfirmed"  # the bus went on to a later stop without an arrival here


STATUS_FR = {
    VisitStatus.PLANNED: "prévu",
    VisitStatus.EN_ROUTE: "en route",
    VisitStatus.LATE: "retard",
    VisitStatus.ARRIVED: "arrivé",
    VisitStatus.CONSULTING: "en consultation",
    VisitStatus.DEPARTED: "reparti",
    VisitStatus.CANCELLED: "annulé",
    VisitStatus.UNCONFIRMED: "passage non confirmé",
}
STATUS_EN = {
    VisitStatus.PLANNED: "scheduled",
    VisitStatus.EN_ROUTE: "on the way",
    VisitStatus.LATE: "late",
    VisitStatus.ARRIVED: "arrived",
    VisitStatus.CONSULTING: "consulting",
    VisitStatus.DEPARTED: "left",
    VisitStatus.CANCELLED: "cancelled",
    VisitStatus.UNCONFIRMED: "visit not confirmed",
}


def status_label_fr(status: VisitStatus, delay_min: int) -> str:
    if status is VisitStatus.LATE:
        return f"retard de {delay_min} min"
    return STATUS_FR[status]


def status_label_en(status: VisitStatus, delay_min: int) -> str:
    if status is VisitStatus.LATE:
        return f"{delay_min} min late"
    return STATUS_EN[status]


@dataclass(frozen=True)
class VisitView:
    visit: str  # e.g. "2026-11-23/noce/am"
    stop: str  # the stop's id, e.g. "noce": read it here, never from the visit id
    vehicle: str
    vehicle_name: str
    day: date
    half: str  # "am", "pm" or "day"
    planned_arrive: datetime
    planned_depart: datetime
    status: VisitStatus
    eta: datetime | None  # predicted arrival; None once arrived, departed or cancelled
    etd: datetime | None  # predicted departure; None once departed or cancelled
    delay_min: int  # predicted (or actual) arrival minus planned, in minutes, never negative
    arrived_at: datetime | None = None
    departed_at: datetime | None = None
    cancel_reason: str = ""
    place: str = ""  # where the bus parks for this visit (the stop's usual place, or the day's)
    moved_from: datetime | None = None  # the planned arrival before the coordinator moved it
    added: bool = False  # a one-off visit
    note: str = ""  # why it was moved or added

    @property
    def label_fr(self) -> str:
        return status_label_fr(self.status, self.delay_min)

    @property
    def label_en(self) -> str:
        return status_label_en(self.status, self.delay_min)


@dataclass(frozen=True)
class QueueView:
    """The waiting room while the bus is in the commune: counts only, never who."""

    waiting: int
    wait_min: int  # for someone arriving now
    paused: bool
    updated_at: datetime


@dataclass(frozen=True)
class TicketView:
    """A ticket followed on its holder's phone: its number and place, never who."""

    number: int
    ahead: int  # people called before it
    wait_min: int
    called: bool
    paused: bool
    ended: bool  # the session is over (closed, or the bus left): the page has expired
    commune: str
    insee: str
    updated_at: datetime


@dataclass(frozen=True)
class StopView:
    stop: str
    commune: str
    insee: str
    place: str
    lat: float
    lon: float
    next_visit: VisitView | None  # today's visit until the bus has left, else the next one
    upcoming: list[VisitView]  # the following visits, up to two weeks ahead
    vehicle_presence: str | None  # "online", "offline", "stale" or None: of next_visit's bus
    last_seen: datetime | None  # when that bus was last heard from
    updated_at: datetime
    queue: QueueView | None = None  # while the bus consults here and its kiosk is open
