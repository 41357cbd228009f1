"""`medicobus demo` as a newcomer runs it: the commune's ETA moves as the bus drives, the
kiosk is served, the fleet dashboard opens with the printed credentials and shows the
fridge excursion open and close an alert, and Ctrl-C stops everything cleanly. Once with
Mosquitto and gpsd (gpsfake), once with the embedded broker and the built-in GPS
simulator, the fallbacks of a bare machine."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from medicobus.brokers import free_port
from tests.harness import wait_until


# Pinned days (a Monday and a Wednesday, with different first communes), so the test
# does not depend on the day it runs; the commune to watch is read from what the demo prints.
@pytest.mark.parametrize("options", [
    ["--day", "2026-12-07", "--broker", "mosquitto", "--gps", "gpsd"],
    ["--day", "2026-12-09", "--broker", "embedded", "--gps", "simulated"],
])  # fmt: skip
def test_demo_shows_a_live_eta_and_stops_on_ctrl_c(tmp_path: Path, options: list[str]) -> None:
    port, kiosk_port = free_port(), free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "medicobus.cli", "demo", "--speed", "120", "--http-port",
         str(port), "--kiosk-port", str(kiosk_port), "--data-dir", str(tmp_path), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert demo.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True)
    reader.start()
    try:
        url = f"http://127.0.0.1:{port}/api/v1/stops"
        wait_until(lambda: _get(url) is not None, what="the demo's web server")
        wait_until(lambda: any(map(_COMMUNE.search, lines)), what="the communes of the day")
        first = next(m for m in map(_COMMUNE.search, lines) if m)
        insee, commune = first[1], first[2]
        url = f"{url}/{insee}"
        seen: list[tuple[str, str | None]] = []

        def arrived() -> bool:
            visit = (_get(url) or {}).get("next_visit") or {}
            state = (visit.get("status"), visit.get("eta"))
            if state not in seen:
                seen.append(state)
            return visit.get("status") in ("arrived", "consulting")

        wait_until(arrived, timeout=90, what=f"the bus arriving in {commune}")
        moving = [eta for status, eta in seen if status in ("en_route", "late")]
        assert len(set(moving)) >= 2, seen  # the ETA changed live while the bus drove
        page = httpx.get(f"http://127.0.0.1:{port}/communes/{insee}").text
        assert commune in page and "Prochain passage" in page
        # The bus's kiosk is offered in a browser (textual-serve), on the bus's data.
        wait_until(lambda: _status(f"http://127.0.0.1:{kiosk_port}/") == 200,
                   what="the kiosk served")
        # And the waiting room's screen, served by the bus, from the kiosk's queue.
        screen = next(m[1] for m in map(_SCREEN.search, lines) if m)
        wait_until(lambda: _status(screen) == 200, what="the waiting room's screen")
        assert "Numéro appelé" in httpx.get(screen).text

        # The fleet dashboard, with the credentials the demo printed: the fridge's
        # excursion (09:00, a quarter of an hour above 8 °C) opens an alert, then closes it.
        login, console = [m for m in map(_CREDENTIALS.search, lines) if m]
        fleet = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        r = fleet.post("/fleet/login", data={"name": login[1], "password": login[2]},
                       follow_redirects=False)
        assert r.status_code == 303
        detail = f"/fleet/api/vehicles/{VEHICLE}"
        wait_until(lambda: any(a["rule"] == "fridge_temp" and a["closed_at"]
                               for a in fleet.get(detail).json()["alert_history"]),
                   timeout=120, what="the fridge alert opened and closed")
        vehicle = fleet.get(detail).json()
        assert vehicle["fridge"] and vehicle["battery"] and vehicle["engine"]
        # The coordinator's console, with its own printed account: the week and its forms.
        coordinator = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        coordinator.post("/fleet/login", data={"name": console[1], "password": console[2],
                                                "next": "/fleet/tournee"})  # fmt: skip
        week = coordinator.get("/fleet/tournee")
        assert week.status_code == 200 and 'action="/fleet/tournee/changes"' in week.text
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)
        reader.join(timeout=5)
    out = "".join(lines)
    assert demo.returncode == 0, out
    assert f"http://127.0.0.1:{port}/communes/{insee}" in out
    assert f"http://127.0.0.1:{kiosk_port}/" in out
    assert "Traceback" not in out


VEHICLE = "perche-1"
_SCREEN = re.compile(r"waiting room's screen \(served by the bus\): (http://\S+)")
_COMMUNE = re.compile(r"/communes/(\d{5})\s+(.+), \d\d:\d\d–\d\d:\d\d$")
_CREDENTIALS = re.compile(r"log in as (\S+), password (\S+)")


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def _get(url: str) -> dict | None:  # type: ignore[type-arg]
    try:
        return httpx.get(url, timeout=2).json()  # type: ignore[no-any-return]
    except httpx.HTTPError:
        return None


def test_demo_on_a_day_without_visits_says_which_day_has_some() -> None:
    # 2026-12-05 is a Saturday: the demo bus rests; nothing is started.
    done = subprocess.run([sys.executable, "-m", "medicobus.cli", "demo", "--day", "2026-12-05"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no visits on" in done.stderr and "2026-12-07" in done.stderr  # the next Monday
