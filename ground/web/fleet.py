"""The fleet manager's dashboard: every vehicle's health at a glance, a page per vehicle
with 24-hour charts, alerts and trouble codes, the fridge's log as CSV, a JSON API and a
live stream. Everything here requires a login (`ground.web.auth`); none of it is linked
from, or reachable through, the public mairie pages, and none of it is in the public
OpenAPI schema.

Texts are made once, here, in French with English beside them: the pages render them and
the live stream sends them (`display`), so the script only copies text into place.
Charts are inline SVG drawn on the server: no chart library, nothing fetched from outside,
and they print and read the same without JavaScript.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ground.alerts import Rule, limits
from ground.board import Board
from ground.eta import Forecast
from ground.state import VehicleState
from ground.views import VisitStatus, status_label_en, status_label_fr
from ground.web.auth import COOKIE, Auth, AuthSettings, Session
from ground.web.dtc import meaning
from medicobus.clock import Clock
from medicobus.geo import distance_m

HERE = Path(__file__).parent
REFRESH_S = 30.0  # the live stream sends at least this often: ages and delays move with time
OLD_READING = timedelta(minutes=30)  # an older last value is shown greyed, with its age
HISTORY = timedelta(days=7)  # alert history shown on a vehicle's page
MAX_CSV_DAYS = 366
GAP = timedelta(minutes=20)  # no sample for longer: the chart's line is broken, not bridged
SEVERITY_RANK = {"info": 1, "warning": 2, "major": 3, "critical": 4}
SEVERITY_FR = {"info": "info", "warning": "avertissement", "major": "majeure",
               "critical": "critique"}  # fmt: skip
FLAG_FR = {"nan": "valeur invalide", "infinite": "valeur infinie",
           "out_of_range": "hors limites physiques", "crc": "erreur de transmission (CRC)",
           "power_on_reset": "valeur de mise sous tension (85 °C)",
           "stale": "valeur figée"}  # fmt: skip
PRESENCE_FR = {"online": "en ligne", "offline": "hors ligne", "stale": "silencieux",
               "unknown": "jamais vu"}  # fmt: skip
PRESENCE_EN = {"online": "online", "offline": "offline", "stale": "stale",
               "unknown": "never seen"}  # fmt: skip
PROBE = re.compile(r"^temp(\d*)_c$")
# Display thresholds only; the limits that alarm (fridge band, battery low, engine hot) are
# the alert rules' (ground.alerts, from config), read by the Dashboard.
SOC_WARN = 50.0
FUEL_LOW, FUEL_WARN = 10.0, 20.0
COOLANT_WARM = 100.0


# --- what the dashboard depends on -------------------------------------------------------------


class AlertLike(Protocol):
    """ground.alerts.Alert, as read here."""

    @property
    def id(self) -> int: ...
    @property
    def vehicle(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def title_fr(self) -> str: ...
    @property
    def title_en(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def opened_at(self) -> datetime: ...
    @property
    def value_at_open(self) -> float | None: ...
    @property
    def acknowledged_by(self) -> str | None: ...
    @property
    def acknowledged_at(self) -> datetime | None: ...
    @property
    def closed_at(self) -> datetime | None: ...
    @property
    def last_value(self) -> float | None: ...


class AlertSource(Protocol):
    """ground.alerts.AlertEngine, as used here."""

    @property
    def rules(self) -> Sequence[Rule]: ...
    def open_alerts(self, vehicle: str | None = None) -> Sequence[AlertLike]: ...
    def history(self, vehicle: str, since: datetime) -> Sequence[AlertLike]: ...
    def acknowledge(self, alert_id: int, person: str) -> AlertLike: ...
    def get(self, alert_id: int) -> AlertLike: ...


class SeriesSource(Protocol):
    """ground.store.Store, as used here."""

    def series(self, vehicle: str, sensor: str, quantity: str,
               since: datetime) -> list[tuple[datetime, float | None, str | None]]: ...


Sample = tuple[datetime, float | None, str | None]


# --- API models ----------------------------------------------------------------------------


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


class CodeOut(BaseModel):
    sensor: str
    code: str
    meaning_fr: str
    meaning_en: str
    known: bool
    since: datetime


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
    alert_history: list[AlertOut]
    codes: list[CodeOut]


# --- formatting ----------------------------------------------------------------------------


def fr_num(value: float, digits: int = 1) -> str:
    """4.25 -> '4,3' (French decimal comma), -0.0 -> '0'."""
    text = f"{value:.{digits}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text.replace(".", ",")


def hm(moment: datetime | None, zone: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(zone).strftime("%H:%M")


def when(moment: datetime | None, zone: ZoneInfo, now: datetime) -> str:
    """'14:05' today, '21/11 14:05' another day: the manager reads today's first."""
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%d/%m %H:%M")


def age(moment: datetime, now: datetime) -> str:
    minutes = max(0, int((now - moment).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d}"
    return f"{minutes // (24 * 60)} j"


# --- the summary of one vehicle -------------------------------------------------------------


class Dashboard:
    """Builds what the pages, the API and the stream show, from the board, store and alerts."""

    def __init__(self, board: Board, store: SeriesSource, alerts: AlertSource | None,
                 clock: Clock) -> None:
        self.board = board
        self.store = store
        self.alerts = alerts
        self.clock = clock
        rules = [] if alerts is None else alerts.rules  # none: the default rules' limits
        self.band = limits(rules, "fridge", "temp_c")  # °C, the cold chain
        self.soc_low = limits(rules, "battery", "soc_pct")[0]
        self.coolant_hot = limits(rules, "engine", "coolant_c")[1]
        self.zone = board.fleet.zone
        self.names = {v.id: v.name for v in board.fleet.vehicles}

    def now(self) -> datetime:
        return self.clock.now()

    def at(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(microsecond=0)

    def local(self, moment: datetime | None) -> datetime | None:
        return None if moment is None else self.at(moment)

    def probes(self, s: VehicleState) -> list[str]:
        """The fridge's probes: temp_c, then temp2_c… as the sensor reports them."""
        found = {q for (sensor, q) in s.readings if sensor == "fridge" and PROBE.match(q)}
        found.add("temp_c")
        return sorted(found, key=lambda q: int(PROBE.match(q).group(1) or 1))  # type: ignore[union-attr]

    def _measure(self, s: VehicleState, sensor: str, quantity: str, unit: str) -> Measure:
        ts, value, flag = s.readings.get((sensor, quantity), (None, None, None))
        return Measure(value=value, unit=unit, ts=self.local(ts), flag=flag)

    def summary(self, vehicle: str) -> VehicleOut:
        return VehicleOut(**self._summary_fields(vehicle))

    def detail(self, vehicle: str) -> VehicleDetailOut:
        now = self.now()
        opened = self._open_alerts(vehicle)
        history = [] if self.alerts is None else self.alerts.history(vehicle, now - HISTORY)
        return VehicleDetailOut(
            **self._summary_fields(vehicle, opened),
            open_alerts=[self.alert_out(a) for a in opened],
            alert_history=sorted((self.alert_out(a) for a in history),
                                 key=lambda a: a.opened_at, reverse=True),  # fmt: skip
            codes=self.codes(vehicle),
        )

    def _open_alerts(self, vehicle: str) -> list[AlertLike]:
        if self.alerts is None:
            return []
        return [a for a in self.alerts.open_alerts(vehicle) if a.closed_at is None]

    def alert_out(self, a: AlertLike) -> AlertOut:
        return AlertOut(
            id=a.id, vehicle=a.vehicle, rule=a.rule, title_fr=a.title_fr, title_en=a.title_en,
            severity=a.severity, opened_at=self.at(a.opened_at),
            value_at_open=a.value_at_open, acknowledged_by=a.acknowledged_by,
            acknowledged_at=self.local(a.acknowledged_at), closed_at=self.local(a.closed_at),
            last_value=a.last_value, unit=getattr(a, "unit", ""),  # ground.alerts' extras
            key=getattr(a, "key", ""),
        )  # fmt: skip

    def codes(self, vehicle: str) -> list[CodeOut]:
        s = self.board.state.get(vehicle)
        out = []
        for sensor, (ts, codes) in sorted(s.codes.items()):
            for code in codes:
                if sensor == "engine":
                    m = meaning(code)
                    fr, en, known = m.fr, m.en, m.known
                else:  # the house battery's alarms carry their own names
                    fr, en, known = code.replace("_", " ").lower(), code, True
                out.append(CodeOut(sensor=sensor, code=code, meaning_fr=fr, meaning_en=en,
                                   known=known, since=self.at(ts)))  # fmt: skip
        return out

    def current_stop(self, vehicle: str) -> StopNow | None:
        """Where the bus is consulting now, else where it goes next today."""
        forecasts = self.board.forecasts(vehicle)
        at: Forecast | None = next(
            (f for f in forecasts if f.status in (VisitStatus.ARRIVED, VisitStatus.CONSULTING)),
            None)
        nxt = at or next((f for f in forecasts if f.status in (
            VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.LATE)), None)
        if nxt is None:
            return None
        v = nxt.visit
        return StopNow(
            visit=v.visit, commune=v.commune, insee=v.insee, status=nxt.status,
            label_fr=status_label_fr(nxt.status, nxt.delay_min),
            label_en=status_label_en(nxt.status, nxt.delay_min),
            planned_arrive=self.at(v.arrive), arrive=self.at(nxt.arrive),
            depart=self.at(nxt.depart), delay_min=nxt.delay_min, at_stop=at is not None,
        )

    def _summary_fields(self, vehicle: str,
                        opened: list[AlertLike] | None = None) -> dict[str, Any]:
        now = self.now()
        s = self.board.state.get(vehicle)
        presence = s.presence(now, self.board.stale_after)
        pos = s.position
        position = None if pos is None else PositionOut(
            lat=pos.lat, lon=pos.lon, ts=self.at(pos.ts),
            speed_kmh=None if pos.speed is None else round(pos.speed * 3.6, 1))
        stop = self.current_stop(vehicle)
        lo, hi = self.band
        fridge = []
        for q in self.probes(s):
            m = self._measure(s, "fridge", q, "°C")
            in_band = None if m.value is None else lo <= m.value <= hi
            fridge.append(ProbeOut(**m.model_dump(), probe=q, in_band=in_band))
        battery = {q: self._measure(s, "battery", q, u) for q, u in (
            ("soc_pct", "%"), ("voltage_v", "V"), ("current_a", "A"), ("ttg_min", "min"))}
        engine = {q: self._measure(s, "engine", q, u) for q, u in (
            ("fuel_pct", "%"), ("coolant_c", "°C"), ("rpm", "tr/min"), ("speed_kmh", "km/h"),
            ("battery_v", "V"))}
        opened = self._open_alerts(vehicle) if opened is None else opened
        worst = max((a.severity for a in opened), key=lambda x: SEVERITY_RANK.get(x, 0),
                    default=None)  # fmt: skip
        fields: dict[str, Any] = dict(
            id=vehicle, name=self.names.get(vehicle, vehicle), presence=presence,
            last_seen=self.local(s.last_seen), position=position, stop=stop,
            fridge_band=self.band, fridge=fridge, battery=battery, engine=engine,
            alerts_open=len(opened), alerts_severity=worst,
            generated_at=self.local(now),
        )  # fmt: skip
        fields["display"] = self._display(fields, s, now)
        return fields

    # -- the texts of the tiles ---------------------------------------------------------

    def _old(self, m: Measure, now: datetime) -> bool:
        return m.ts is not None and now - m.ts > OLD_READING

    def _display(self, f: dict[str, Any], s: VehicleState, now: datetime) -> dict[str, Display]:
        d: dict[str, Display] = {}
        presence = f["presence"]
        text = f"{PRESENCE_FR[presence]} · {PRESENCE_EN[presence]}"
        if presence != "online" and s.last_seen is not None:
            text += f" (dernier contact il y a {age(s.last_seen, now)})"
        d["presence"] = Display(text=text, state={"online": "ok", "stale": "warn",
                                                  "offline": "bad"}.get(presence, "unknown"))
        d["where"] = self._where(f, s, now)
        stop: StopNow | None = f["stop"]
        if stop is None:
            d["stop"] = Display(text="Plus d'arrêt prévu aujourd'hui · no more stops today",
                                state="unknown")
            d["delay"] = Display(text="—", state="unknown")
        else:
            if stop.at_stop:
                text = f"À {stop.commune} : {stop.label_fr} · {stop.label_en}, " \
                       f"départ estimé {hm(stop.depart, self.zone)}"  # fmt: skip
            else:
                text = (f"Prochain arrêt : {stop.commune}, arrivée estimée "
                        f"{hm(stop.arrive, self.zone)} "
                        f"(prévue {hm(stop.planned_arrive, self.zone)})")
            d["stop"] = Display(text=text, state="ok")
            if stop.delay_min >= 5:
                d["delay"] = Display(text=f"retard de {stop.delay_min} min · "
                                          f"{stop.delay_min} min late",
                                     state="bad" if stop.delay_min >= 15 else "warn")
            else:
                d["delay"] = Display(text="à l'heure · on time", state="ok")
        d["fridge"] = self._fridge(f["fridge"], now)
        d["battery"] = self._battery(f["battery"], now)
        d["fuel"] = self._level(f["engine"]["fuel_pct"], now, "%", 0, FUEL_LOW, FUEL_WARN)
        d["engine"] = self._engine(f["engine"], now)
        n, worst = f["alerts_open"], f["alerts_severity"]
        if self.alerts is None:
            d["alerts"] = Display(text="alertes non configurées · alerts not set up",
                                  state="unknown")
        elif n == 0:
            d["alerts"] = Display(text="aucune alerte · no alert", state="ok")
        else:
            word = "alerte ouverte" if n == 1 else "alertes ouvertes"
            rank = SEVERITY_RANK.get(worst or "", 0)
            d["alerts"] = Display(text=f"{n} {word} ({SEVERITY_FR.get(worst or '', worst)}) · "
                                       f"{n} open", state="bad" if rank >= 3 else "warn")
        d["updated"] = Display(text=f"mis à jour à {now.astimezone(self.zone):%H:%M:%S}",
                               state="ok")
        return d

    def _where(self, f: dict[str, Any], s: VehicleState, now: datetime) -> Display:
        stop: StopNow | None = f["stop"]
        pos = s.position
        if stop is not None and stop.at_stop:
            place = self.board.fleet.stop(stop.visit.split("/")[1]).place
            return Display(text=f"À {stop.commune}" + (f", {place}" if place else ""),
                           state="ok")
        if pos is None:
            return Display(text="position inconnue · position unknown", state="unknown")
        nearest = min(self.board.fleet.stops,
                      key=lambda st: distance_m(pos.lat, pos.lon, st.lat, st.lon))
        km = distance_m(pos.lat, pos.lon, nearest.lat, nearest.lon) / 1000
        text = f"à {fr_num(km)} km de {nearest.commune}"
        if stop is not None and stop.status in (VisitStatus.EN_ROUTE, VisitStatus.LATE):
            text = f"en route vers {stop.commune}, {text}"
        text += f" ({pos.lat:.4f}, {pos.lon:.4f}, il y a {age(pos.ts, now)})"
        return Display(text=text, state="old" if now - pos.ts > OLD_READING else "ok")

    def _flag(self, m: Measure) -> str:
        return FLAG_FR.get(m.flag or "", m.flag or "pas de mesure · no reading")

    def _fridge(self, probes: list[ProbeOut], now: datetime) -> Display:
        lo, hi = self.band
        band = f"plage {fr_num(lo, 0)}–{fr_num(hi, 0)} °C"
        parts, states = [], []
        for p in probes:
            if p.value is None:
                if p.ts is not None:  # a flagged sample: say why, do not show it as a value
                    parts.append(f"{p.probe} : {self._flag(p)}")
                    states.append("warn")
                continue
            word = "dans la plage" if p.in_band else "HORS PLAGE"
            label = "" if len(probes) == 1 else f"{p.probe} : "
            parts.append(f"{label}{fr_num(p.value)} °C ({word})")
            states.append("old" if self._old(p, now) else ("ok" if p.in_band else "bad"))
        if not parts:
            return Display(text=f"pas de mesure · no reading ({band})", state="unknown")
        state = "bad" if "bad" in states else "warn" if "warn" in states else \
            "old" if "old" in states else "ok"  # fmt: skip
        if state == "old":
            ts = max(p.ts for p in probes if p.ts is not None)
            parts.append(f"il y a {age(ts, now)}")
        return Display(text=" · ".join(parts) + f" — {band}", state=state)

    def _level(self, m: Measure, now: datetime, unit: str, digits: int, low: float,
               warn: float) -> Display:
        if m.value is None:
            return Display(text=self._flag(m), state="unknown")
        state = "bad" if m.value < low else "warn" if m.value < warn else "ok"
        text = f"{fr_num(m.value, digits)} {unit}"
        if self._old(m, now) and m.ts is not None:
            text += f" (il y a {age(m.ts, now)})"
            state = "old"
        return Display(text=text, state=state)

    def _battery(self, b: dict[str, Measure], now: datetime) -> Display:
        soc, volts = b["soc_pct"], b["voltage_v"]
        d = self._level(soc, now, "%", 0, self.soc_low, SOC_WARN)
        if volts.value is not None:
            extra = f"{fr_num(volts.value, 2)} V"
            d = Display(text=extra if soc.value is None else f"{d.text}, {extra}",
                        state="ok" if soc.value is None else d.state)
        return d

    def _engine(self, e: dict[str, Measure], now: datetime) -> Display:
        coolant, rpm = e["coolant_c"], e["rpm"]
        if coolant.value is None and rpm.value is None:
            return Display(text=self._flag(coolant), state="unknown")
        parts, state = [], "ok"
        if coolant.value is not None:
            parts.append(f"liquide de refroidissement {fr_num(coolant.value, 0)} °C")
            state = "bad" if coolant.value > self.coolant_hot else \
                "warn" if coolant.value > COOLANT_WARM else "ok"  # fmt: skip
        if rpm.value is not None:
            parts.append(f"{fr_num(rpm.value, 0)} tr/min")
        newest = max((m.ts for m in (coolant, rpm) if m.ts is not None), default=None)
        if newest is not None and now - newest > OLD_READING:
            parts.append(f"il y a {age(newest, now)}")
            state = "old" if state == "ok" else state
        return Display(text=", ".join(parts), state=state)

    # -- series -------------------------------------------------------------------------

    def fridge_log(self, vehicle: str, start: datetime, end: datetime) -> list[tuple[datetime, str, float | None, str | None]]:  # noqa: E501
        s = self.board.state.get(vehicle)
        rows = []
        for q in self.probes(s):
            for ts, value, flag in self.store.series(vehicle, "fridge", q, start):
                if ts < end:
                    rows.append((ts, q, value, flag))
        rows.sort(key=lambda r: (r[0], r[1]))
        return rows

    def charts(self, vehicle: str) -> list[Chart]:
        end = self.now()
        start = end - timedelta(hours=24)
        s = self.board.state.get(vehicle)
        fridge = [(q, self.store.series(vehicle, "fridge", q, start)) for q in self.probes(s)]
        soc = [("soc_pct", self.store.series(vehicle, "battery", "soc_pct", start))]
        coolant = [("coolant_c", self.store.series(vehicle, "engine", "coolant_c", start))]
        lo, hi = self.band
        charts = [
            ("chart-fridge", "Température du réfrigérateur", "Fridge temperature", "°C", fridge,
             dict(domain=(-2.0, 14.0), band=(lo, hi))),
            ("chart-soc", "Charge de la batterie cellule", "House battery charge", "%", soc,
             dict(domain=(0.0, 100.0), fixed=True, band=(self.soc_low, 100.0),
                  band_label=f"≥ {fr_num(self.soc_low, 0)} %")),
            ("chart-coolant", "Liquide de refroidissement du moteur", "Engine coolant", "°C",
             coolant, dict(domain=(0.0, 120.0), limit=self.coolant_hot)),
        ]
        return [Chart(fr, en, unit, svg_chart(cid, fr, en, unit, data, start, end, self.zone,
                                              **opts))  # type: ignore[arg-type]
                for cid, fr, en, unit, data, opts in charts]  # fmt: skip


@dataclass(frozen=True)
class Chart:
    title_fr: str
    title_en: str
    unit: str
    svg: Markup


# --- charts: inline SVG ----------------------------------------------------------------------

W, H = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 28
COLOURS = ["#0b4f9c", "#8a3ffc", "#b35c00", "#00695c"]


def _thin(points: list[tuple[datetime, float | None, str | None]], start: datetime,
          end: datetime, columns: int) -> list[tuple[datetime, float | None, str | None]]:
    """At most a min and a max per pixel column, in time order: excursions survive."""
    if len(points) <= 2 * columns:
        return points
    span = (end - start).total_seconds() or 1.0
    buckets: dict[int, list[tuple[datetime, float | None, str | None]]] = {}
    for p in points:
        buckets.setdefault(int((p[0] - start).total_seconds() / span * columns), []).append(p)
    out: list[tuple[datetime, float | None, str | None]] = []
    for key in sorted(buckets):
        group = buckets[key]
        valued = [p for p in group if p[1] is not None]
        if len(valued) < len(group):
            out.append(next(p for p in group if p[1] is None))  # keep the break
        if valued:
            lo = min(valued, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
            hi = max(valued, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
            out.extend(sorted({lo, hi}, key=lambda p: p[0]))
    return out


def _nice_step(span: float) -> float:
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def svg_chart(chart_id: str, title_fr: str, title_en: str, unit: str,
              series: list[tuple[str, list[Sample]]], start: datetime, end: datetime,
              zone: ZoneInfo, *, domain: tuple[float, float], fixed: bool = False,
              band: tuple[float, float] | None = None, band_label: str | None = None,
              limit: float | None = None) -> Markup:
    """A line chart of the last 24 h, with the band to stay in shaded and a limit dashed.

    Flagged samples break the line; so do gaps of more than 20 min (a bus switched off
    overnight is not "flat"). The <desc> says the figures, for screen readers.
    """
    values = [v for _, pts in series for _, v, _ in pts if v is not None]
    lo, hi = domain
    if values and not fixed:
        lo, hi = min(lo, math.floor(min(values))), max(hi, math.ceil(max(values)))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = (end - start).total_seconds()

    def x(t: datetime) -> float:
        return LEFT + max(0.0, min(1.0, (t - start).total_seconds() / span)) * pw

    def y(v: float) -> float:
        return TOP + (1 - (v - lo) / ((hi - lo) or 1)) * ph

    e = escape
    parts = [
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{e(title_fr)} ({e(unit)}), 24 h · {e(title_en)}</title>',
    ]
    desc = _describe(series, unit, band, zone)
    parts.append(f'<desc id="{chart_id}-d">{e(desc)}</desc>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="plot"/>')
    if band is not None:
        b_lo, b_hi = max(band[0], lo), min(band[1], hi)
        parts.append(f'<rect class="band" x="{LEFT}" y="{y(b_hi):.1f}" width="{pw}" '
                     f'height="{max(0.0, y(b_lo) - y(b_hi)):.1f}"/>')
        label = band_label or f"{fr_num(band[0], 0)}–{fr_num(band[1], 0)} {unit}"
        parts.append(f'<text class="band-label" x="{W - RIGHT - 4}" y="{y(b_hi) + 14:.1f}" '
                     f'text-anchor="end">{e(label)}</text>')
    step = _nice_step(hi - lo)
    tick = math.ceil(lo / step) * step
    while tick <= hi + 1e-9:
        ty = y(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{ty:.1f}" '
                     f'y2="{ty:.1f}"/><text class="axis" x="{LEFT - 6}" y="{ty + 4:.1f}" '
                     f'text-anchor="end">{e(fr_num(tick, 0 if step >= 1 else 1))}</text>')
        tick += step
    # hour marks every 3 h, local time
    local_start = start.astimezone(zone)
    mark = datetime.combine(local_start.date(), time(local_start.hour), zone)
    mark += timedelta(hours=(3 - local_start.hour % 3) % 3 or (3 if mark < local_start else 0))
    while mark <= end:
        tx = x(mark)
        parts.append(f'<line class="grid" x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP}" '
                     f'y2="{TOP + ph}"/><text class="axis" x="{tx:.1f}" y="{H - 8}" '
                     f'text-anchor="middle">{mark.astimezone(zone):%H}h</text>')
        mark += timedelta(hours=3)
    if limit is not None and lo <= limit <= hi:
        parts.append(f'<line class="limit" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(limit):.1f}" '
                     f'y2="{y(limit):.1f}"/>')
    for i, (name, points) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        runs: list[list[str]] = [[]]
        previous: datetime | None = None
        outside: list[tuple[float, float]] = []
        for ts, v, _ in _thin(points, start, end, pw):
            if v is None or (previous is not None and ts - previous > GAP):
                runs.append([])
            if v is not None:
                runs[-1].append(f"{x(ts):.1f},{y(v):.1f}")
                if band is not None and not band[0] <= v <= band[1] and len(outside) < 400:
                    outside.append((x(ts), y(v)))
            previous = ts
        for run in runs:
            if len(run) == 1:  # a lone sample is a dot, not an invisible line
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="point" cx="{cx}" cy="{cy}" r="2.5" '
                             f'fill="{colour}"/>')
            elif run:
                parts.append(f'<polyline class="line" data-series="{e(name)}" '
                             f'stroke="{colour}" points="{" ".join(run)}"/>')
        for ox, oy in outside:
            parts.append(f'<circle class="out" cx="{ox:.1f}" cy="{oy:.1f}" r="3"/>')
        if len(series) > 1:
            parts.append(f'<text class="legend" x="{LEFT + 8 + 90 * i}" y="{TOP + 14}" '
                         f'fill="{colour}">{e(name)}</text>')
    if not values:
        parts.append(f'<text class="empty" x="{LEFT + pw / 2}" y="{TOP + ph / 2}" '
                     f'text-anchor="middle">Aucune mesure sur 24 h · no data in 24 h</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _describe(series: list[tuple[str, list[Sample]]], unit: str,
              band: tuple[float, float] | None, zone: ZoneInfo) -> str:
    texts = []
    for name, points in series:
        valued = [(t, v) for t, v, _ in points if v is not None]
        if not valued:
            continue
        t_last, v_last = valued[-1]
        vs = [v for _, v in valued]
        text = (f"{name} : dernière valeur {fr_num(v_last)} {unit} à {hm(t_last, zone)}, "
                f"min {fr_num(min(vs))}, max {fr_num(max(vs))}")
        if band is not None:
            out = sum(1 for v in vs if not band[0] <= v <= band[1])
            text += f", {out} mesure(s) hors plage"
        texts.append(text)
    return " ; ".join(texts) or "Aucune mesure sur 24 h"


# --- the router ----------------------------------------------------------------------------


def fridge_csv(rows: list[tuple[datetime, str, float | None, str | None]],
               zone: ZoneInfo) -> str:
    """time (ISO 8601 with its offset, local), probe, °C (empty when flagged), flag."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
    w.writerow(["time", "probe", "temp_c", "flag"])
    for ts, probe, value, flag in rows:
        w.writerow([ts.astimezone(zone).isoformat(timespec="seconds"), probe,
                    "" if value is None else f"{value:.2f}", flag or ""])  # fmt: skip
    return buf.getvalue()


def _safe_next(target: str | None) -> str:
    """Only back into the dashboard: never an open redirect to another site."""
    if not target:
        return "/fleet/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/fleet/") or "\\" in target:
        return "/fleet/"
    return target


def fleet_router(board: Board, store: SeriesSource, alerts: AlertSource | None,
                 users_settings: AuthSettings, *, clock: Clock | None = None,
                 session_clock: Clock | None = None, refresh_s: float = REFRESH_S,
                 auth: Auth | None = None) -> APIRouter:
    """The dashboard's routes, to mount with `app.include_router(..., prefix="/fleet")`.

    `clock` is the data's time (the board's, accelerated in the demo); `session_clock`
    times sessions and login slowdown in real time (default: the system clock).
    """
    dash = Dashboard(board, store, alerts, clock or board.clock)
    auth = auth or Auth(users_settings, session_clock)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(when=lambda m: when(m, dash.zone, dash.now()), fr_num=fr_num,
                                 severity_fr=SEVERITY_FR)  # fmt: skip
    router = APIRouter(include_in_schema=False)  # private: not in the public /openapi.json

    # -- sessions -----------------------------------------------------------------------

    def secure(request: Request) -> bool:
        configured = users_settings.cookie_secure
        return request.url.scheme == "https" if configured is None else configured

    def finish(request: Request, response: Response, session: Session | None = None,
               touch: bool = True) -> Response:
        """Private pages: never cached (not even the back button after logout), never
        framed; the session's idle timer restarts on what a person did (not the stream)."""
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if session is not None and touch:
            response.set_cookie(COOKIE, auth.refresh(session), max_age=auth.max_age(session),
                                path="/fleet", secure=secure(request), httponly=True,
                                samesite="strict")  # fmt: skip
        return response

    def session_of(request: Request) -> Session | None:
        return auth.read(request.cookies.get(COOKIE))

    def page_session(request: Request) -> Session:
        s = session_of(request)
        if s is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = "/fleet/"
            raise HTTPException(303, "login required", headers={
                "Location": f"/fleet/login?next={quote(target, safe='/')}",
                "Cache-Control": "no-store"})
        return s

    def api_session(request: Request) -> Session:
        s = session_of(request)
        if s is None:
            raise HTTPException(401, "login required", headers={
                "WWW-Authenticate": 'Cookie realm="medicobus-fleet"',
                "Cache-Control": "no-store"})
        return s

    # Plain defaults, not Annotated aliases: with postponed annotations FastAPI cannot
    # resolve a name local to this function.
    page_user = Depends(page_session)
    api_user = Depends(api_session)

    def page(request: Request, name: str, session: Session | None, status_code: int = 200,
             touch: bool = True, **ctx: Any) -> Response:
        ctx.update(user=session.user if session else None,
                   csrf=session.csrf if session else "")  # fmt: skip
        response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
        return finish(request, response, session, touch)

    def same_origin(request: Request) -> bool:
        """Browsers send Origin on POST: refuse another site's (CSRF, login CSRF)."""
        origin = request.headers.get("origin")
        if origin is None:  # not a browser, or an old one: SameSite=Strict still holds
            return True
        return urlsplit(origin).netloc == request.headers.get("host", "")

    async def form(request: Request) -> dict[str, str]:
        # Parsed here: a urlencoded form needs no python-multipart dependency.
        body = await request.body()
        if len(body) > 8192:
            return {}
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def known(vehicle: str) -> bool:
        return vehicle in dash.names

    def not_found(request: Request, session: Session) -> Response:
        return page(request, "fleet_error.html", session, status_code=404,
                    title_fr="Véhicule inconnu", title_en="Unknown vehicle",
                    message="Ce véhicule n'existe pas dans la flotte configurée.")

    # -- login / logout -----------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None, bye: int = 0) -> Response:
        s = session_of(request)
        if s is not None:
            return finish(request, RedirectResponse(_safe_next(next), 303), s)
        return page(request, "fleet_login.html", None, next=_safe_next(next), error=None,
                    bye=bool(bye))

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        if not same_origin(request):
            return finish(request, JSONResponse({"detail": "cross-site request"}, 403))
        data = await form(request)
        target = _safe_next(data.get("next"))
        address = request.client.host if request.client else "?"
        wait = auth.wait_before_login(address)
        if wait > timedelta(0):
            seconds = math.ceil(wait.total_seconds())
            response = page(request, "fleet_login.html", None, status_code=429, next=target,
                            error=f"Trop de tentatives : réessayez dans {seconds} s. "
                                  f"· Too many attempts: try again in {seconds} s.")  # fmt: skip
            response.headers["Retry-After"] = str(seconds)
            return response
        name, password = data.get("name", "")[:64], data.get("password", "")[:1024]
        # scrypt takes tens of milliseconds: off the event loop.
        if not await run_in_threadpool(auth.check_password, name, password):
            auth.failed(address)
            return page(request, "fleet_login.html", None, status_code=401, next=target,
                        error="Identifiant ou mot de passe incorrect. "
                              "· Wrong user name or password.")  # fmt: skip
        auth.succeeded(address)
        session = auth.read(auth.issue(name))
        assert session is not None
        return finish(request, RedirectResponse(target, 303), session)

    @router.post("/logout")
    async def logout(request: Request, session: Session = page_user) -> Response:
        data = await form(request)
        if not same_origin(request) or not auth.check_csrf(session, data.get("csrf")):
            return finish(request, JSONResponse({"detail": "invalid CSRF token"}, 403))
        auth.revoke(session)
        response = RedirectResponse("/fleet/login?bye=1", 303)
        response.delete_cookie(COOKIE, path="/fleet", secure=secure(request), httponly=True,
                               samesite="strict")  # fmt: skip
        return finish(request, response)

    # -- pages --------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request, session: Session = page_user) -> Response:
        vehicles = [dash.summary(v) for v in dash.names]
        return page(request, "fleet_index.html", session, vehicles=vehicles)

    @router.get("/vehicles/{vehicle}", response_class=HTMLResponse)
    def vehicle_page(request: Request, vehicle: str, session: Session = page_user) -> Response:
        if not known(vehicle):
            return not_found(request, session)
        today = dash.now().astimezone(dash.zone).date()
        return page(request, "fleet_vehicle.html", session, v=dash.detail(vehicle),
                    charts=dash.charts(vehicle), today=today,
                    week_ago=today - timedelta(days=6))  # fmt: skip

    @router.get("/vehicles/{vehicle}/panel", response_class=HTMLResponse)
    def vehicle_panel(request: Request, vehicle: str, session: Session = api_user) -> Response:
        """The live part of a vehicle's page, fetched again by the script on a change.
        Automatic: it does not count as activity for the idle timeout."""
        if not known(vehicle):
            return finish(request, JSONResponse({"detail": "unknown vehicle"}, 404))
        return page(request, "fleet_panel.html", session, touch=False, v=dash.detail(vehicle),
                    charts=dash.charts(vehicle))  # fmt: skip

    @router.get("/vehicles/{vehicle}/fridge.csv")
    def fridge_export(
        request: Request, vehicle: str, session: Session = page_user,
        start: Annotated[date | None, Query(alias="from")] = None,
        end: Annotated[date | None, Query(alias="to")] = None,
    ) -> Response:
        if not known(vehicle):
            return not_found(request, session)
        today = dash.now().astimezone(dash.zone).date()
        end = end or today
        start = start or end - timedelta(days=6)
        if start > end or (end - start).days >= MAX_CSV_DAYS:
            return finish(request, JSONResponse(
                {"detail": f"from must be on or before to, at most {MAX_CSV_DAYS} days"}, 422),
                session)
        t0 = datetime.combine(start, time(0), dash.zone)
        t1 = datetime.combine(end + timedelta(days=1), time(0), dash.zone)
        text = fridge_csv(dash.fridge_log(vehicle, t0, t1), dash.zone)
        name = f"frigo-{vehicle}-{start.isoformat()}_{end.isoformat()}.csv"
        return finish(request, Response(text, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"'}), session)

    @router.post("/vehicles/{vehicle}/alerts/{alert_id}/acknowledge")
    async def acknowledge(request: Request, vehicle: str, alert_id: int,
                          session: Session = page_user) -> Response:
        data = await form(request)
        if not same_origin(request) or not auth.check_csrf(session, data.get("csrf")):
            return page(request, "fleet_error.html", session, status_code=403,
                        title_fr="Action refusée", title_en="Action refused",
                        message="Le jeton de sécurité du formulaire est absent ou périmé : "
                                "rechargez la page et recommencez.")  # fmt: skip
        if alerts is None or not known(vehicle):
            return not_found(request, session)
        try:
            alert = await run_in_threadpool(alerts.get, alert_id)
            if alert.vehicle != vehicle:
                raise KeyError(alert_id)
            await run_in_threadpool(alerts.acknowledge, alert_id, session.user)
        except KeyError:
            return page(request, "fleet_error.html", session, status_code=404,
                        title_fr="Alerte inconnue", title_en="Unknown alert",
                        message="Cette alerte n'existe pas pour ce véhicule.")
        board.notify({vehicle})  # other open dashboards show who acknowledged, now
        return finish(request, RedirectResponse(f"/fleet/vehicles/{vehicle}#alerts", 303),
                      session)

    # -- API and live stream -------------------------------------------------------------

    @router.get("/api/vehicles", response_model=list[VehicleOut])
    def api_vehicles(request: Request, session: Session = api_user) -> Response:
        body = "[" + ",".join(dash.summary(v).model_dump_json() for v in dash.names) + "]"
        return finish(request, Response(body, media_type="application/json"), session)

    @router.get("/api/vehicles/{vehicle}", response_model=VehicleDetailOut)
    def api_vehicle(request: Request, vehicle: str, session: Session = api_user) -> Response:
        if not known(vehicle):
            return finish(request, JSONResponse({"detail": "unknown vehicle"}, 404), session)
        return finish(request, Response(dash.detail(vehicle).model_dump_json(),
                                        media_type="application/json"), session)  # fmt: skip

    def snapshot() -> str:
        vehicles = ",".join(dash.summary(v).model_dump_json() for v in dash.names)
        return f'{{"vehicles":[{vehicles}]}}'

    async def stream(request: Request, cookie: str | None) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        wake: asyncio.Queue[None] = asyncio.Queue()

        def _set() -> None:
            if wake.empty():  # coalesce a burst into one event
                wake.put_nowait(None)

        def listener(_: frozenset[str]) -> None:  # called from the ingest thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(_set)

        unsubscribe = board.subscribe(listener)
        try:
            yield "retry: 5000\n\n"
            n = 0
            while True:
                # The session may end while the page stays open: stop sending data then.
                if auth.read(cookie) is None:
                    yield "event: logout\ndata: {}\n\n"
                    return
                n += 1
                yield f"id: {n}\ndata: {await run_in_threadpool(snapshot)}\n\n"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.get(), timeout=refresh_s)
                while not wake.empty():
                    wake.get_nowait()
        finally:
            unsubscribe()

    @router.get("/events")
    def events(request: Request, session: Session = api_user) -> Response:
        response = StreamingResponse(stream(request, request.cookies.get(COOKIE)),
                                     media_type="text/event-stream",
                                     headers={"X-Accel-Buffering": "no"})  # fmt: skip
        return finish(request, response, session, touch=False)

    return router

