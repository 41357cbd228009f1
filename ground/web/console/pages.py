"""The coordinator's console, under /fleet/tournee behind the dashboard's login: the
tournée by week and by month per vehicle (with the live map), the recurring entries in
plain French, and the record of changes with their undo and the export.

Every role may read these pages; only `coordination` sees the forms, and every form posts
to one route, `/fleet/tournee/changes`, which reads the change as the JSON API does
(`changes.read_change`, `changes.apply`): done, it goes back to the page it came from with
what was done said at the top; refused, the same page comes back (422) with the form as it
was typed and the reason in French beside the field."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ground.fleet import DAY_LABELS_FR, HALF_LABELS_FR, Vehicle
from ground.tournee import Refused, Tournee
from ground.web.auth import Session
from ground.web.console import views
from ground.web.console.changes import apply, read_change
from ground.web.fleet.security import Guard, form

Page = Callable[..., Response]  # the dashboard's: (request, template, session, status, **ctx)
View = Callable[[Mapping[str, str]], dict[str, Any]]
WEEK, MONTH, ENTRIES, HISTORY = ("/fleet/tournee", "/fleet/tournee/mois",
                                 "/fleet/tournee/regulieres", "/fleet/tournee/historique")


@dataclass(frozen=True)
class FormError:
    """A refused change: the form it came from, the field to show it at, and why."""

    form: str
    field: str
    fr: str
    en: str


def console_pages(tournee: Tournee, guard: Guard, page: Page) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page_user = Depends(guard.page_session)

    def base(query: Mapping[str, str]) -> dict[str, Any]:
        fleet = tournee.fleet
        now = tournee.clock.now()
        return {"fleet": fleet, "today": now.astimezone(fleet.zone).date(), "problem": None,
                "done": _done(tournee, query.get("fait")), "halves": HALF_LABELS_FR.items(),
                "stops": [(s.id, s.commune) for s in fleet.stops],
                "vehicles": [(v.id, v.name) for v in fleet.vehicles],
                "weekdays": [("", "—")] + [(d, d) for d in DAY_LABELS_FR],
                "vehicle": "", "week": "", "month": ""}  # fmt: skip

    def chosen(query: Mapping[str, str], ctx: dict[str, Any]) -> list[Vehicle]:
        vehicles = ctx["fleet"].vehicles
        wanted = query.get("vehicule")
        picked = [v for v in vehicles if v.id == wanted]
        if wanted and not picked:
            ctx["problem"] = "Véhicule inconnu : toute la flotte est montrée."
        ctx["vehicle"] = wanted if picked else ""
        return picked or vehicles

    def week(query: Mapping[str, str]) -> dict[str, Any]:
        ctx = base(query)
        monday = views.monday_of(ctx["today"])
        if query.get("semaine"):
            try:
                year, number = query["semaine"].split("-W")
                monday = date.fromisocalendar(int(year), int(number), 1)
            except ValueError:
                ctx["problem"] = ("Semaine invalide (attendu : 2026-W49) : voici la semaine "
                                  "en cours.")
        now = tournee.clock.now()
        ctx.update(monday=monday, label=views.week_label(monday),
                   prev=views.iso_week(monday - timedelta(days=7)),
                   next=views.iso_week(monday + timedelta(days=7)),
                   week=views.iso_week(monday),
                   plans=[views.days(ctx["fleet"], v, monday, 7, now)
                          for v in chosen(query, ctx)])  # fmt: skip
        return ctx

    def month(query: Mapping[str, str]) -> dict[str, Any]:
        ctx = base(query)
        year, number = ctx["today"].year, ctx["today"].month
        if query.get("mois"):
            try:
                year, number = (int(p) for p in query["mois"].split("-"))
                date(year, number, 1)
            except ValueError:
                year, number = ctx["today"].year, ctx["today"].month
                ctx["problem"] = "Mois invalide (attendu : 2026-12) : voici le mois en cours."
        first, count = views.month_grid(year, number)
        now = tournee.clock.now()
        previous = date(year, number, 1) - timedelta(days=1)
        following = date(year, number, 28) + timedelta(days=7)
        ctx.update(label=views.month_label(year, number), month=f"{year}-{number:02d}",
                   prev=f"{previous:%Y-%m}", next=f"{following:%Y-%m}",
                   plans=[views.days(ctx["fleet"], v, first, count, now, number)
                          for v in chosen(query, ctx)])  # fmt: skip
        return ctx

    def entries(query: Mapping[str, str]) -> dict[str, Any]:
        ctx = base(query)
        ctx.update(entries=views.entries(ctx["fleet"]),
                   tomorrow=ctx["today"] + timedelta(days=1))
        return ctx

    def history(query: Mapping[str, str]) -> dict[str, Any]:
        ctx = base(query)
        ctx.update(changes=views.history(tournee.history(), ctx["fleet"]))
        return ctx

    pages: dict[str, tuple[str, View]] = {
        WEEK: ("console_week.html", week), MONTH: ("console_month.html", month),
        ENTRIES: ("console_entries.html", entries),
        HISTORY: ("console_history.html", history),
    }  # fmt: skip

    def show(request: Request, session: Session, path: str, query: Mapping[str, str],
             status_code: int = 200, **extra: Any) -> Response:  # fmt: skip
        template, view = pages[path]
        here = path + (f"?{urlencode(_kept(query))}" if _kept(query) else "")
        ctx = {"here": here, "error": None, "values": {}, **view(query), **extra}
        return page(request, template, session, status_code=status_code, **ctx)

    def route(path: str) -> None:
        def get(request: Request, session: Session = page_user) -> Response:
            return show(request, session, path, dict(request.query_params))

        router.add_api_route(path.removeprefix("/fleet"), get, methods=["GET"])

    for path in pages:
        route(path)

    @router.post("/tournee/changes")
    async def change(request: Request, session: Session = page_user) -> Response:
        data = await form(request)
        back = urlsplit(data.pop("back", WEEK))
        path = back.path if back.path in pages and not back.netloc else WEEK
        query = dict(parse_qsl(back.query))
        form_id = data.pop("form", "")
        refused: Refused | None = None
        if not guard.csrf_ok(request, session, data):
            refused = Refused("csrf", "le jeton de sécurité du formulaire est absent ou "
                              "périmé : rechargez la page et recommencez",
                              "missing or stale CSRF token")  # fmt: skip
        elif not session.may("tournee"):
            refused = Refused("role", "votre rôle ne permet pas de modifier la tournée "
                              "(réservé à la coordination)", "your role may not change it")
        else:
            try:
                made = read_change(_nested(data))
                changed = await run_in_threadpool(apply, tournee, made, session.user)
            except Refused as exc:
                refused = exc
        if refused is not None:
            status = 403 if refused.field in ("csrf", "role") else 422
            return show(request, session, path, query, status, values=data,
                        error=FormError(form_id, refused.field, refused.fr, refused.en))
        done = str(changed.change.id) if changed else "0"
        target = path + "?" + urlencode({**_kept(query), "fait": done})
        return guard.finish(request, RedirectResponse(target, 303), session)

    return router


def _kept(query: Mapping[str, str]) -> dict[str, str]:
    """What a page's address says of what it shows (not the last confirmation)."""
    return {k: v for k, v in query.items() if k in ("semaine", "mois", "vehicule")}


def _nested(data: dict[str, str]) -> dict[str, Any]:
    """A form's `entry.arrive` fields as the `entry` the change's model has."""
    out: dict[str, Any] = {k: v for k, v in data.items() if not k.startswith("entry.")}
    entry = {k.removeprefix("entry."): v for k, v in data.items() if k.startswith("entry.")}
    if entry:
        out["entry"] = entry
    return out


@dataclass(frozen=True)
class Done:
    """What the last change did, said at the top of the page it was made from."""

    row: views.ChangeRow | None  # None: it changed nothing (the same change again)


def _done(tournee: Tournee, said: str | None) -> Done | None:
    if said == "0":
        return Done(None)
    found = [c for c in tournee.history() if str(c.id) == said]
    return Done(views.history(found, tournee.fleet)[0]) if found else None
