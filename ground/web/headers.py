"""The security headers of every answer of the ground's web server, public or fleet, page,
API, stream, static file or error: one ASGI middleware, outermost, so nothing escapes it.

The Content-Security-Policy allows only this server's own scripts, styles, images and
connections (the live streams and the panel fetch): no inline script or style exists in
the templates or static files (tests/test_web_headers.py checks), so none is allowed, and
an injected `<script>` or `style=` would not run. No page may be framed (clickjacking of
the dashboard's buttons), forms post only here, and no referrer leaves for other sites.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])  # fmt: skip
# Features no page uses: refused to this site and to anything it might embed.
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts are not ours to judge


def security_headers(hsts: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
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
    """Adds `security_headers(hsts)` to every HTTP response's head."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.headers = security_headers(hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                head = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    head[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
