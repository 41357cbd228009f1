"""A ground service with the coordinator's console, for the console's tests: three accounts,
one per role, on the demo fleet, the clock at Monday 23 November 2026, 08:00 in Paris."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ground.service import GroundService, GroundSettings
from ground.web.auth import AuthSettings, User, hash_password
from ground.web.server import HttpSettings
from medicobus.brokers import free_port
from medicobus.clock import Clock
from medicobus.mqtt import BrokerSettings
from tests.harness import FLEET, clock_at, wait_until

PASSWORD = "tournee du perche"
ROLES = {"marie": "coordination", "claire": "fleet", "paul": "readonly"}
HASH = hash_password(PASSWORD)
# Monday 23 November 2026, 08:00 in Paris: Nocé 08:30, Bellême 11:00, Pervenchères 14:00.
VISIT = "2026-11-23/pervencheres/pm"
PERVENCHERES = "61327"


@contextmanager
def console_ground(tmp_path: Path, broker_port: int, fleet: Path = FLEET,
                   clock: Clock | None = None) -> Iterator[GroundService]:
    users = [User(name=n, password_hash=HASH, role=r) for n, r in ROLES.items()]  # type: ignore[arg-type]
    settings = GroundSettings(
        fleet=fleet, database=tmp_path / "ground.db",
        broker=BrokerSettings(port=broker_port), http=HttpSettings(port=free_port()),
        dashboard=AuthSettings(users=users, session_secret="console-tests-secret-0123456"))
    g = GroundService(settings, clock or clock_at())
    g.start()
    g.serve_http()
    wait_until(g.ingest.subscribed.is_set, what="the ground subscribed")
    wait_until(lambda: up(url(g)), what="the web server")
    try:
        yield g
    finally:
        g.stop()


def up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def url(g: GroundService) -> str:
    return f"http://127.0.0.1:{g.settings.http.port}"


def logged_in(g: GroundService, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url(g), headers={"Origin": url(g)})
    r = client.post("/fleet/login", data={"name": name, "password": PASSWORD,
                                          "next": "/fleet/"})  # fmt: skip
    assert r.status_code in (200, 303), r.text
    session = client.get("/fleet/api/v1/session").json()
    assert session["role"] == ROLES[name]
    return client, session["csrf"]
