"""The coordinator's changes through the real ground service (Mosquitto, uvicorn, SQLite):
a cancellation made through the console's API reaches, within 2 s and without a reload,
the commune page's live stream, the public API, the iCalendar feed and the bus (its plan,
retained, received by the bus's own link); roles and the CSRF token are checked."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import httpx

from ground.service import GroundService
from medicobus import contract
from medicobus.mqtt import BrokerSettings
from onboard.link import Link
from onboard.outbox import Outbox
from tests.brokers import Mosquitto
from tests.console import PERVENCHERES, VISIT, logged_in, url
from tests.harness import VEHICLE, wait_until
from tests.test_web_pages import read_events


def cancel(client: httpx.Client, csrf: str | None, visit: str = VISIT) -> httpx.Response:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    return client.post("/fleet/api/v1/changes", headers=headers, json={
        "kind": "cancel", "visit": visit, "reason": "Médecin malade"})


def follow(stream: httpx.Response, events: list[dict[str, object]]) -> None:
    """Keep the page's events until the test closes the stream under the reader."""
    with contextlib.suppress(httpx.ReadError, httpx.StreamClosed):
        events.extend(read_events(stream))


def test_a_cancellation_reaches_page_api_calendar_and_bus_within_2_s(
        console_service: GroundService, mosquitto: Mosquitto, tmp_path: Path) -> None:  # fmt: skip
    plans: list[contract.Plan] = []
    link = Link(BrokerSettings(port=mosquitto.port), VEHICLE, Outbox(tmp_path / "outbox.db"),
                lambda m: plans.append(m) if isinstance(m, contract.Plan) else None)
    link.start()
    try:
        wait_until(lambda: any(p.day.isoformat() == "2026-11-23" for p in plans),
                   what="the day's plan on the bus")
        assert VISIT in [v.visit for v in plans[-1].visits]
        client, csrf = logged_in(console_service, "marie")
        events: list[dict[str, object]] = []
        with httpx.stream("GET", f"{url(console_service)}/communes/{PERVENCHERES}/events",
                          timeout=30) as stream:  # fmt: skip
            reader = threading.Thread(target=follow, args=(stream, events), daemon=True)
            reader.start()
            wait_until(lambda: bool(events), what="the commune page's first event")
            assert events[-1]["next_visit"]["status"] == "planned"  # type: ignore[index]
            started = time.monotonic()
            r = cancel(client, csrf)
            assert r.status_code == 200, r.text
            (diff,) = r.json()["differences"]
            assert (diff["kind"], diff["insee"]) == ("cancelled", PERVENCHERES)

            def page_says_cancelled() -> bool:
                nxt = events[-1]["next_visit"]
                return isinstance(nxt, dict) and nxt["status"] == "cancelled" \
                    and nxt["cancel_reason"] == "Médecin malade"  # fmt: skip

            wait_until(page_says_cancelled, timeout=2, what="the page's live stream")
            wait_until(lambda: VISIT not in [v.visit for v in plans[-1].visits], timeout=2,
                       what="the bus's new plan")  # fmt: skip
            assert time.monotonic() - started < 2
        visits = httpx.get(f"{url(console_service)}/api/v1/visits", params={
            "from": "2026-11-23", "to": "2026-11-23", "insee": PERVENCHERES}).json()
        assert [(v["visit"], v["status"], v["cancel_reason"]) for v in visits] == [
            (VISIT, "cancelled", "Médecin malade")]
        ics = httpx.get(f"{url(console_service)}/api/v1/stops/{PERVENCHERES}/calendar.ics"
                        ).text  # fmt: skip
        event = ics[ics.index(f"UID:{VISIT}"):]
        assert event[:event.index("END:VEVENT")].count("STATUS:CANCELLED") == 1
        assert [v.stop for v in plans[-1].visits] == ["noce", "belleme"]
        history = client.get("/fleet/api/v1/changes").json()
        assert [(c["kind"], c["who"], c["reason"]) for c in history] == [
            ("cancel", "marie", "Médecin malade")]
        # Saved twice: nothing new, nothing told.
        again = cancel(client, csrf)
        assert again.status_code == 200 and again.json() == {"change": None, "differences": []}
    finally:
        link.stop()


def test_roles_and_csrf_are_checked(console_service: GroundService) -> None:
    for name in ("claire", "paul"):
        client, csrf = logged_in(console_service, name)
        r = cancel(client, csrf)
        assert r.status_code == 403 and r.json()["field"] == "role"
        assert client.get("/fleet/api/v1/changes").status_code == 200  # reading is allowed
    client, csrf = logged_in(console_service, "marie")
    assert cancel(client, None).status_code == 403
    assert cancel(client, "forged").json()["field"] == "csrf"
    other_site = client.post("/fleet/api/v1/changes", headers={
        "X-CSRF-Token": csrf, "Origin": "https://evil.example"}, json={
        "kind": "cancel", "visit": VISIT, "reason": "x"})
    assert other_site.status_code == 403
    anonymous = httpx.post(f"{url(console_service)}/fleet/api/v1/changes", json={
        "kind": "cancel", "visit": VISIT, "reason": "x"})
    assert anonymous.status_code == 401
    assert console_service.tournee.history() == []


def test_refusals_name_the_field_in_french(console_service: GroundService) -> None:
    client, csrf = logged_in(console_service, "marie")
    past = cancel(client, csrf, "2026-11-16/pervencheres/pm")
    assert past.status_code == 422 and past.json()["field"] == "visit"
    assert "passée" in past.json()["detail_fr"]
    moved = client.post("/fleet/api/v1/changes", headers={"X-CSRF-Token": csrf}, json={
        "kind": "move", "visit": VISIT, "day": "2026-12-25", "reason": "Marché"})
    assert moved.status_code == 422 and moved.json()["field"] == "day"
    assert "Noël" in moved.json()["detail_fr"]
    nonsense = client.post("/fleet/api/v1/changes", content=b'{"kind": "explode"}', headers={
        "X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert nonsense.status_code == 422
    assert console_service.tournee.history() == []
    spec = httpx.get(f"{url(console_service)}/openapi.json").json()
    assert "/fleet/api/v1/changes" in spec["paths"] and "/api/v1/visits" in spec["paths"]
    assert json.dumps(spec).count("X-CSRF-Token") >= 1
