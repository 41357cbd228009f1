"""The fleet dashboard's door: login required on every page and API (a redirect or a 401
that leaks nothing), hashed passwords, sessions that expire, logout, CSRF, and a slowdown
for password guessing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ground.web.auth import (
    COOKIE,
    DEVICE_COOKIE,
    MAX_KEYS,
    PER_ADDRESS,
    Auth,
    AuthSettings,
    Failures,
    ScryptHash,
    User,
    hash_password,
    verify_password,
)
from medicobus.settings import ConfigError, parse_toml
from tests.test_fleet_pages import (
    HASHES,
    OTHER,
    OTHER_PASSWORD,
    PASSWORD,
    USER,
    FleetScene,
    csrf_of,
    login,
)
from tests.test_web_pages import VEHICLE, LiveServer

ALERT_ID = 1  # the fridge excursion's alert, the first the engine opens
# (method, path, kind): every route of the dashboard but the login form
ROUTES = [
    ("GET", "/fleet/", "page"),
    ("GET", "/fleet", "page"),
    ("GET", f"/fleet/vehicles/{VEHICLE}", "page"),
    ("GET", "/fleet/vehicles/nope", "page"),
    ("GET", f"/fleet/vehicles/{VEHICLE}/fridge.csv", "page"),
    ("GET", f"/fleet/vehicles/{VEHICLE}/fridge.csv?from=2026-11-01&to=2026-11-23", "page"),
    ("GET", f"/fleet/vehicles/{VEHICLE}/fridge.csv?from=bad", "page"),
    ("POST", f"/fleet/vehicles/{VEHICLE}/alerts/{ALERT_ID}/acknowledge", "page"),
    ("POST", "/fleet/logout", "page"),
    ("GET", f"/fleet/vehicles/{VEHICLE}/panel", "api"),
    ("GET", "/fleet/api/vehicles", "api"),
    ("GET", f"/fleet/api/vehicles/{VEHICLE}", "api"),
    ("GET", "/fleet/api/vehicles/nope", "api"),
    ("GET", "/fleet/events", "api"),
]
# What must never appear in a refusal: ids, names, readings, codes, people.
SECRETS = [VEHICLE, "Médicobus du Perche", "M\\u00e9dicobus", "9.6", "9,6", "P0301", "Nocé",
           "fridge", "temp_c", USER]


@pytest.fixture
def fleet(tmp_path: Path) -> FleetScene:
    f = FleetScene(tmp_path / "ground.db")
    f.healthy_day()
    f.fridge_excursion()
    f.reading("engine", {"rpm": 800}, codes=["P0301"])
    return f


@pytest.fixture
def anon(fleet: FleetScene) -> Iterator[TestClient]:
    with TestClient(fleet.app()) as c:
        yield c


def assert_refused(r: object, kind: str, where: str) -> None:
    assert isinstance(r, httpx.Response)
    if kind == "page":
        assert r.status_code == 303, f"{where}: {r.status_code}"
        assert r.headers["location"].startswith("/fleet/login?next=/fleet"), where
    else:
        assert r.status_code == 401, f"{where}: {r.status_code}"
        assert r.headers["content-type"].startswith("application/json"), where
        assert r.json() == {"detail": "login required"}, where
    assert r.headers.get("set-cookie") is None or "medicobus_fleet=claire" not in \
        r.headers["set-cookie"]  # fmt: skip
    body = r.text
    for secret in SECRETS:
        assert secret not in body, f"{where} leaks {secret!r}"


@pytest.mark.parametrize(("method", "path", "kind"), ROUTES)
def test_every_route_requires_a_login(anon: TestClient, fleet: FleetScene, method: str,
                                      path: str, kind: str) -> None:
    r = anon.request(method, path, follow_redirects=False)
    if path == "/fleet":  # the app adds the slash first
        assert r.status_code == 307 and r.headers["location"].endswith("/fleet/")
        r = anon.get("/fleet/", follow_redirects=False)
    assert_refused(r, kind, f"{method} {path}")
    # nor with a forged, tampered or unsigned cookie
    good = Auth(fleet.settings, fleet.wall).issue(USER)
    user, issued, last, nonce, mac = good.split(".")
    for forged in ("x", f"{USER}.1.1.n.mac", f"{OTHER}.{issued}.{last}.{nonce}.{mac}",
                   f"{user}.{issued}.{int(last) + 3600}.{nonce}.{mac}",
                   Auth(settings_with_secret("another secret, another server"),
                        fleet.wall).issue(USER)):  # fmt: skip
        anon.cookies.set(COOKIE, forged, path="/fleet")
        r = anon.request(method, path, follow_redirects=False)
        if path == "/fleet":
            continue
        assert_refused(r, kind, f"{method} {path} with cookie {forged!r}")
    anon.cookies.clear()
    assert fleet.alerts.get(ALERT_ID).acknowledged_by is None


def settings_with_secret(secret: str) -> AuthSettings:
    return AuthSettings(users=[User(name=n, password_hash=h) for n, h in HASHES.items()],
                        session_secret=secret)  # fmt: skip


def test_login_page_is_public_and_in_french(anon: TestClient) -> None:
    r = anon.get("/fleet/login?next=/fleet/vehicles/perche-1")
    assert r.status_code == 200 and '<html lang="fr">' in r.text
    assert "Connexion" in r.text and "Log in" in r.text
    assert 'name="next" value="/fleet/vehicles/perche-1"' in r.text
    assert 'autocomplete="current-password"' in r.text
    assert VEHICLE not in r.text.replace('value="/fleet/vehicles/perche-1"', "")


def test_wrong_password_or_unknown_user_gets_no_session(anon: TestClient) -> None:
    for name, password in ((USER, "wrong"), (USER, PASSWORD.upper()), ("mallory", PASSWORD),
                           (USER, "")):  # fmt: skip
        r = anon.post("/fleet/login", data={"name": name, "password": password},
                      follow_redirects=False)  # fmt: skip
        assert r.status_code in (401, 429), name
        assert "set-cookie" not in r.headers
        if r.status_code == 401:
            assert "Identifiant ou mot de passe incorrect" in r.text
    assert anon.get("/fleet/api/vehicles").status_code == 401


def test_login_sets_a_strict_httponly_cookie_and_goes_back(anon: TestClient) -> None:
    r = anon.post("/fleet/login", data={"name": USER, "password": PASSWORD,
                                        "next": f"/fleet/vehicles/{VEHICLE}"},
                  follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/fleet/vehicles/{VEHICLE}"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={USER}.")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/fleet" in cookie
    assert "Max-Age=43200" in cookie  # the absolute limit, 12 h
    assert "Secure" not in cookie  # plain http in this test; https gets Secure
    assert PASSWORD not in cookie and HASHES[USER].split("$")[-1] not in cookie
    assert anon.get(f"/fleet/vehicles/{VEHICLE}").status_code == 200
    assert anon.get("/fleet/api/vehicles").json()[0]["id"] == VEHICLE


def test_secure_cookie_when_configured(tmp_path: Path) -> None:
    fleet = FleetScene(tmp_path / "g.db", cookie_secure=True)
    with TestClient(fleet.app()) as c:
        assert "Secure" in login(c).headers["set-cookie"]


def test_no_open_redirect_after_login(anon: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/fleet/", "/communes/61309",
                   "/fleet\\..\\x", "javascript:alert(1)"):  # fmt: skip
        r = anon.post("/fleet/login", data={"name": USER, "password": PASSWORD,
                                            "next": target}, follow_redirects=False)  # fmt: skip
        assert r.headers["location"] == "/fleet/", target


def test_passwords_are_stored_hashed_with_salted_scrypt() -> None:
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2, "no salt"
    parsed = ScryptHash.parse(h1)
    assert re.match(r"^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$", h1)
    assert len(parsed.salt) == 16 and len(parsed.key) == 32
    assert "correct horse" not in h1
    assert verify_password("correct horse", h1) and not verify_password("correct hors", h1)
    # a plain-text password in the config is refused when it is loaded, not at login
    with pytest.raises(ConfigError, match="password_hash must look like scrypt"):
        parse_toml('[[users]]\nname = "claire"\npassword_hash = "hunter2"\n', AuthSettings,
                   "ground.toml")  # fmt: skip
    with pytest.raises(ConfigError, match="duplicate user name"):
        parse_toml(f'[[users]]\nname = "a"\npassword_hash = "{h1}"\n'
                   f'[[users]]\nname = "a"\npassword_hash = "{h2}"\n', AuthSettings, "g.toml")
    loaded = parse_toml(f'session_secret = "0123456789abcdef0123"\n'
                        f'[[users]]\nname = "claire"\npassword_hash = "{h1}"\n',
                        AuthSettings, "ground.toml")  # fmt: skip
    assert loaded.users[0].name == "claire" and loaded.idle_minutes == 30
    with pytest.raises(ValueError, match="out of range"):
        ScryptHash.parse(h1.replace("$16384$", "$16383$"))


def test_hash_command_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "ground.web.auth", "hash"],
                         input="le mot de passe\n", capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    stored = out.stdout.strip()
    assert verify_password("le mot de passe", stored)
    short = subprocess.run([sys.executable, "-m", "ground.web.auth", "hash"], input="abc\n",
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert short.returncode == 1 and "8" in short.stderr


def test_session_expires_when_idle(anon: TestClient, fleet: FleetScene) -> None:
    login(anon)
    for _ in range(3):  # active every 29 min: still in
        fleet.wall.advance(29 * 60)
        assert anon.get("/fleet/", follow_redirects=False).status_code == 200
    fleet.wall.advance(31 * 60)
    assert_refused(anon.get("/fleet/", follow_redirects=False), "page", "idle 31 min")
    assert_refused(anon.get("/fleet/api/vehicles"), "api", "idle 31 min")


def test_the_live_stream_does_not_keep_a_session_alive(anon: TestClient,
                                                       fleet: FleetScene) -> None:
    login(anon)
    fleet.wall.advance(20 * 60)
    r = anon.get(f"/fleet/vehicles/{VEHICLE}/panel")  # fetched by the script, not a person
    assert r.status_code == 200 and "set-cookie" not in r.headers
    fleet.wall.advance(11 * 60)
    assert anon.get("/fleet/api/vehicles").status_code == 401


def test_session_expires_after_12_hours_however_active(anon: TestClient,
                                                       fleet: FleetScene) -> None:
    login(anon)
    for _ in range(12 * 60 // 20 - 1):
        fleet.wall.advance(20 * 60)
        assert anon.get("/fleet/api/vehicles").status_code == 200
    fleet.wall.advance(21 * 60)  # 12 h 01 after login
    assert anon.get("/fleet/api/vehicles").status_code == 401
    assert anon.get("/fleet/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_even_for_a_copied_cookie(anon: TestClient) -> None:
    login(anon)
    page = anon.get("/fleet/").text
    stolen = anon.cookies.get(COOKIE)
    assert stolen
    # without its token, logout is refused (and the session stays)
    assert anon.post("/fleet/logout", data={}, follow_redirects=False).status_code == 403
    r = anon.post("/fleet/logout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fleet/login?bye=1"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert "Vous êtes déconnecté" in anon.get("/fleet/login?bye=1").text
    assert anon.get("/fleet/", follow_redirects=False).status_code == 303
    anon.cookies.set(COOKIE, stolen, path="/fleet")  # replayed: revoked server-side
    assert anon.get("/fleet/api/vehicles").status_code == 401


def test_acknowledge_needs_the_session_csrf_token(anon: TestClient, fleet: FleetScene) -> None:
    url = f"/fleet/vehicles/{VEHICLE}/alerts/{ALERT_ID}/acknowledge"
    # another manager's token is no good in this session
    with TestClient(fleet.app()) as other:
        login(other, OTHER, OTHER_PASSWORD)
        others_token = csrf_of(other.get(f"/fleet/vehicles/{VEHICLE}").text)
    login(anon)
    token = csrf_of(anon.get(f"/fleet/vehicles/{VEHICLE}").text)
    assert token != others_token
    for data, headers in (({}, {}), ({"csrf": "0" * 64}, {}), ({"csrf": others_token}, {}),
                          ({"csrf": token}, {"Origin": "https://evil.example"})):  # fmt: skip
        r = anon.post(url, data=data, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (data, headers)
        assert fleet.alerts.get(ALERT_ID).acknowledged_by is None
    r = anon.post(url, data={"csrf": token}, headers={"Origin": "http://testserver"},
                  follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert fleet.alerts.get(ALERT_ID).acknowledged_by == USER
    # an alert of another vehicle or none at all
    assert anon.post("/fleet/vehicles/nope/alerts/1/acknowledge", data={"csrf": token},
                     follow_redirects=False).status_code == 404  # fmt: skip
    assert anon.post(f"/fleet/vehicles/{VEHICLE}/alerts/999/acknowledge",
                     data={"csrf": token}, follow_redirects=False).status_code == 404


def test_login_from_another_site_is_refused(anon: TestClient) -> None:
    r = anon.post("/fleet/login", data={"name": USER, "password": PASSWORD},
                  headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_guessing_is_slowed_down(anon: TestClient, fleet: FleetScene) -> None:
    def attempt(password: str) -> int:
        return anon.post("/fleet/login", data={"name": USER, "password": password},
                         follow_redirects=False).status_code  # fmt: skip

    assert [attempt("guess") for _ in range(4)] == [401, 401, 401, 401]
    r = anon.post("/fleet/login", data={"name": USER, "password": PASSWORD},
                  follow_redirects=False)  # fmt: skip
    assert r.status_code == 429 and r.headers["retry-after"] == "2"  # even the right one
    assert "Trop de tentatives" in r.text
    fleet.wall.advance(2)
    assert attempt("guess") == 401
    fleet.wall.advance(2)  # the wait doubles with each failure
    assert attempt("guess") == 429
    fleet.wall.advance(2)
    assert attempt("guess") == 401
    fleet.wall.advance(4)
    assert attempt("guess") == 429
    fleet.wall.advance(4)
    assert attempt(PASSWORD) == 303  # and a success forgets the failures
    anon.cookies.clear()
    assert attempt("typo") == 401 and attempt(PASSWORD) == 303


def test_changing_a_password_ends_that_users_sessions(fleet: FleetScene) -> None:
    auth = Auth(fleet.settings, fleet.wall)
    cookie = auth.issue(USER)
    assert auth.read(cookie) is not None
    changed = fleet.settings.model_copy(update={"users": [
        User(name=USER, password_hash=hash_password("a new one!")),
        User(name=OTHER, password_hash=HASHES[OTHER])]})  # fmt: skip
    assert Auth(changed, fleet.wall).read(cookie) is None
    removed = fleet.settings.model_copy(update={"users": [
        User(name=OTHER, password_hash=HASHES[OTHER])]})  # fmt: skip
    assert Auth(removed, fleet.wall).read(cookie) is None


# --- guessing on the real server: by address (the peer's, or a trusted proxy's word) and
# by account ---------------------------------------------------------------------------


def guess(client: httpx.Client, name: str, password: str = "guess",
          headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/fleet/login", data={"name": name, "password": password},
                       headers=headers, follow_redirects=False)  # fmt: skip


def test_a_forged_forwarded_header_does_not_escape_the_address_limit(fleet: FleetScene) -> None:
    with LiveServer(fleet.app()) as server, httpx.Client(base_url=server.url) as client:
        # a new name and a new "address" on every guess: only the peer's address counts
        codes = [guess(client, f"user{i}", headers={
            "X-Forwarded-For": f"203.0.113.{i}", "Forwarded": f"for=198.51.100.{i}",
            "X-Real-IP": f"192.0.2.{i}"}).status_code for i in range(5)]  # fmt: skip
        assert codes == [401, 401, 401, 401, 429]
        r = guess(client, USER, PASSWORD, headers={"X-Forwarded-For": "198.51.100.99"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_behind_a_trusted_proxy_a_strangers_guesses_do_not_lock_the_manager_out(
        fleet: FleetScene) -> None:
    # the proxy (here, the test on 127.0.0.1) appends the real peer to what the client sent
    def through_proxy(client_ip: str, sent: str | None = None) -> dict[str, str]:
        return {"X-Forwarded-For": f"{sent}, {client_ip}" if sent else client_ip}

    with LiveServer(fleet.app(), trusted_proxies=["127.0.0.1"]) as server, \
            httpx.Client(base_url=server.url) as client, \
            httpx.Client(base_url=server.url) as manager:  # fmt: skip
        stranger = "203.0.113.7"
        codes = [guess(client, USER, headers=through_proxy(stranger, f"10.0.0.{i}")).status_code
                 for i in range(5)]  # fmt: skip
        assert codes == [401, 401, 401, 401, 429], "a forged first hop escaped the limit"
        # the manager, at the office, is not the stranger (nor a browser known before)
        r = guess(manager, USER, PASSWORD, headers=through_proxy("198.51.100.2"))
        assert r.status_code == 303
        assert guess(client, USER, headers=through_proxy(stranger)).status_code == 429


def test_many_addresses_on_one_account_get_a_short_wait_not_a_lockout(fleet: FleetScene) -> None:
    with LiveServer(fleet.app(), trusted_proxies=["127.0.0.1"]) as server, \
            httpx.Client(base_url=server.url) as client:  # fmt: skip
        def from_(i: int) -> dict[str, str]:
            return {"X-Forwarded-For": f"203.0.{i // 250}.{i % 250 + 1}"}

        assert [guess(client, USER, headers=from_(i)).status_code for i in range(10)] == \
            [401] * 10  # fmt: skip
        # a botnet keeps guessing, each address once, as soon as it may
        longest = 0
        for i in range(10, 40):
            r = guess(client, USER, headers=from_(i))
            if r.status_code == 429:
                wait = int(r.headers["retry-after"])
                longest = max(longest, wait)
                assert wait <= 60, "the account is locked for long"
                fleet.wall.advance(wait)
                r = guess(client, USER, headers=from_(i))
            assert r.status_code == 401
        assert longest == 60  # the wait grew to its cap
        # the manager, from an address of their own: a minute at most, then in
        r = guess(client, USER, PASSWORD, headers=from_(1000))
        assert r.status_code == 429 and int(r.headers["retry-after"]) <= 60
        fleet.wall.advance(60)
        assert guess(client, USER, PASSWORD, headers=from_(1000)).status_code == 303
        # other accounts were never slowed
        assert guess(client, OTHER, OTHER_PASSWORD, headers=from_(1001)).status_code == 303


def test_behind_a_proxy_that_names_no_client_the_managers_browser_still_gets_in(
        fleet: FleetScene) -> None:
    # no trusted proxy: every request is from 127.0.0.1, as through a proxy naming no client
    with LiveServer(fleet.app()) as server, httpx.Client(base_url=server.url) as usual, \
            httpx.Client(base_url=server.url) as stranger:  # fmt: skip
        r = guess(usual, USER, PASSWORD)  # the manager's browser, some day before
        assert r.status_code == 303
        known = next(c for c in r.headers.get_list("set-cookie") if c.startswith(DEVICE_COOKIE))
        assert "Path=/fleet/login" in known and "HttpOnly" in known
        assert "SameSite=strict" in known and f"Max-Age={90 * 24 * 3600}" in known
        token = usual.cookies.get(DEVICE_COOKIE, path="/fleet/login")
        assert token and PASSWORD not in token
        usual.cookies.delete(COOKIE, path="/fleet")  # logged out since
        assert [guess(stranger, USER).status_code for _ in range(5)] == [401] * 4 + [429]
        with httpx.Client(base_url=server.url) as new_browser:  # waits, as the stranger does
            assert guess(new_browser, USER, PASSWORD).status_code == 429
        assert guess(usual, USER, PASSWORD).status_code == 303  # the usual one does not
        # the cookie is for that account's login only: not another account's, not a session
        stranger.cookies.set(DEVICE_COOKIE, token, path="/fleet/login")
        assert guess(stranger, OTHER, OTHER_PASSWORD).status_code == 429
        stranger.cookies.set(COOKIE, token, path="/fleet")
        assert stranger.get("/fleet/api/vehicles").status_code == 401
        # and a copied cookie still guesses slowly: its own count, as an address's
        assert [guess(stranger, USER).status_code for _ in range(5)] == [401] * 4 + [429]


def test_a_known_browser_cookie_ends_with_its_time_or_the_password(fleet: FleetScene) -> None:
    auth = Auth(fleet.settings, fleet.wall)
    token = auth.browser_token(USER)
    assert auth.known_browser(token, USER) is not None
    assert auth.known_browser(token, OTHER) is None
    assert auth.known_browser(token.replace(USER, OTHER, 1), OTHER) is None  # signed
    assert auth.read(token) is None and auth.read(token + ".x") is None
    changed = fleet.settings.model_copy(update={"users": [
        User(name=USER, password_hash=hash_password("a new one!"))]})  # fmt: skip
    assert Auth(changed, fleet.wall).known_browser(token, USER) is None
    fleet.wall.advance(89 * 24 * 3600)
    assert auth.known_browser(token, USER) is not None
    fleet.wall.advance(2 * 24 * 3600)
    assert auth.known_browser(token, USER) is None


def test_a_flood_of_addresses_or_names_stays_bounded(fleet: FleetScene) -> None:
    failures = Failures(PER_ADDRESS, fleet.wall)
    for i in range(3 * MAX_KEYS):
        fleet.wall.advance(0.001)
        failures.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        assert len(failures._failures) <= MAX_KEYS
    # the oldest records went; the recent are still counted
    for _ in range(3):
        failures.failed("10.0.0.1")  # one of the first: its earlier failure is gone
        failures.failed("10.0.117.47")  # the last of the flood
    assert failures.wait("10.0.0.1") == timedelta(0)
    assert failures.wait("10.0.117.47") == PER_ADDRESS.wait(4)
