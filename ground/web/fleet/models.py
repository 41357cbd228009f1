"""What the dashboard's JSON API and live stream send (private: not in /openapi.json)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from ground.views import VisitStatus


class Display(BaseModel):
    text: str  # French, then English after " · " where useful
    state: str  # ok, warn, bad, old, unknown: the tile's colour


class Measure(BaseModel):
    value: float | None
    unit: str
    ts: datetime | None
    flag: str | None


class ProbeOut(Measure):
    probe: str
    in_band: bool | None


class PositionOut(BaseModel):
    lat: float
    lon: float
    ts: datetime
    speed_kmh: float | None


class StopNow(BaseModel):
    visit: str
    stop: str  # the stop's id
    commune: str
    insee: str
    status: VisitStatus
    label_fr: str
    label_en: str
    planned_arrive: datetime
    arrive: datetime
    depart: datetime
    delay_min: int
    at_stop: bool
    road_left_km: float | None = None  # on the leg's learned road (ground/roads.py)


class CodeOut(BaseModel):
    sensor: str
    code: str
    meaning_fr: str
    meaning_en: str
    known: bool
    since: datetime


class DataQualityOut(BaseModel):
    """What the ground set aside of this bus's data rather than believe it."""

    off_clock: int  # messages dated outside the ground's time window
    off_clock_last_s: float | None  # the last one's time minus its receipt, in seconds
    held_back: int  # positions implying an impossible speed, held back
    text_fr: str
    text_en: str


class AlertOut(BaseModel):
    id: int
    vehicle: str
    rule: str
    title_fr: str
    title_en: str
    severity: str
    opened_at: datetime
    value_at_open: float | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    last_value: float | None
    unit: str
    key: str  # what tells apart alerts of one rule: "engine:P0301"


class VehicleOut(BaseModel):
    id: str
    name: str
    presence: str
    last_seen: datetime | None
    position: PositionOut | None
    stop: StopNow | None
    fridge_band: tuple[float, float]
    fridge: list[ProbeOut]
    battery: dict[str, Measure]  # house battery: soc_pct, voltage_v, current_a, ttg_min
    engine: dict[str, Measure]  # fuel_pct, coolant_c, rpm, speed_kmh, battery_v
    alerts_open: int
    alerts_severity: str | None
    display: dict[str, Display]
    generated_at: datetime


class VehicleDetailOut(VehicleOut):
    open_alerts: list[AlertOut]
    alert_history: list[AlertOut]  # the newest HISTORY_ROWS (views.py) of the last 7 days
    alert_history_more: bool  # older ones left out (of the open ones too)
    codes: list[CodeOut]  # the first CODES_SHOWN (views.py)
    codes_total: int  # the codes set, all of them
    data_quality: DataQualityOut
