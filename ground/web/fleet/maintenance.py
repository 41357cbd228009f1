"""The maintenance part of a vehicle's page: where each item stands, and the fleet
manager's two forms, "done" (when, at what odometer, a note) and the item's interval.
Each form is checked whole before anything is kept; a refusal says the field, in French."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ground.maintenance import Due, Interval, MaintenanceBook, Refused
from ground.web.auth import Session
from ground.web.fleet.security import Guard, form
from ground.web.fleet.sources import AlertSource

STATE_FR = {"ok": "à jour", "soon": "à prévoir", "overdue": "en retard",
            "unknown": "à renseigner"}  # fmt: skip
STATE_EN = {"ok": "up to date", "soon": "due soon", "overdue": "overdue",
            "unknown": "to be filled in"}  # fmt: skip
FIELD_FR = {"on": "date", "odometer_km": "kilométrage", "every_km": "tous les … km",
            "every_hours": "toutes les … heures", "every_days": "tous les … jours"}  # fmt: skip


def interval_fr(i: Interval) -> str:
    """ "tous les 15 000 km ou 365 jours"."""
    parts = [f"{_n(i.every_km)} km" if i.every_km else "",
             f"{_n(i.every_hours)} heures moteur" if i.every_hours else "",
             f"{i.every_days} jours" if i.every_days else ""]
    return "tous les " + " ou ".join(p for p in parts if p)


def used_fr(d: Due) -> str:
    parts = [f"{_n(d.km)} km" if d.km is not None and d.interval.every_km else "",
             f"{_n(d.hours)} h" if d.hours is not None and d.interval.every_hours else "",
             f"{d.days} jours" if d.days is not None else ""]
    return ", ".join(p for p in parts if p) or "—"


def _n(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}".replace(",", "\u202f")


def maintenance_router(book: MaintenanceBook, alerts: AlertSource | None, guard: Guard,
                       page: Callable[..., Response],
                       told: Callable[[set[str]], object]) -> APIRouter:
    """`page` renders a dashboard template; `told` tells the open pages a vehicle changed."""
    router = APIRouter(include_in_schema=False)
    page_user = Depends(guard.page_session)

    def refused(request: Request, session: Session, status: int, fr: str) -> Response:
        return page(request, "fleet_error.html", session, status_code=status,
                    title_fr="Entretien non enregistré", title_en="Maintenance not saved",
                    message=fr)  # fmt: skip

    async def kept(request: Request, vehicle: str, session: Session,
                   keep: Callable[[dict[str, str]], None]) -> Response:
        data = await form(request)
        if not guard.csrf_ok(request, session, data):
            return refused(request, session, 403, "Le jeton de sécurité du formulaire est "
                           "absent ou périmé : rechargez la page et recommencez.")
        if not session.may("maintenance"):
            return refused(request, session, 403, "Votre rôle ne permet pas d'enregistrer "
                           "l'entretien (réservé à la gestion de flotte).")
        if vehicle not in {v.id for v in book.fleet.vehicles}:
            return refused(request, session, 404, "Ce véhicule n'existe pas.")
        try:
            await run_in_threadpool(keep, data)
        except Refused as exc:
            return refused(request, session, 422, f"{FIELD_FR.get(exc.field, exc.field)} : "
                                                  f"{exc.fr}.")  # fmt: skip
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            if not err["loc"]:  # the interval as a whole: none of its three given
                return refused(request, session, 422, "Donnez au moins un intervalle : km, "
                                                      "heures moteur ou jours.")  # fmt: skip
            field = str(err["loc"][-1])
            return refused(request, session, 422, f"{FIELD_FR.get(field, field)} : valeur "
                                                  "invalide.")  # fmt: skip
        if alerts is not None:  # a reminder closes now, not at the next timer
            await run_in_threadpool(alerts.evaluate, {vehicle})
        told({vehicle})
        return guard.finish(request, RedirectResponse(
            f"/fleet/vehicles/{vehicle}#maintenance", 303), session)

    @router.post("/vehicles/{vehicle}/maintenance/{item}/done")
    async def done(request: Request, vehicle: str, item: str,
                   session: Session = page_user) -> Response:
        def keep(data: dict[str, str]) -> None:
            try:
                on = date.fromisoformat(data.get("on", ""))
            except ValueError:
                raise Refused("on", "date invalide (AAAA-MM-JJ)") from None
            km = data.get("odometer_km", "").replace(" ", "").replace("\u202f", "")
            try:
                odometer = float(km.replace(",", ".")) if km else None
            except ValueError:
                raise Refused("odometer_km", "nombre attendu") from None
            book.record_done(vehicle, item, on, odometer, session.user,
                             data.get("note", ""))  # fmt: skip

        return await kept(request, vehicle, session, keep)

    @router.post("/vehicles/{vehicle}/maintenance/{item}/interval")
    async def interval(request: Request, vehicle: str, item: str,
                       session: Session = page_user) -> Response:
        def keep(data: dict[str, str]) -> None:
            given = {k: data[k] for k in ("every_km", "every_hours", "every_days")
                     if data.get(k, "").strip()}  # fmt: skip
            book.set_interval(vehicle, item, Interval.model_validate(given), session.user)

        return await kept(request, vehicle, session, keep)

    return router
