"""The ground's web application: the public room (mairie pages, JSON API, live streams,
iCalendar) and, when configured, the fleet managers' room under /fleet, behind its login.

Each room is a router of its own (`ground.web.public`, `ground.web.fleet`); this module
only puts them together with the static files, the API's documentation page, the French
"page not found", the security headers (`ground.web.headers`) and the request body limit.

The API is documented by /openapi.json and by /api, a plain page made from it here.
FastAPI's Swagger UI (/docs) and ReDoc are off: they load their scripts from a CDN, and
serving them ourselves would mean npm in the setup and a megabyte of vendored JavaScript
with an inline start-up script, for three GET endpoints that a page lists as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from ground.precision import PrecisionTable
from ground.web.headers import SecurityHeaders, content_security_policy
from ground.web.map import MapSettings
from ground.web.public.kit import KitSettings
from ground.web.public.routes import REFRESH_S, TEMPLATES, Board, public_router, public_templates
from ground.web.server import HttpSettings
from medicobus.clock import Clock, SystemClock


class GroundApp(FastAPI):
    """FastAPI with the security headers outside everything, even its server-error page
    and its body limit's 413 (user middleware would sit inside those)."""

    def __init__(self, *, hsts: bool, csp: str, **kwargs: Any) -> None:
        self.hsts, self.csp = hsts, csp
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), hsts=self.hsts, csp=self.csp)


def create_app(board: Board, clock: Clock | None = None, refresh_s: float = REFRESH_S,
               fleet: APIRouter | None = None, http: HttpSettings | None = None,
               console: APIRouter | None = None,
               map_settings: MapSettings | None = None,
               kit: KitSettings | None = None,
               precision: Callable[[], PrecisionTable] | None = None) -> FastAPI:  # fmt: skip
    """The public mairie pages and API; with `fleet`, the fleet managers' dashboard (behind
    its own login) under /fleet, and with `console` the coordinator's console beside it.
    `http`: the headers and body limit (default settings); `map_settings`: the live map's
    tile server, whose images the CSP lets in; `precision`: the current table of how
    precisely the public may be told an ETA (default: none recorded, rounded to 5 min)."""
    clock = clock or getattr(board, "clock", None) or SystemClock()
    http = http or HttpSettings()
    tiles = map_settings or MapSettings()
    csp = content_security_policy([tiles.tile_origin])
    app = GroundApp(
        hsts=http.hsts,
        csp=csp,
        max_body_size=http.max_body_bytes,
        docs_url=None,
        redoc_url=None,
        title="Médicobus",
        description="Passages et heures d'arrivée estimées du médicobus, par commune. "
        "Live visits and ETAs of the médicobus, per commune. No patient data.",
        version="1",
    )
    app.mount("/static", StaticFiles(directory=TEMPLATES.parent / "static"), name="static")
    for room in (fleet, console):
        if room is not None:
            app.include_router(room, prefix="/fleet")
    app.include_router(public_router(board, clock, refresh_s, kit, csp, precision))
    templates = public_templates()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not request.url.path.startswith(("/api/", "/static/")):
            return templates.TemplateResponse(request, "404.html", {}, status_code=404)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.get("/api", response_class=HTMLResponse, include_in_schema=False)
    def api_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "api.html", {"spec": app.openapi()})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
