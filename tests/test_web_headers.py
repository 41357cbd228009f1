"""The security headers of every answer (pages, API, streams, static files, errors, public
and fleet), on the real uvicorn server; pages with no inline script or style for the CSP
to need; and the API documented without anything from a CDN. (tests/test_web_browser.py
and tests/test_fleet_browser.py check in Chromium that the pages work under the CSP.)"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from ground.web.app import create_app
from ground.web.headers import CSP
from ground.web.server import HttpSettings
from tests.test_fleet_pages import PASSWORD, USER, FleetScene
from tests.test_web_pages import NOCE, VEHICLE, LiveServer

STATIC = Path(__file__).resolve().parents[1] / "ground" / "web" / "static"
TEMPLATES = STATIC.parent / "templates"
# (path, expected status) as a stranger; then the same logged in
PUBLIC = [("/", 200), (f"/communes/{NOCE}", 200), ("/communes/99999", 404), ("/nowhere", 404),
          ("/api", 200), ("/openapi.json", 200), ("/api/v1/stops", 200),
          (f"/api/v1/stops/{NOCE}", 200), (f"/api/v1/stops/{NOCE}/calendar.ics", 200),
          ("/api/v1/stops/99999", 404), ("/static/style.css", 200), ("/static/live.js", 200),
          ("/static/fleet.js", 200), ("/static/nothing.js", 404), ("/healthz", 200),
          ("/fleet/login", 200), ("/fleet/", 303), ("/fleet/api/vehicles", 401)]  # fmt: skip
FLEET = [("/fleet/", 200), (f"/fleet/vehicles/{VEHICLE}", 200),
         (f"/fleet/vehicles/{VEHICLE}/panel", 200), (f"/fleet/vehicles/{VEHICLE}/fridge.csv", 200),
         ("/fleet/vehicles/nope", 404), ("/fleet/api/vehicles", 200),
         (f"/fleet/api/vehicles/{VEHICLE}", 200)]  # fmt: skip
STREAMS = [f"/communes/{NOCE}/events", "/fleet/events"]


@pytest.fixture
def fleet(tmp_path: Path) -> FleetScene:
    f = FleetScene(tmp_path / "ground.db")
    f.healthy_day()
    f.fridge_excursion()
    return f


def assert_secured(r: httpx.Response, where: str, hsts: bool = False) -> None:
    h = r.headers
    assert h.get("content-security-policy") == CSP, where
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert "frame-ancestors 'none'" in CSP and "default-src 'none'" in CSP
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("x-frame-options") == "DENY", where
    assert h.get("referrer-policy") == "same-origin", where
    assert "camera=()" in h.get("permissions-policy", ""), where
    assert ("strict-transport-security" in h) is hsts, where


def logged_in(client: httpx.Client) -> None:
    r = client.post("/fleet/login", data={"name": USER, "password": PASSWORD},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303


def test_every_answer_carries_the_security_headers(fleet: FleetScene) -> None:
    with LiveServer(fleet.app()) as server, httpx.Client(base_url=server.url) as client:
        for path, status in PUBLIC:
            r = client.get(path, follow_redirects=False)
            assert r.status_code == status, path
            assert_secured(r, path)
        for path in STREAMS[:1]:
            with client.stream("GET", path) as r:
                assert r.status_code == 200
                assert_secured(r, path)
        # errors made by the framework, not by a route: wrong method, body too large
        assert_secured(client.put("/api/v1/stops"), "405")
        big = client.post("/fleet/login", content=b"x" * 100_000,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big.status_code == 413
        assert_secured(big, "413")
        logged_in(client)
        for path, status in FLEET:
            r = client.get(path, follow_redirects=False)
            assert r.status_code == status, path
            assert_secured(r, path)
        with client.stream("GET", STREAMS[1]) as r:
            assert r.status_code == 200
            assert_secured(r, STREAMS[1])


def test_even_a_server_error_carries_them(fleet: FleetScene) -> None:
    app = fleet.app()

    @app.get("/boom")
    def boom() -> None:  # a bug, as the outermost error page answers it
        raise RuntimeError("a bug")

    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        r = client.get("/boom")
        assert r.status_code == 500
        assert_secured(r, "500")


def test_hsts_only_when_configured(fleet: FleetScene) -> None:
    app = create_app(fleet.board, http=HttpSettings(hsts=True))
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        for path in ("/", "/api/v1/stops", "/static/style.css", "/nowhere"):
            r = client.get(path)
            assert_secured(r, path, hsts=True)
            assert r.headers["strict-transport-security"] == "max-age=31536000"


INLINE = [
    (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "style= attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "on…= event handler"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"(src|href)\s*=\s*[\"']?(https?:)?//", re.I), "something from another site"),
]


def assert_no_inline(html: str, where: str) -> None:
    for pattern, what in INLINE:
        m = pattern.search(html)
        assert m is None, f"{where}: {what}: {m.group(0) if m else ''}"


def test_pages_have_nothing_inline_for_the_csp_to_allow(fleet: FleetScene) -> None:
    # what is served, the charts' SVG included ...
    with LiveServer(fleet.app()) as server, httpx.Client(base_url=server.url) as client:
        pages = [p for p, _ in PUBLIC if not p.startswith(("/static", "/api/", "/openapi"))]
        for path in pages:
            r = client.get(path, follow_redirects=False)
            if r.headers["content-type"].startswith("text/html"):
                assert_no_inline(r.text, path)
        logged_in(client)
        for path in ("/fleet/", f"/fleet/vehicles/{VEHICLE}", f"/fleet/vehicles/{VEHICLE}/panel"):
            page = client.get(path).text
            assert "<svg" in page or path == "/fleet/"
            assert_no_inline(page, path)
    # ... and what could be: every template, and the scripts, which make no style attribute
    for template in TEMPLATES.glob("*.html"):
        assert_no_inline(template.read_text(encoding="utf-8"), template.name)
    for script in STATIC.glob("*.js"):
        code = script.read_text(encoding="utf-8")
        assert not re.search(r"\.style\b|setAttribute\(\s*[\"']style|eval\(|new Function",
                             code), script.name  # fmt: skip


def test_api_is_documented_here_and_nothing_comes_from_a_cdn(fleet: FleetScene) -> None:
    with LiveServer(fleet.app()) as server, httpx.Client(base_url=server.url) as client:
        for gone in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert client.get(gone).status_code == 404, gone
        spec = client.get("/openapi.json").json()
        page = client.get("/api").text
        assert "API publique" in page and "Public API" in page
        for path, ops in spec["paths"].items():
            for method in ops:
                assert f"{method.upper()} {path}" in page
        assert '<a href="/api">' in client.get("/").text
        assert "/fleet" not in page  # the dashboard stays out of the public documentation
