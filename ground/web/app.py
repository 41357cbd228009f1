"""The public face of the ground service: mairie pages, a JSON API, SSE and iCalendar feeds.

Everything here renders `ground.views` (timetable, status and predicted times of the bus);
no patient data exists in these views and none must be added.

Live updates: the board calls its listeners from the ingest thread; each SSE connection
registers a listener that hops onto the event loop with `loop.call_soon_threadsafe` and wakes
the connection's queue (bursts coalesce into one event), which then sends the fresh view.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ground.fleet import DAY_LABELS_FR, HALF_LABELS_FR, Fleet
from ground.views import StopView, VisitStatus, VisitView
from medicobus.clock import Clock, SystemClock

HERE = Path(__file__).parent
REFRESH_S = 30.0  # an SSE refresh at least this often: ETAs move with time; also a keepalive
MONTHS_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
             "septembre", "octobre", "novembre", "décembre"]  # fmt: skip
HALF_LABELS_EN = {"am": "morning", "pm": "afternoon", "day": "all day"}
LINK_LOST = ("offline", "stale")
FINISHED = (VisitStatus.DEPARTED, VisitStatus.CANCELLED, VisitStatus.UNCONFIRMED)


class Board(Protocol):
    fleet: Fleet

    def stops(self) -> list[StopView]: ...

    def stop(self, insee: str) -> StopView | None: ...

    def subscribe(
        self, listener: Callable[[frozenset[str]], None]
    ) -> Callable[[], None]: ...


# --- API models ----------------------------------------------------------------------------


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
    eta: datetime | None = Field(description="Predicted arrival; null once arrived")
    etd: datetime | None = Field(description="Predicted departure; null once departed")
    delay_min: int
    arrived_at: datetime | None
    departed_at: datetime | None
    cancel_reason: str


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


# --- formatting ----------------------------------------------------------------------------


def day_label_fr(day: date) -> str:
    """'lundi 23 novembre'; '1er' for the first of the month, as written in French."""
    n = "1er" if day.day == 1 else str(day.day)
    return f"{DAY_LABELS_FR[day.weekday()]} {n} {MONTHS_FR[day.month - 1]}"


def hhmm(moment: datetime | None, zone: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(zone).strftime("%H:%M")


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if moment is None else moment.astimezone(zone).replace(microsecond=0)


def visit_out(v: VisitView, zone: ZoneInfo) -> VisitOut:
    return VisitOut(
        visit=v.visit,
        vehicle=v.vehicle,
        vehicle_name=v.vehicle_name,
        day=v.day,
        day_label_fr=day_label_fr(v.day),
        half=v.half,
        half_label_fr=HALF_LABELS_FR.get(v.half, v.half),
        planned_arrive=v.planned_arrive.astimezone(zone).replace(microsecond=0),
        planned_depart=v.planned_depart.astimezone(zone).replace(microsecond=0),
        status=v.status,
        label_fr=v.label_fr,
        label_en=v.label_en,
        eta=_local(v.eta, zone),
        etd=_local(v.etd, zone),
        delay_min=v.delay_min,
        arrived_at=_local(v.arrived_at, zone),
        departed_at=_local(v.departed_at, zone),
        cancel_reason=v.cancel_reason,
    )


def _summary_fields(s: StopView, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    local_now = now.astimezone(zone)
    minutes = None
    if s.last_seen is not None:
        minutes = max(0, int((now - s.last_seen).total_seconds() // 60))
    nv = s.next_visit
    today_unfinished = (
        nv is not None and nv.day == local_now.date() and nv.status not in FINISHED
    )
    return dict(
        stop=s.stop,
        commune=s.commune,
        insee=s.insee,
        place=s.place,
        lat=s.lat,
        lon=s.lon,
        next_visit=None if nv is None else visit_out(nv, zone),
        vehicle_presence=s.vehicle_presence,
        last_seen=_local(s.last_seen, zone),
        last_seen_min=minutes,
        link_lost=today_unfinished and s.vehicle_presence in LINK_LOST,
        updated_at=_local(s.updated_at, zone),
        generated_at=local_now.replace(microsecond=0),
        queue=None if s.queue is None else QueueOut(
            waiting=s.queue.waiting, wait_min=s.queue.wait_min, paused=s.queue.paused,
            updated_at=s.queue.updated_at.astimezone(zone).replace(microsecond=0),
        ),
    )


def stop_out(s: StopView, zone: ZoneInfo, now: datetime) -> StopOut:
    return StopOut(**_summary_fields(s, zone, now))


def stop_detail_out(s: StopView, zone: ZoneInfo, now: datetime) -> StopDetailOut:
    return StopDetailOut(
        **_summary_fields(s, zone, now), upcoming=[visit_out(v, zone) for v in s.upcoming]
    )


# --- display texts (mirrored by static/live.js: keep both in step) --------------------------


def _hm(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%H:%M")


def eta_text(v: VisitOut | None) -> str:
    if v is None or v.status is VisitStatus.CANCELLED:
        return ""
    if v.status is VisitStatus.DEPARTED:
        return f"Reparti à {_hm(v.departed_at)}" if v.departed_at else ""
    if v.status in (VisitStatus.ARRIVED, VisitStatus.CONSULTING) and v.arrived_at:
        return f"Arrivé à {_hm(v.arrived_at)}"
    return f"Arrivée estimée : {_hm(v.eta)}" if v.eta else ""


def etd_text(v: VisitOut | None) -> str:
    if v is None or v.status in FINISHED or v.etd is None:
        return ""
    return f"Départ estimé : {_hm(v.etd)}"


def planned_text(v: VisitOut) -> str:
    return f"{_hm(v.planned_arrive)} – {_hm(v.planned_depart)}"


def queue_text(s: StopOut) -> str:
    """'3 personnes en attente, attente estimée 45 min' (the live script says the same)."""
    q = s.queue
    if q is None:
        return ""
    people = {0: "Personne en attente", 1: "1 personne en attente"}.get(
        q.waiting, f"{q.waiting} personnes en attente")
    text = f"{people}, attente estimée {q.wait_min} min"
    return text + " (consultations en pause)" if q.paused else text


def link_text(s: StopOut) -> str:
    if not s.link_lost:
        return ""
    if s.last_seen_min is None:
        return "Liaison avec le bus perdue : aucune position reçue"
    return f"Liaison avec le bus perdue : dernière position reçue il y a {s.last_seen_min} min"


# --- iCalendar (RFC 5545) ------------------------------------------------------------------


def ics_escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def ics_fold(line: str) -> str:
    """Fold at 75 octets (UTF-8) without splitting a character; continuation starts with a space."""
    out: list[str] = []
    current, size, limit = "", 0, 75
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            out.append(current)
            current, size, limit = " ", 1, 75
        current += ch
        size += n
    out.append(current)
    return "\r\n".join(out)


def _ics_time(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y%m%dT%H%M%S")


def calendar_ics(s: StopView, zone: ZoneInfo, now: datetime) -> str:
    tzid = str(zone.key)
    stamp = now.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//medicobus//ground//FR",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{ics_escape(f'Médicobus à {s.commune}')}",
        f"X-WR-TIMEZONE:{tzid}",
    ]
    visits = ([s.next_visit] if s.next_visit else []) + list(s.upcoming)
    if visits:
        lines += _vtimezone(zone, min(v.planned_arrive for v in visits),
                            max(v.planned_depart for v in visits))  # fmt: skip
    seen: set[str] = set()
    for v in visits:
        if v.visit in seen:
            continue
        seen.add(v.visit)
        where = ", ".join(p for p in (s.place, s.commune) if p)
        desc = f"Médicobus ({v.vehicle_name}) : {HALF_LABELS_FR.get(v.half, v.half)}, " \
               f"{hhmm(v.planned_arrive, zone)} – {hhmm(v.planned_depart, zone)}. " \
               f"Statut : {v.label_fr}."  # fmt: skip
        if v.cancel_reason:
            desc += f" Motif : {v.cancel_reason}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{ics_escape(v.visit)}",
            f"DTSTAMP:{stamp}",
            f"DTSTART;TZID={tzid}:{_ics_time(v.planned_arrive, zone)}",
            f"DTEND;TZID={tzid}:{_ics_time(v.planned_depart, zone)}",
            f"SUMMARY:{ics_escape(f'Médicobus à {s.commune}')}",
            f"LOCATION:{ics_escape(where)}",
            f"GEO:{s.lat:.6f};{s.lon:.6f}",
            f"DESCRIPTION:{ics_escape(desc)}",
            "STATUS:CANCELLED" if v.status is VisitStatus.CANCELLED else "STATUS:CONFIRMED",
            "TRANSP:OPAQUE",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(ics_fold(line) + "\r\n" for line in lines)


def _vtimezone(zone: ZoneInfo, start: datetime, end: datetime) -> list[str]:
    """A VTIMEZONE with the zone's UTC offset changes from the year of `start` to the end of
    the year of `end` (found day by day, then hour by hour within the day of a change)."""
    first = datetime(start.astimezone(zone).year, 1, 1, tzinfo=zone)
    utc = ZoneInfo("UTC")
    t = first.astimezone(utc)
    stop_at = datetime(end.astimezone(zone).year + 1, 1, 1, tzinfo=zone).astimezone(utc)
    offset = t.astimezone(zone).utcoffset() or timedelta(0)
    changes: list[tuple[datetime, timedelta, timedelta, str]] = []
    while t < stop_at:
        day_end = t + timedelta(days=1)
        if (day_end.astimezone(zone).utcoffset() or timedelta(0)) != offset:
            nxt = t
            while nxt < day_end:
                nxt += timedelta(hours=1)
                off = nxt.astimezone(zone).utcoffset() or timedelta(0)
                if off != offset:
                    local = nxt.replace(tzinfo=None) + offset  # in the old offset (RFC 5545)
                    changes.append((local, offset, off, nxt.astimezone(zone).tzname() or ""))
                    offset = off
                    break
        t = day_end
    lines = ["BEGIN:VTIMEZONE", f"TZID:{zone.key}"]
    off0 = first.utcoffset() or timedelta(0)  # the offset in force on 1 January
    kind0 = "DAYLIGHT" if first.dst() else "STANDARD"
    lines += [f"BEGIN:{kind0}", f"DTSTART:{first:%Y%m%dT%H%M%S}",
              f"TZOFFSETFROM:{_offset(off0)}", f"TZOFFSETTO:{_offset(off0)}",
              f"TZNAME:{first.tzname() or ''}", f"END:{kind0}"]  # fmt: skip
    for local, before, after, name in changes:
        kind = "DAYLIGHT" if after > before else "STANDARD"
        lines += [f"BEGIN:{kind}", f"DTSTART:{local:%Y%m%dT%H%M%S}",
                  f"TZOFFSETFROM:{_offset(before)}", f"TZOFFSETTO:{_offset(after)}",
                  f"TZNAME:{name}", f"END:{kind}"]  # fmt: skip
    lines.append("END:VTIMEZONE")
    return lines


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


# --- the app -------------------------------------------------------------------------------


def create_app(board: Board, clock: Clock | None = None, refresh_s: float = REFRESH_S,
               fleet: APIRouter | None = None) -> FastAPI:
    """The public mairie pages and API; with `fleet`, the fleet managers' dashboard (behind
    its own login) under /fleet."""
    clock = clock or getattr(board, "clock", None) or SystemClock()
    zone = board.fleet.zone
    app = FastAPI(
        title="Médicobus",
        description="Passages et heures d'arrivée estimées du médicobus, par commune. "
        "Live visits and ETAs of the médicobus, per commune. No patient data.",
        version="1",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if fleet is not None:
        app.include_router(fleet, prefix="/fleet")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        eta_text=eta_text, etd_text=etd_text, planned_text=planned_text, link_text=link_text,
        queue_text=queue_text,
        half_en=HALF_LABELS_EN,
    )

    def now() -> datetime:
        return clock.now()

    def page(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, ctx, status_code=status_code)

    def not_found_page(request: Request) -> HTMLResponse:
        return page(request, "404.html", status_code=404)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not request.url.path.startswith(("/api/", "/static/")):
            return not_found_page(request)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        at = now()
        stops = sorted((stop_out(s, zone, at) for s in board.stops()),
                       key=lambda s: s.commune)  # fmt: skip
        return page(request, "index.html", stops=stops)

    @app.get("/communes/{insee}", response_class=HTMLResponse, include_in_schema=False)
    def commune(request: Request, insee: str) -> HTMLResponse:
        s = board.stop(insee)
        if s is None:
            return not_found_page(request)
        return page(request, "commune.html", s=stop_detail_out(s, zone, now()))

    @app.get("/communes/{insee}/events", include_in_schema=False)
    async def events(request: Request, insee: str) -> Response:
        if board.stop(insee) is None:
            return JSONResponse({"detail": "commune inconnue"}, status_code=404)
        return StreamingResponse(
            _stream(insee),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # Many pages of one commune wake up together: they share the JSON of one view, keyed
    # by the commune's change number (bumped by each connection's listener, in the ingest
    # thread, before that connection wakes, so a cached view is never older than the
    # change that woke it) and by the clock's second (the view shows times relative to now).
    changes = itertools.count(1)
    versions: dict[str, int] = {}
    cache: dict[str, tuple[tuple[int, datetime], str]] = {}

    def stop_json(insee: str) -> str | None:
        at = now().replace(microsecond=0)
        key = (versions.get(insee, 0), at)
        hit = cache.get(insee)
        if hit is not None and hit[0] == key:
            return hit[1]
        s = board.stop(insee)
        if s is None:
            return None
        data = stop_detail_out(s, zone, at).model_dump_json()
        cache[insee] = (key, data)
        return data

    async def _stream(insee: str) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        wake: asyncio.Queue[None] = asyncio.Queue()

        def _set() -> None:
            if wake.empty():  # coalesce: one pending wake-up is enough
                wake.put_nowait(None)

        def listener(codes: frozenset[str]) -> None:  # called from the ingest thread
            if insee in codes:
                versions[insee] = next(changes)
                with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                    loop.call_soon_threadsafe(_set)

        unsubscribe = board.subscribe(listener)
        try:
            yield "retry: 5000\n\n"
            n = 0
            while True:
                data = stop_json(insee)
                if data is None:
                    return
                n += 1
                yield f"id: {n}\ndata: {data}\n\n"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.get(), timeout=refresh_s)
                while not wake.empty():  # a burst that came in meanwhile: one event
                    wake.get_nowait()
        finally:
            unsubscribe()

    @app.get("/api/v1/stops", response_model=list[StopOut], tags=["stops"],
             summary="Communes served, with their next visit")  # fmt: skip
    def api_stops() -> list[StopOut]:
        at = now()
        return [stop_out(s, zone, at) for s in board.stops()]

    @app.get("/api/v1/stops/{insee}", response_model=StopDetailOut, tags=["stops"],
             responses={404: {"model": ErrorOut}},
             summary="One commune (by INSEE code), with its upcoming visits")  # fmt: skip
    def api_stop(insee: str) -> StopDetailOut | JSONResponse:
        s = board.stop(insee)
        if s is None:
            return JSONResponse({"detail": "commune inconnue / unknown commune"}, 404)
        return stop_detail_out(s, zone, now())

    @app.get("/api/v1/stops/{insee}/calendar.ics", tags=["stops"],
             responses={200: {"content": {"text/calendar": {}}}, 404: {"model": ErrorOut}},
             summary="iCalendar feed of the commune's upcoming visits")  # fmt: skip
    def api_calendar(insee: str) -> Response:
        s = board.stop(insee)
        if s is None:
            return JSONResponse({"detail": "commune inconnue / unknown commune"}, 404)
        return Response(
            calendar_ics(s, zone, now()),
            media_type="text/calendar; charset=utf-8",
            headers={"Content-Disposition": f'inline; filename="medicobus-{insee}.ics"'},
        )

    return app
