"""The ground's web application: the public room (mairie pages, JSON API, live streams,
iCalendar) and, when configured, the fleet managers' room under /fleet, behind its login.

Each room is a router of its own (`ground.web.public`, `ground.web.fleet`); this module
only puts them together with the static files and the French "page not found".
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ground.web.public.routes import REFRESH_S, TEMPLATES, Board, public_router, public_templates
from medicobus.clock import Clock, SystemClock


def create_app(board: Board, clock: Clock | None = None, refresh_s: float = REFRESH_S,
               fleet: APIRouter | None = None) -> FastAPI:
    """The public mairie pages and API; with `fleet`, the fleet managers' dashboard (behind
    its own login) under /fleet."""
    clock = clock or getattr(board, "clock", None) or SystemClock()
    app = FastAPI(
        title="Médicobus",
        description="Passages et heures d'arrivée estimées du médicobus, par commune. "
        "Live visits and ETAs of the médicobus, per commune. No patient data.",
        version="1",
    )
    app.mount("/static", StaticFiles(directory=TEMPLATES.parent / "static"), name="static")
    if fleet is not None:
        app.include_router(fleet, prefix="/fleet")
    app.include_router(public_router(board, clock, refresh_s))
    templates = public_templates()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not request.url.path.startswith(("/api/", "/static/")):
            return templates.TemplateResponse(request, "404.html", {}, status_code=404)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
