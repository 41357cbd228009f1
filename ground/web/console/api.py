"""The console's JSON API, under /fleet/api/v1 (the session cookie's path), in the public
/openapi.json: reading the tournée's changes and its export, and making a change.

A change needs a session of the `coordination` role and, as every write behind the login,
the session's CSRF token (here in the `X-CSRF-Token` header) from the same origin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ground.tournee import Refused, Tournee, export_toml
from ground.web.auth import Session
from ground.web.console.changes import apply, change_out, changed_out
from ground.web.console.models import ChangedOut, ChangeIn, ChangeOut, RefusedOut, SessionOut
from ground.web.fleet.security import Guard, same_origin

CSRF_HEADER = "X-CSRF-Token"


def refused(exc: Refused, status: int = 422) -> JSONResponse:
    return JSONResponse(RefusedOut(field=exc.field, detail_fr=exc.fr,
                                   detail_en=exc.en).model_dump(), status)  # fmt: skip


def console_api(tournee: Tournee, guard: Guard) -> APIRouter:
    router = APIRouter(tags=["tournée (console)"])
    api_user = Depends(guard.api_session)
    zone = tournee.fleet.zone

    @router.get("/api/v1/session", response_model=SessionOut,
                summary="Who is logged in, their role, and the CSRF token a change needs")
    def who(request: Request, session: Session = api_user) -> Response:
        out = SessionOut(user=session.user, role=session.role, csrf=session.csrf)
        return guard.finish(request, Response(out.model_dump_json(),
                                              media_type="application/json"), session)

    @router.get("/api/v1/changes", response_model=list[ChangeOut],
                summary="The tournée's changes, latest first (who, when, why)")  # fmt: skip
    def changes(request: Request, session: Session = api_user) -> Response:
        body = "[" + ",".join(change_out(c, zone).model_dump_json()
                              for c in tournee.history()) + "]"  # fmt: skip
        return guard.finish(request, Response(body, media_type="application/json"), session)

    @router.get("/api/v1/tournee.toml", summary="The tournée as a fleet file (to keep in git)",
                responses={200: {"content": {"application/toml": {}}}})  # fmt: skip
    def export(request: Request, session: Session = api_user) -> Response:
        return guard.finish(request, Response(
            export_toml(tournee.fleet), media_type="application/toml; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="tournee.toml"'}), session)

    @router.post("/api/v1/changes", response_model=ChangedOut,
                 responses={403: {"model": RefusedOut}, 422: {"model": RefusedOut}},
                 summary="Cancel, move or add a visit, park elsewhere, edit a recurring "
                 "entry, undo a change (coordination role, X-CSRF-Token header)")  # fmt: skip
    async def make(request: Request, change: Annotated[ChangeIn, Body(openapi_examples={
            "cancel": {"value": {"kind": "cancel", "visit": "2027-03-09/noce/am",
                                 "reason": "Médecin malade"}}})],
            session: Session = api_user) -> Response:  # fmt: skip
        if not (same_origin(request) and guard.auth.check_csrf(
                session, request.headers.get(CSRF_HEADER))):  # fmt: skip
            return guard.finish(request, refused(Refused(
                "csrf", "jeton de sécurité absent ou périmé : rechargez la page",
                "missing or stale CSRF token"), 403), session)  # fmt: skip
        if not session.may("tournee"):
            return guard.finish(request, refused(Refused(
                "role", "votre rôle ne permet pas de modifier la tournée",
                "your role may not change the tournée"), 403), session)  # fmt: skip
        try:
            changed = await run_in_threadpool(apply, tournee, change, session.user)
        except Refused as exc:
            return guard.finish(request, refused(exc), session)
        return guard.finish(request, Response(changed_out(changed, zone).model_dump_json(),
                                              media_type="application/json"), session)

    return router
