"""The public routes: the list of communes, a page per commune with its live stream, the
JSON API (in /openapi.json) and the iCalendar feed."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter

from ground.fleet import Fleet
from ground.precision import NOT_KNOWN, PrecisionTable
from ground.views import StopView, TicketView, VisitView
from ground.web import sse
from ground.web.headers import CSP
from ground.web.public.calendar import calendar_ics
from ground.web.public.follow import follow_texts
from ground.web.public.kit import (
    FEED_AHEAD_DAYS,
    FEED_BACK_DAYS,
    KitSettings,
    atom_feed,
    embed_policy,
    month_bounds,
    poster_pdf,
    relay_text,
)
from ground.web.public.models import DatedVisitOut, ErrorOut, StopDetailOut, StopOut
from ground.web.public.snapshot import Snapshot
from ground.web.public.views import (
    WORDS,
    Lang,
    commune_page,
    dated_visit_out,
    planned_text,
    stop_detail_out,
    stop_out,
)
from medicobus.clock import Clock

TEMPLATES = Path(__file__).parent.parent / "templates"
REFRESH_S = 30.0  # an SSE refresh at least this often: ETAs move with time; also a keepalive


class Board(Protocol):
    fleet: Fleet

    def stops(self, only: Collection[str] | None = None) -> list[StopView]: ...

    def stop(self, insee: str) -> StopView | None: ...

    def ticket(self, token: str) -> TicketView | None: ...

    def version(self, insee: str) -> int: ...

    def visits(self, first: date, last: date, stop_ids: Collection[str] | None = None
               ) -> list[VisitView]: ...  # fmt: skip

    def subscribe(self, listener: sse.Listener) -> Callable[[], None]: ...


def public_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.globals.update(planned_text=planned_text)
    return templates


_STOP_LIST = TypeAdapter(list[StopOut])
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # what the kiosk makes (secrets.token_urlsafe)
# The address holds the token: no cache keeps the page, no other site learns it.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Robots-Tag": "noindex"}
MAX_VISIT_DAYS = 366  # the list of visits covers at most a year
FRAGMENT_TTL_S = 10.0  # a commune nothing happened to: its summary made again this often


def public_router(board: Board, clock: Clock, refresh_s: float = REFRESH_S,
                  kit: KitSettings | None = None, csp: str = CSP,
                  precision: Callable[[], PrecisionTable] | None = None) -> APIRouter:
    """The mairie pages (not in the schema) and the public API (in it); `kit`: the
    mairie's kit (poster, embeddable block, feed), `csp` the site's policy (the block's
    framing is allowed from there); `precision`: the current table of how precisely an
    ETA may be told (ground.precision; by default none recorded: rounded to 5 min)."""
    zone = board.fleet.zone
    kit = kit or KitSettings()
    precision = precision or (lambda: NOT_KNOWN)
    framing = {"Content-Security-Policy": embed_policy(csp, kit.embed_ancestors),
               "X-Frame-Options": "SAMEORIGIN"}  # older browsers: never another site
    templates = public_templates()
    router = APIRouter()

    def page(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, ctx, status_code=status_code)

    # The list of every commune, joined from each commune's JSON, made again only when the
    # commune changed (the board's change number) or time alone may have changed it. Kept
    # as bytes: plain values the garbage collector does not track (thousands of models
    # replaced every second made its full passes pause every thread).
    fragments: dict[str, tuple[int, float, bytes]] = {}

    def every_commune() -> tuple[bytes, bytes]:
        """The list as JSON, and gzipped once for every client that takes it (a tenth of
        the size: megabytes at a thousand buses, for mairies on rural connections)."""
        body = every_commune_json()
        return body, gzip.compress(body, compresslevel=5, mtime=0)

    def every_commune_json() -> bytes:
        now = time.monotonic()
        # By stop id: a commune may have two stops (two parking places), one INSEE code.
        stale = {s.id: s.insee for s in board.fleet.stops
                 if (hit := fragments.get(s.id)) is None or hit[0] != board.version(s.insee)
                 or now - hit[1] > FRAGMENT_TTL_S}  # fmt: skip
        if stale:
            versions = {stop: board.version(insee) for stop, insee in stale.items()}  # first
            at, table = clock.now(), precision()
            for view in board.stops(stale):
                made = stop_out(view, zone, at, table).model_dump_json().encode()
                fragments[view.stop] = (versions[view.stop], now, made)
        return b"[" + b",".join(fragments[s.id][2] for s in board.fleet.stops) + b"]"

    communes = Snapshot(every_commune)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        stops = sorted(_STOP_LIST.validate_json(communes.get()[0]), key=lambda s: s.commune)
        return page(request, "index.html", stops=stops)

    @router.get("/communes/{insee}", response_class=HTMLResponse, include_in_schema=False)
    def commune(request: Request, insee: str, lang: Lang = "fr") -> HTMLResponse:
        """In French; in English on the page's switch (`?lang=en`), not both at once."""
        s = board.stop(insee)
        if s is None:
            return page(request, "404.html", status_code=404)
        return page(request, "commune.html",
                    s=commune_page(s, zone, clock.now(), precision(), lang),
                    relay=relay_text(s, live_url(request, insee)), lang=lang, w=WORDS[lang])

    def live_url(request: Request, insee: str) -> str:
        return f"{str(request.base_url).rstrip('/')}/communes/{insee}"

    def month_visits(insee: str, first: date | None = None,
                     last: date | None = None) -> list[VisitView]:
        """The commune's visits of this month (or between `first` and `last`)."""
        today = clock.now().astimezone(zone).date()
        start, end = month_bounds(today)
        stops = [s.id for s in board.fleet.stops if s.insee == insee]
        return board.visits(first or start, last or end, stops)

    @router.get("/communes/{insee}/affiche.pdf", include_in_schema=False)
    def poster(request: Request, insee: str) -> Response:
        s = board.stop(insee)
        if s is None:
            return page(request, "404.html", status_code=404)
        today = clock.now().astimezone(zone).date()
        pdf = poster_pdf(s, month_visits(insee), today, kit.booking, live_url(request, insee))
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="medicobus-{insee}-affiche.pdf"'})

    @router.get("/communes/{insee}/embed", response_class=HTMLResponse,
                include_in_schema=False)
    def embed(request: Request, insee: str) -> HTMLResponse:
        s = board.stop(insee)
        if s is None:
            return page(request, "404.html", status_code=404)
        response = page(request, "embed.html", s=commune_page(s, zone, clock.now(), precision()))
        response.headers.update(framing)
        return response

    @router.get("/communes/{insee}/feed.atom", include_in_schema=False)
    def feed(request: Request, insee: str) -> Response:
        s = board.stop(insee)
        if s is None:
            return page(request, "404.html", status_code=404)
        today = clock.now().astimezone(zone).date()
        visits = month_visits(insee, today - timedelta(days=FEED_BACK_DAYS),
                              today + timedelta(days=FEED_AHEAD_DAYS))
        url = live_url(request, insee)
        return Response(atom_feed(s, visits, url, f"{url}/feed.atom", clock.now()),
                        media_type="application/atom+xml; charset=utf-8")

    # Many pages of one commune wake up together: they share the JSON of one view, keyed
    # by the commune's change number (bumped by the board before it wakes anyone, so a
    # cached view is never older than the change that woke it) and by the clock's second
    # (the view shows times relative to now).
    cache: dict[tuple[str, Lang], tuple[tuple[int, datetime], str]] = {}

    def page_json(insee: str, lang: Lang) -> str | None:
        at = clock.now().replace(microsecond=0)
        key = (board.version(insee), at)
        hit = cache.get((insee, lang))
        if hit is not None and hit[0] == key:
            return hit[1]
        s = board.stop(insee)
        if s is None:
            return None
        data = commune_page(s, zone, at, precision(), lang).model_dump_json()
        cache[(insee, lang)] = (key, data)
        return data

    @router.get("/communes/{insee}/events", include_in_schema=False)
    async def events(request: Request, insee: str, lang: Lang = "fr") -> Response:
        if board.stop(insee) is None:
            return JSONResponse({"detail": "commune inconnue"}, status_code=404)

        def concerns(codes: frozenset[str]) -> bool:  # in the pipeline's thread
            return insee in codes

        async def next_event() -> sse.Event | None:
            data = await sse.made_aside(lambda: page_json(insee, lang))
            return None if data is None else sse.Event(data)

        return sse.response(sse.stream(board, next_event, refresh_s, concerns))

    def followed(token: str) -> TicketView | None:
        return board.ticket(token) if TOKEN.match(token) else None

    @router.get("/t/{token}", response_class=HTMLResponse, include_in_schema=False)
    def follow(request: Request, token: str, lang: Lang = "fr") -> HTMLResponse:
        """The queue on the patient's phone: live while the ticket waits; an unknown or
        expired ticket gets the same words (and 404), so a guess learns nothing."""
        t = followed(token)
        live = t is not None and not t.ended
        response = page(request, "follow.html", status_code=200 if live else 404, lang=lang,
                        other="en" if lang == "fr" else "fr", texts=follow_texts(t, lang),
                        events=f"/t/{token}/events?lang={lang}" if live else None)
        response.headers.update(PRIVATE)
        return response

    @router.get("/t/{token}/events", include_in_schema=False)
    async def follow_events(token: str, lang: Lang = "fr") -> Response:
        t = followed(token)
        if t is None:
            return JSONResponse({"detail": "ticket inconnu"}, status_code=404, headers=PRIVATE)
        insee = t.insee

        def concerns(codes: frozenset[str]) -> bool:  # in the pipeline's thread
            return insee in codes

        async def next_event() -> sse.Event:
            now = await sse.made_aside(lambda: followed(token))
            # The commune page's shape, so live.js places the texts as there.
            data = json.dumps({"page": {"texts": follow_texts(now, lang), "status": "",
                                        "rows": []}}, ensure_ascii=False)
            return sse.Event(data, last=now is None or now.ended)

        response = sse.response(sse.stream(board, next_event, refresh_s, concerns))
        response.headers.update(PRIVATE)
        return response

    @router.get("/api/v1/stops", response_model=list[StopOut], tags=["stops"],
                summary="Communes served, with their next visit",
                description="Made again at most every second, less often when a large "
                "fleet makes it costly (`generated_at` says when); a commune's own resource "
                "is always current.")  # fmt: skip
    async def api_stops(request: Request) -> Response:
        # On the event loop: it only hands over bytes made already (no thread to wait for).
        body, zipped = communes.get()
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(zipped, media_type="application/json",
                            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(body, media_type="application/json", headers={"Vary": "Accept-Encoding"})

    @router.get("/api/v1/stops/{insee}", response_model=StopDetailOut, tags=["stops"],
                responses={404: {"model": ErrorOut}},
                summary="One commune (by INSEE code), with its upcoming visits")  # fmt: skip
    def api_stop(insee: str) -> StopDetailOut | JSONResponse:
        s = board.stop(insee)
        if s is None:
            return JSONResponse({"detail": "commune inconnue / unknown commune"}, 404)
        return stop_detail_out(s, zone, clock.now(), precision())

    @router.get("/api/v1/stops/{insee}/calendar.ics", tags=["stops"],
                responses={200: {"content": {"text/calendar": {}}}, 404: {"model": ErrorOut}},
                summary="iCalendar feed of the commune's upcoming visits")  # fmt: skip
    def api_calendar(insee: str) -> Response:
        s = board.stop(insee)
        if s is None:
            return JSONResponse({"detail": "commune inconnue / unknown commune"}, 404)
        return Response(
            calendar_ics(s, zone, clock.now()),
            media_type="text/calendar; charset=utf-8",
            headers={"Content-Disposition": f'inline; filename="medicobus-{insee}.ics"'},
        )

    @router.get("/api/v1/visits", response_model=list[DatedVisitOut], tags=["visits"],
                responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
                summary="Visits between two dates (of one commune), with their status and "
                "why they were cancelled, moved or added")  # fmt: skip
    def api_visits(
        first: Annotated[date | None, Query(alias="from", description="Default: today")] = None,
        last: Annotated[date | None, Query(alias="to", description="Default: in 14 days")] = None,
        insee: Annotated[str | None, Query(description="One commune's INSEE code")] = None,
    ) -> Response:
        today = clock.now().astimezone(zone).date()
        first = first or today
        last = last or first + timedelta(days=14)
        if not (date.min + timedelta(days=1) < first <= last < date.max - timedelta(days=1)) \
                or (last - first).days >= MAX_VISIT_DAYS:  # fmt: skip
            return JSONResponse({"detail": f"from must be on or before to, at most "
                                           f"{MAX_VISIT_DAYS} days"}, 422)  # fmt: skip
        stops = None
        if insee is not None:
            stops = [s.id for s in board.fleet.stops if s.insee == insee]
            if not stops:
                return JSONResponse({"detail": "commune inconnue / unknown commune"}, 404)
        at, table = clock.now(), precision()
        body = ",".join(dated_visit_out(v, board.fleet.stop(v.stop), zone, at, table)
                        .model_dump_json() for v in board.visits(first, last, stops))
        return Response(f"[{body}]", media_type="application/json")

    return router
