"""The security headers of every answer of the ground's web server, public or fleet, page,
API, stream, static file or error: one ASGI middleware, outermost, so nothing escapes it.

The Content-Security-Policy allows only this server's own scripts, styles, images and
connections (the live streams and the panel fetch), and images from the map's tile server
(its origin alone, from `[map]`: `ground.web.map`): no inline script or style exists in
the templates or static files (tests/test_web_headers.py checks), so none is allowed, and
an injected `<script>` or `style=` would not run. No page may be framed (clickjacking of
the dashboard's buttons), forms post only here, and no referrer leaves for other sites.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ground.web.map import MapSettings


def content_security_policy(image_origins: Sequence[str] = ()) -> str:
    """The policy, with images allowed from this site and `image_origins` (the tiles')."""
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        " ".join(["img-src 'self'", *image_origins]),
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ])  # fmt: skip


CSP = content_security_policy([MapSettings().tile_origin])  # with the default map settings
# Features no page uses: refused to this site and to anything it might embed.
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts are not ours to judge


def security_headers(hsts: bool, csp: str = CSP) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
        "Referrer-Policy": "same-origin",
        "Permissions-Policy": PERMISSIONS,
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if hsts:
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeaders:
    """Adds `security_headers(hsts, csp)` to every HTTP response's head, but for a header
    the route set itself: the phone page's stricter referrer policy, the embeddable
    block's framing policy."""

    def __init__(self, app: ASGIApp, hsts: bool = False, csp: str = CSP) -> None:
        self.app = app
        self.headers = security_headers(hsts, csp)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                head = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    head.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
