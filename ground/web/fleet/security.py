"""The dashboard's locks, around every route: who is logged in (the session cookie of
`ground.web.auth`), what private pages send back (never cached; the headers against
framing and sniffing are every page's, `ground.web.headers`), and which requests are
refused (another site's form posts, forged CSRF tokens, redirects away)."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import Response

from ground.web.auth import COOKIE, DEVICE_COOKIE, DEVICE_LIFETIME, Auth, AuthSettings, Session


def safe_next(target: str | None) -> str:
    """Only back into the dashboard: never an open redirect to another site."""
    if not target:
        return "/fleet/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/fleet/") or "\\" in target:
        return "/fleet/"
    return target


def same_origin(request: Request) -> bool:
    """Browsers send Origin on POST: refuse another site's (CSRF, login CSRF)."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or an old one: SameSite=Strict still holds
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def form(request: Request) -> dict[str, str]:
    # Parsed here: a urlencoded form needs no python-multipart dependency. The app's body
    # limit (`HttpSettings.max_body_bytes`) has already refused a large one with 413.
    body = await request.body()
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


class Guard:
    """Sessions read from and written to the cookie, and the headers of private pages."""

    def __init__(self, auth: Auth, settings: AuthSettings) -> None:
        self.auth = auth
        self.settings = settings

    def _secure(self, request: Request) -> bool:
        configured = self.settings.cookie_secure
        return request.url.scheme == "https" if configured is None else configured

    def finish(self, request: Request, response: Response, session: Session | None = None,
               touch: bool = True) -> Response:
        """Private pages: never cached (not even the back button after logout); the
        session's idle timer restarts on what a person did (not the stream)."""
        response.headers["Cache-Control"] = "no-store"
        if session is not None and touch:
            response.set_cookie(COOKIE, self.auth.refresh(session),
                                max_age=self.auth.max_age(session), path="/fleet",
                                secure=self._secure(request), httponly=True,
                                samesite="strict")  # fmt: skip
        return response

    def forget(self, request: Request, response: Response) -> None:
        """The browser drops the session's cookie (at logout)."""
        response.delete_cookie(COOKIE, path="/fleet", secure=self._secure(request),
                               httponly=True, samesite="strict")  # fmt: skip

    def remember_browser(self, request: Request, response: Response, user: str) -> None:
        """At a login: this browser is now a known one of `user` (sent to the login only)."""
        response.set_cookie(DEVICE_COOKIE, self.auth.browser_token(user),
                            max_age=int(DEVICE_LIFETIME.total_seconds()), path="/fleet/login",
                            secure=self._secure(request), httponly=True,
                            samesite="strict")  # fmt: skip

    def browser_of(self, request: Request, name: str) -> str | None:
        """The id of this browser if it is a known one of account `name`."""
        return self.auth.known_browser(request.cookies.get(DEVICE_COOKIE), name)

    def session_of(self, request: Request) -> Session | None:
        return self.auth.read(request.cookies.get(COOKIE))

    def csrf_ok(self, request: Request, session: Session, data: dict[str, str]) -> bool:
        """A form post of this session, from the dashboard itself."""
        return same_origin(request) and self.auth.check_csrf(session, data.get("csrf"))

    def page_session(self, request: Request) -> Session:
        """A page's dependency: the session, else a redirect to the login page."""
        s = self.session_of(request)
        if s is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = "/fleet/"
            raise HTTPException(303, "login required", headers={
                "Location": f"/fleet/login?next={quote(target, safe='/')}",
                "Cache-Control": "no-store"})
        return s

    def api_session(self, request: Request) -> Session:
        """The API's and the scripts' dependency: the session, else 401."""
        s = self.session_of(request)
        if s is None:
            raise HTTPException(401, "login required", headers={
                "WWW-Authenticate": 'Cookie realm="medicobus-fleet"',
                "Cache-Control": "no-store"})
        return s
