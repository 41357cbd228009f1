"""The fleet manager's dashboard: every vehicle's health at a glance, a page per vehicle
with 24-hour charts, alerts and trouble codes, the fridge's log as CSV, a JSON API and a
live stream. Everything here requires a login (`ground.web.auth`, checked by
`security.Guard`); none of it is linked from, or reachable through, the public mairie
pages, and none of it is in the public OpenAPI schema.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ground.alerts.rules import MaintenanceItem
from ground.board import Board
from ground.reports.activity import Period
from ground.reports.export import csv_text
from ground.reports.make import MEDIA, Reporter
from ground.reports.pdf import cell_fr
from ground.reports.trips import trip_tables
from ground.tournee import Tournee
from ground.web import sse
from ground.web.auth import COOKIE, Auth, AuthSettings, Session
from ground.web.console.pages import console_pages
from ground.web.fleet.export import asked_days, fridge_csv, fridge_log, local_span
from ground.web.fleet.live_map import MapOut, live_map
from ground.web.fleet.models import VehicleDetailOut, VehicleOut
from ground.web.fleet.precision import FILTERS, Scorer, precision_router
from ground.web.fleet.security import Guard, form, safe_next, same_origin
from ground.web.fleet.sources import AlertSource, SeriesSource
from ground.web.fleet.views import SEVERITY_FR, Dashboard
from ground.web.format import number, when
from ground.web.map import MapSettings
from medicobus.clock import Clock

TEMPLATES = Path(__file__).parent.parent / "templates"
REFRESH_S = 30.0  # the live stream sends at least this often: ages and delays move with time
MAX_REPORT_DAYS = 400  # a year and a bit: the longest report the dashboard makes


def recent_months(today: date, count: int) -> list[date]:
    """The first days of this month and the `count` - 1 before it, newest first."""
    months, day = [], today.replace(day=1)
    for _ in range(count):
        months.append(day)
        day = (day - timedelta(days=1)).replace(day=1)
    return months


def fleet_router(board: Board, store: SeriesSource, alerts: AlertSource | None,
                 users_settings: AuthSettings, *, clock: Clock | None = None,
                 session_clock: Clock | None = None, refresh_s: float = REFRESH_S,
                 auth: Auth | None = None, map_settings: MapSettings | None = None,
                 tournee: Tournee | None = None, reporter: Reporter | None = None,
                 precision: Scorer | None = None) -> APIRouter:
    """The dashboard's routes, to mount with `app.include_router(..., prefix="/fleet")`.

    `clock` is the data's time (the board's, accelerated in the demo); `session_clock`
    times sessions and login slowdown in real time (default: the system clock);
    `map_settings` the live map's tiles (give create_app the same, for its CSP); with
    `tournee`, the coordinator's console pages behind the same login (its API, in the
    public schema, is `ground.web.console.api`, given to create_app); `reporter` makes
    the funders' reports to download (none: no reports page); `precision` scores the ETAs
    published between two moments (the accuracy record's page).
    """
    dash = Dashboard(board, store, alerts, clock or board.clock)
    auth = auth or Auth(users_settings, session_clock)
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.globals.update(FILTERS)
    templates.env.globals.update(when=lambda m: when(m, dash.zone, dash.now()), number=number,
                                 severity_fr=SEVERITY_FR,
                                 map_settings=map_settings or MapSettings())  # fmt: skip
    router = APIRouter(include_in_schema=False)  # private: not in the public /openapi.json

    guard = Guard(auth, users_settings)
    finish = guard.finish
    # Plain defaults, not Annotated aliases: with postponed annotations FastAPI cannot
    # resolve a name local to this function.
    page_user = Depends(guard.page_session)
    api_user = Depends(guard.api_session)

    def page(request: Request, name: str, session: Session | None, status_code: int = 200,
             touch: bool = True, **ctx: Any) -> Response:
        ctx.update(user=session.user if session else None,
                   csrf=session.csrf if session else "",
                   may=session.may if session else lambda action: False)  # fmt: skip
        response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
        return finish(request, response, session, touch)

    def known(vehicle: str) -> bool:
        return vehicle in dash.names

    def not_found(request: Request, session: Session) -> Response:
        return page(request, "fleet_error.html", session, status_code=404,
                    title_fr="Véhicule inconnu", title_en="Unknown vehicle",
                    message="Ce véhicule n'existe pas dans la flotte configurée.")

    # -- login / logout -----------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None, bye: int = 0) -> Response:
        s = guard.session_of(request)
        if s is not None:
            return finish(request, RedirectResponse(safe_next(next), 303), s)
        return page(request, "fleet_login.html", None, next=safe_next(next), error=None,
                    bye=bool(bye))

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        if not same_origin(request):
            return finish(request, JSONResponse({"detail": "cross-site request"}, 403))
        data = await form(request)
        target = safe_next(data.get("next"))
        name, password = data.get("name", "")[:64], data.get("password", "")[:1024]
        # The peer, or the client a trusted proxy names (uvicorn, `ground.web.server`).
        address = request.client.host if request.client else "?"
        browser = guard.browser_of(request, name)
        wait = auth.wait_before_login(address, name, browser)
        if wait > timedelta(0):
            seconds = math.ceil(wait.total_seconds())
            response = page(request, "fleet_login.html", None, status_code=429, next=target,
                            error=f"Trop de tentatives : réessayez dans {seconds} s. "
                                  f"· Too many attempts: try again in {seconds} s.")  # fmt: skip
            response.headers["Retry-After"] = str(seconds)
            return response
        # scrypt takes tens of milliseconds: off the event loop.
        if not await run_in_threadpool(auth.check_password, name, password):
            auth.failed(address, name, browser)
            return page(request, "fleet_login.html", None, status_code=401, next=target,
                        error="Identifiant ou mot de passe incorrect. "
                              "· Wrong user name or password.")  # fmt: skip
        auth.succeeded(address, name, browser)
        session = auth.read(auth.issue(name))
        assert session is not None
        response = finish(request, RedirectResponse(target, 303), session)
        guard.remember_browser(request, response, name)
        return response

    @router.post("/logout")
    async def logout(request: Request, session: Session = page_user) -> Response:
        data = await form(request)
        if not guard.csrf_ok(request, session, data):
            return finish(request, JSONResponse({"detail": "invalid CSRF token"}, 403))
        auth.revoke(session)
        response = RedirectResponse("/fleet/login?bye=1", 303)
        guard.forget(request, response)
        return finish(request, response)

    # -- pages --------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request, session: Session = page_user) -> Response:
        vehicles = [dash.summary(v) for v in dash.names]
        return page(request, "fleet_index.html", session, vehicles=vehicles,
                    summary=dash.fleet_summary(vehicles), dead_letters=dash.dead_letters(),
                    set_aside=dash.set_aside())  # fmt: skip

    @router.get("/vehicles/{vehicle}", response_class=HTMLResponse)
    def vehicle_page(request: Request, vehicle: str, session: Session = page_user) -> Response:
        if not known(vehicle):
            return not_found(request, session)
        today = dash.now().astimezone(dash.zone).date()
        upkeep = alerts.maintenance(vehicle) if alerts else []
        return page(request, "fleet_vehicle.html", session, v=dash.detail(vehicle),
                    charts=dash.charts(vehicle), today=today,
                    week_ago=today - timedelta(days=6), upkeep=upkeep)  # fmt: skip

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
        try:
            start, end = asked_days(start, end, dash.now().astimezone(dash.zone).date(), 7)
        except ValueError as exc:
            return finish(request, JSONResponse({"detail": str(exc)}, 422), session)
        t0, t1 = local_span(start, end, dash.zone)
        text = fridge_csv(fridge_log(dash, vehicle, t0, t1), dash.zone)
        name = f"frigo-{vehicle}-{start.isoformat()}_{end.isoformat()}.csv"
        return finish(request, Response(text, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"'}), session)

    async def action_refused(request: Request, session: Session, doing: str
                             ) -> Response | None:
        """A fleet manager's action (the "alerts" permission) refused: a form without its
        token, or a role without it; None when it may go on."""
        if not guard.csrf_ok(request, session, await form(request)):
            message = ("Le jeton de sécurité du formulaire est absent ou périmé : rechargez "
                       "la page et recommencez.")
        elif not session.may("alerts"):
            message = f"Votre rôle ne permet pas de {doing} (réservé à la gestion de flotte)."
        else:
            return None
        return page(request, "fleet_error.html", session, status_code=403,
                    title_fr="Action refusée", title_en="Action refused", message=message)

    @router.post("/vehicles/{vehicle}/alerts/{alert_id}/acknowledge")
    async def acknowledge(request: Request, vehicle: str, alert_id: int,
                          session: Session = page_user) -> Response:
        refused_now = await action_refused(request, session, "prendre en charge une alerte")
        if refused_now is not None:
            return refused_now
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

    @router.post("/vehicles/{vehicle}/maintenance")
    async def maintenance_item(request: Request, vehicle: str,
                               session: Session = page_user) -> Response:
        refused_now = await action_refused(request, session, "changer les entretiens")
        if refused_now is not None:
            return refused_now
        if alerts is None or not known(vehicle):
            return not_found(request, session)
        data = await form(request)
        fields = {k: data.get(k, "").strip() or None for k in (
            "id", "title_fr", "title_en", "every_km", "every_hours", "every_days")}
        try:
            item = MaintenanceItem.model_validate({k: v for k, v in fields.items() if v})
            await run_in_threadpool(alerts.save_item, vehicle, item, session.user)
        except (ValidationError, LookupError) as exc:
            detail = (exc.errors(include_url=False)[0]["msg"]
                      if isinstance(exc, ValidationError) else str(exc))
            return page(request, "fleet_error.html", session, status_code=422,
                        title_fr="Entretien refusé", title_en="Item refused",
                        message="Donnez un identifiant (minuscules, chiffres, tirets), les "
                                "deux intitulés et au moins un intervalle (km, heures ou "
                                f"jours) : {detail}")  # fmt: skip
        board.notify({vehicle})
        return finish(request, RedirectResponse(f"/fleet/vehicles/{vehicle}#maintenance",
                                                303), session)

    @router.post("/vehicles/{vehicle}/maintenance/{item}/done")
    async def maintenance_done(request: Request, vehicle: str, item: str,
                               session: Session = page_user) -> Response:
        refused_now = await action_refused(request, session, "noter un entretien")
        if refused_now is not None:
            return refused_now
        if alerts is None or not known(vehicle):
            return not_found(request, session)
        try:
            await run_in_threadpool(alerts.record_done, vehicle, item, session.user)
        except KeyError:
            return page(request, "fleet_error.html", session, status_code=404,
                        title_fr="Entretien inconnu", title_en="Unknown maintenance item",
                        message="Cet entretien n'est pas prévu pour ce véhicule.")
        board.notify({vehicle})
        return finish(request, RedirectResponse(f"/fleet/vehicles/{vehicle}#maintenance",
                                                303), session)

    # -- the funders' reports -------------------------------------------------------------

    def refused(request: Request, session: Session, status: int, message: str) -> Response:
        return page(request, "fleet_error.html", session, status_code=status,
                    title_fr="Rapport impossible", title_en="No report", message=message)

    def not_yours(request: Request, session: Session) -> Response:
        return refused(request, session, 403, "Votre rôle ne permet pas de voir les rapports "
                       "ni les trajets (réservé à la gestion de flotte).")

    @router.get("/reports", response_class=HTMLResponse)
    def reports_page(request: Request, session: Session = page_user) -> Response:
        if reporter is None or not session.may("reports"):
            return not_yours(request, session)
        today = dash.now().astimezone(dash.zone).date()
        return page(request, "fleet_reports.html", session, months=recent_months(today, 12),
                    today=today)  # fmt: skip

    @router.get("/reports/download")
    async def report_download(
        request: Request, session: Session = page_user, month: str | None = None,
        start: Annotated[date | None, Query(alias="from")] = None,
        end: Annotated[date | None, Query(alias="to")] = None, format: str = "pdf",
    ) -> Response:
        if reporter is None or not session.may("reports"):
            return not_yours(request, session)
        try:
            if format not in MEDIA:
                raise ValueError(f"format: pdf, xlsx ou csv, pas {format[:10]!r}")
            if month is not None:
                period = Period.month(month[:7], dash.zone)
            elif start is not None and end is not None:
                period = Period(start, end, dash.zone)
            else:
                raise ValueError("un mois (month=2026-11) ou une période (from=, to=)")
            if (period.last - period.first).days >= MAX_REPORT_DAYS:
                raise ValueError(f"au plus {MAX_REPORT_DAYS} jours")
        except ValueError as exc:
            return refused(request, session, 422, f"Période ou format invalide : {exc}")
        made = await run_in_threadpool(reporter.make, period, format)  # type: ignore[arg-type]
        return finish(request, Response(made.content, media_type=made.media, headers={
            "Content-Disposition": f'attachment; filename="{made.name}"'}), session)

    @router.get("/vehicles/{vehicle}/trips", response_class=HTMLResponse)
    async def trips_page(request: Request, vehicle: str, session: Session = page_user,
                         day: date | None = None) -> Response:
        if reporter is None or not session.may("reports"):
            return not_yours(request, session)
        if not known(vehicle):
            return not_found(request, session)
        day = day or dash.now().astimezone(dash.zone).date()
        period = Period(day, day, dash.zone)
        found = await run_in_threadpool(reporter.days, vehicle, period)
        return page(request, "fleet_trips.html", session, v=dash.detail(vehicle), day=day,
                    tables=trip_tables(found, period), cell=cell_fr,
                    before=day - timedelta(days=1), after=day + timedelta(days=1))

    @router.get("/vehicles/{vehicle}/trips.csv")
    async def trips_csv(
        request: Request, vehicle: str, session: Session = page_user,
        start: Annotated[date | None, Query(alias="from")] = None,
        end: Annotated[date | None, Query(alias="to")] = None, table: str = "trajets",
    ) -> Response:
        if reporter is None or not session.may("reports"):
            return not_yours(request, session)
        if not known(vehicle):
            return not_found(request, session)
        today = dash.now().astimezone(dash.zone).date()
        try:
            period = Period(start or end or today, end or start or today, dash.zone)
            if (period.last - period.first).days >= MAX_REPORT_DAYS:
                raise ValueError(f"au plus {MAX_REPORT_DAYS} jours")
            found = await run_in_threadpool(reporter.days, vehicle, period)
            chosen = next((t for t in trip_tables(found, period) if t.name == table), None)
            if chosen is None:
                raise ValueError("table : trajets, arrets ou jours")
        except ValueError as exc:
            return refused(request, session, 422, f"Période ou table invalide : {exc}")
        name = f"{table}-{vehicle}-{period.first.isoformat()}_{period.last.isoformat()}.csv"
        return finish(request, Response(csv_text(chosen).encode("utf-8-sig"),
                                        media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"'}), session)

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

    @router.get("/api/map", response_model=MapOut)
    def api_map(request: Request, session: Session = api_user) -> Response:
        """The live map's vehicles, stops and routes; polled by static/map.js, which sends
        back the ETag it has: unchanged, a 304 of a few bytes instead of the routes again.
        Automatic: it does not count as activity for the idle timeout."""
        body = live_map(board, store, dash.clock).model_dump_json()
        tag = '"' + hashlib.blake2b(body.encode(), digest_size=12).hexdigest() + '"'
        if request.headers.get("if-none-match") == tag:
            response = Response(status_code=304, headers={"ETag": tag})
        else:
            response = Response(body, media_type="application/json", headers={"ETag": tag})
        return finish(request, response, session, touch=False)

    def snapshot() -> str:
        vehicles = [dash.summary(v) for v in dash.names]
        listed = ",".join(v.model_dump_json() for v in vehicles)
        summary = dash.fleet_summary(vehicles).model_dump_json()
        return f'{{"vehicles":[{listed}],"summary":{summary}}}'

    def stream(cookie: str | None) -> AsyncIterator[str]:
        async def next_event() -> sse.Event:
            # The session may end while the page stays open: stop sending data then.
            if auth.read(cookie) is None:
                return sse.Event("{}", name="logout", last=True)
            return sse.Event(await sse.made_aside(snapshot))

        return sse.stream(board, next_event, refresh_s)

    @router.get("/events")
    def events(request: Request, session: Session = api_user) -> Response:
        response = sse.response(stream(request.cookies.get(COOKIE)))
        return finish(request, response, session, touch=False)

    if tournee is not None:
        router.include_router(console_pages(tournee, guard, page))
    if precision is not None:
        router.include_router(precision_router(
            precision, lambda: board.fleet, lambda: dash.now().astimezone(dash.zone).date(),
            guard, page))  # fmt: skip
    return router
