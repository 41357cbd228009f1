"""The waiting room's screen, served by the bus itself on its local network (no cellular
coverage needed): a TV or a tablet in the salle des fêtes opens http://<the Pi>:8080/ and
shows the numbers called and to which room, the number waiting and the estimated wait, in
letters readable across the room; a chime on each call and, optionally, the call spoken in
French by the browser's speech synthesis. Numbers only: never a name or initials.

The kiosk owns the queue (`kiosk.db`); this process only reads it (`PatientQueue.watch`:
the session the kiosk opened last) every `[display] poll_s` and pushes what changed to the
screens over Server-Sent Events, so a call shows within a second. `medicobus display`
runs it under uvicorn; the page's script only places the texts made here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader

from onboard.config import DisplaySettings
from onboard.kiosk.queue import PatientQueue

STATIC = Path(__file__).parent / "static"
HISTORY = 3  # the calls before the latest, smaller
KEEPALIVE_S = 15.0
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "media-src 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass(frozen=True)
class RoomView:
    """What the screen shows: worded once, here, in French."""

    texts: dict[str, str]  # element id -> text ("" hides it)
    call: str  # the latest call, "" before any: a new value is a new call (the chime)
    say: str  # the call as spoken


def room_view(queue: PatientQueue, room: str) -> RoomView:
    """The waiting room now, from the kiosk's queue file."""
    if queue.watch() is None:
        return RoomView(_texts(state="Le médicobus n'est pas encore ouvert ici."), "", "")
    tickets = queue.tickets()
    state = queue.state()
    called = sorted((t for t in tickets if t.called_at is not None),
                    key=lambda t: (t.called_at, t.number), reverse=True)
    latest = next((t for t in called if t.status == "called"), None)
    earlier = [t for t in called if t is not latest][:HISTORY]
    people = {0: "Personne en attente", 1: "1 personne en attente"}.get(
        state.waiting, f"{state.waiting} personnes en attente")
    if not state.open:
        status = "Consultations terminées ici pour aujourd'hui."
    elif state.paused:
        status = "Le médecin fait une courte pause."
    else:
        status = ""
    texts = _texts(
        number=str(latest.number) if latest else "",
        room=f"→ {room}" if latest else "",
        idle="" if latest else "Nous appellerons votre numéro ici.",
        earlier=("Appelés avant : " + " · ".join(str(t.number) for t in earlier))
        if earlier else "",
        waiting=people if state.open else "",
        wait=f"Attente estimée : {state.wait_min} min" if state.open and state.waiting else "",
        state=status,
    )
    if latest is None:
        return RoomView(texts, "", "")
    assert latest.called_at is not None
    return RoomView(texts, f"{latest.visit}/{latest.number}/{latest.called_at.isoformat()}",
                    f"Ticket numéro {latest.number}, {room}.")


def _texts(**given: str) -> dict[str, str]:
    ids = ("number", "room", "idle", "earlier", "waiting", "wait", "state")
    return {i: given.get(i, "") for i in ids}


def waiting_room_app(queue: PatientQueue, settings: DisplaySettings) -> FastAPI:
    """The screen's page, its stream and its files (the queue's clock dates the forecasts)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    page = Environment(loader=FileSystemLoader(STATIC), autoescape=True).get_template(
        "display.html")

    @app.middleware("http")
    async def headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    def view_json() -> str:
        view = room_view(queue, settings.room)
        return json.dumps({"texts": view.texts, "call": view.call, "say": view.say},
                          ensure_ascii=False)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        view = room_view(queue, settings.room)  # readable before the script runs
        html = page.render(texts=view.texts, call=view.call, chime=int(settings.chime),
                           speech=int(settings.speech))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        sent, quiet = "", 0.0
        while True:
            data = await asyncio.to_thread(view_json)
            if data != sent or quiet >= KEEPALIVE_S:
                yield f"data: {data}\n\n"
                sent, quiet = data, 0.0
            await asyncio.sleep(settings.poll_s)
            quiet += settings.poll_s

    @app.get("/events")
    def events() -> Response:
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return app


def serve(queue: PatientQueue, settings: DisplaySettings) -> None:
    """Run the screen's server until stopped (`medicobus display`)."""
    import uvicorn

    uvicorn.run(waiting_room_app(queue, settings), host=settings.host,
                port=settings.port, log_level="warning", access_log=False)
