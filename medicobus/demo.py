"""`medicobus demo`: broker, ground service and a simulated bus, in accelerated time.

The bus drives a real day of the demo tournée (medicobus/defaults/fleet.toml): it leaves
the depot late, winds through villages, waits at a junction, loses GPS for a while, and
consults at each commune; the mairie pages follow it live.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol

from ground.appointments import Booking, hashed
from ground.fleet import Fleet, day_plan, load_fleet
from ground.service import GroundService, GroundSettings, HttpSettings
from ground.web.auth import AuthSettings, User, hash_password
from medicobus import contract
from medicobus.brokers import EmbeddedBroker, Mosquitto, free_port, mosquitto_installed
from medicobus.clock import ENV as CLOCK_ENV
from medicobus.clock import AcceleratedClock, SystemClock
from medicobus.mqtt import BrokerSettings
from medicobus.signals import stop_on_signals
from onboard.agent import Agent
from onboard.config import GpsSettings, KioskSettings, OnboardSettings, SensorSettings
from onboard.telemetry.fix import GpsSource
from onboard.telemetry.gps import GpsdSource
from onboard.telemetry.nmea import sentences
from onboard.telemetry.replay import GpsFake
from onboard.telemetry.simulated import SimulatedSource, Tournee

log = logging.getLogger(__name__)

FLEET_FILE = Path(__file__).parent / "defaults" / "fleet.toml"
DEPOT = (48.5206, 0.5468)  # Mortagne-au-Perche, where the demo bus sleeps
LATE_START = timedelta(minutes=12)  # the morning starts late: watch it propagate
DAY_STARTS = time(7, 50)
MANAGER = "gestionnaire"
COORDINATOR = "coordination"
FRIDGE_EXCURSION = time(9, 0)  # the fridge drifts above 8 °C for a quarter of an hour
# The demo's patients: invented, for trying the kiosk. (last name, birth date)
PATIENTS = [("N'Diaye", date(1948, 3, 7)), ("Lefèvre-Dupont", date(1951, 11, 2)),
            ("Martin", date(1937, 5, 14)), ("Da Silva", date(1960, 9, 21)),
            ("Œuvray", date(1939, 12, 12)), ("Nguyen", date(1972, 1, 30)),
            ("Bernard", date(1985, 6, 5)), ("Moreau", date(1944, 8, 18))]
FIXES_PER_REAL_S = 5
SEARCH_DAYS = 31  # how far ahead the default day is looked for (holidays, closures)


class Broker(Protocol):
    port: int

    def stop(self) -> None: ...


def service_day(fleet: Fleet, vehicle: str, today: date) -> date:
    """The first day from `today` on which the vehicle has visits."""
    for offset in range(SEARCH_DAYS):
        day = today + timedelta(days=offset)
        if day_plan(fleet, vehicle, day).visits:
            return day
    raise ValueError(f"{vehicle} has no visits in the {SEARCH_DAYS} days from {today}")


def run_demo(speed: float, http_port: int, broker_choice: str, gps_choice: str,
             data_dir: Path | None, duration: float | None, kiosk_port: int = 8081,
             day: date | None = None) -> int:
    """Run the demo on `day` (default: today, or the next day with visits)."""
    fleet = load_fleet(FLEET_FILE)
    vehicle = fleet.vehicles[0].id
    if day is None:
        day = service_day(fleet, vehicle, SystemClock().now().astimezone(fleet.zone).date())
    elif not day_plan(fleet, vehicle, day).visits:
        print(f"medicobus demo: no visits on {day:%A %d %B %Y} ({day}); the demo bus's next "
              f"service day is {service_day(fleet, vehicle, day)}", file=sys.stderr)
        return 2
    clock = AcceleratedClock(datetime.combine(day, DAY_STARTS, fleet.zone), speed)
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="medicobus-demo-"))
    stop = stop_on_signals()

    stack = contextlib.ExitStack()
    broker = _start_broker(broker_choice, workdir)
    stack.callback(broker.stop)
    port = http_port if _port_free(http_port) else free_port()
    key_file = workdir / "checkin.key"  # the secret the ground and the bus share
    key_file.write_text(secrets.token_hex(32))
    manager = (MANAGER, secrets.token_urlsafe(9))  # the fleet dashboard's demo account
    coordinator = (COORDINATOR, secrets.token_urlsafe(9))  # the console's
    ground = GroundService(
        GroundSettings(fleet=FLEET_FILE, database=workdir / "ground.db",
                       checkin_key_file=key_file,
                       dashboard=AuthSettings(users=[
                           User(name=manager[0], password_hash=hash_password(manager[1])),
                           User(name=coordinator[0], role="coordination",
                                password_hash=hash_password(coordinator[1]))]),
                       broker=BrokerSettings(port=broker.port, keepalive_s=10),
                       http=HttpSettings(port=port)),
        clock, fleet=fleet,
    )  # fmt: skip
    plan = day_plan(fleet, vehicle, day)
    bookings = demo_bookings(plan)
    ground.store.save_appointments(
        hashed(bookings, fleet, vehicle, day, key_file.read_bytes().strip()))
    ground.start()
    ground.serve_http()

    tournee = Tournee.build(plan, depot=DEPOT,
                            start_delay_s=LATE_START.total_seconds(), seed=1)
    source = _gps_source(gps_choice, tournee, clock, workdir, stack)
    settings = OnboardSettings(
        vehicle=vehicle, data_dir=workdir / "bus",
        broker=BrokerSettings(port=broker.port, keepalive_s=10),
        gps=GpsSettings(poll_s=1.0), kiosk=KioskSettings(key_file=key_file),
        sensors=[SensorSettings(type="simulated-engine"), SensorSettings(type="simulated-battery"),
                 SensorSettings(type="simulated-fridge", excursion_at=FRIDGE_EXCURSION)],
    )  # fmt: skip
    agent = Agent(settings, source, clock)
    bus = threading.Thread(target=agent.run, args=(stop,), name="bus", daemon=True)
    bus.start()
    kiosk = _serve_kiosk(settings, clock, workdir, stack, kiosk_port, f"http://127.0.0.1:{port}")

    _print_welcome(fleet, day, port, speed, broker, source, workdir, manager, coordinator)
    _print_kiosk(kiosk, bookings, fleet)
    stop.wait(duration)
    stop.set()
    print("\nStopping…")
    bus.join(timeout=10)
    ground.stop()
    stack.close()
    return 0


def demo_bookings(plan: contract.Plan) -> list[Booking]:
    """Three or so bookings per visit, half an hour apart from a quarter past opening."""
    bookings: list[Booking] = []
    people = iter(PATIENTS * 4)
    for v in plan.visits:
        at = v.arrive + timedelta(minutes=15)
        while at < v.depart - timedelta(minutes=30) and len(bookings) < len(PATIENTS):
            name, birth = next(people)
            bookings.append(Booking(f"RDV-{len(bookings) + 101}", at, name, birth))
            at += timedelta(minutes=30)
    return bookings


def kiosk_config(settings: OnboardSettings, ground_url: str, printer: Path,
                 display_port: int) -> str:
    """The demo bus's onboard.toml for its kiosk and waiting-room screen: its tickets'
    QR codes open the demo's ground, its printer writes into `printer`."""
    return (  # JSON strings are valid TOML basic strings
        f"vehicle = {json.dumps(settings.vehicle)}\n"
        f"data_dir = {json.dumps(str(settings.data_dir))}\n"
        f"[kiosk]\nkey_file = {json.dumps(str(settings.kiosk.key_file))}\n"
        f"follow_url = {json.dumps(ground_url)}\n"
        f"[printer]\nkind = \"file\"\nport = {json.dumps(str(printer))}\n"
        f"[display]\nhost = \"127.0.0.1\"\nport = {display_port}\nspeech = true\n")


def _serve_kiosk(settings: OnboardSettings, clock: AcceleratedClock, workdir: Path,
                 stack: contextlib.ExitStack, port: int,
                 ground_url: str) -> tuple[int, Path, str]:  # fmt: skip
    """The bus's kiosk, in a browser through textual-serve, on the demo's clock and data;
    its tickets printed (ESC/POS) into a file, their QR codes opening the demo's ground;
    and the waiting room's screen, served by the bus."""
    config = workdir / "onboard.toml"
    printer = settings.data_dir / "ticket-printer.bin"
    display = free_port()
    config.write_text(kiosk_config(settings, ground_url, printer, display), encoding="utf-8")
    port = port if _port_free(port) else free_port()
    env = {**os.environ, CLOCK_ENV: clock.to_env()}
    for name, command in (
            ("kiosk", ["-m", "onboard.kiosk", "--config", str(config), "--serve", "--port",
                       str(port)]),
            ("display", ["-m", "medicobus.cli", "display", "--config", str(config)])):
        server = subprocess.Popen(
            [sys.executable, *command], env=env, stdout=subprocess.DEVNULL,
            stderr=(workdir / f"{name}.log").open("wb"),
            start_new_session=True,  # stopped by us, after the rest, not by the terminal's Ctrl-C
        )  # fmt: skip
        stack.callback(_terminate, server)
    print(f"\nThe waiting room's screen (served by the bus): http://127.0.0.1:{display}/\n"
          f"The ticket printer (ESC/POS) writes each ticket to {printer}", flush=True)
    return port, config, clock.to_env()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _print_kiosk(kiosk: tuple[int, Path, str], bookings: list[Booking], fleet: Fleet) -> None:
    port, config, clock = kiosk
    zone = fleet.zone
    lines = [
        "",
        "The kiosk on the bus (it opens when the bus arrives at a stop):",
        f"  http://127.0.0.1:{port}/            in a browser (touch or mouse)",
        f"  {CLOCK_ENV}='{clock}' medicobus kiosk --config {config}",
        "                                     or in a terminal",
        "  Booked patients to try (last name, birth date, time):",
    ]
    lines += [f"    {b.last_name:<16} {b.birth:%d/%m/%Y}  {b.time.astimezone(zone):%H:%M}"
              for b in bookings[:4]]
    lines.append("  Staff mode: the « Personnel » button, PIN 2468.")
    print("\n".join(lines), flush=True)


def _start_broker(choice: str, workdir: Path) -> Broker:
    if choice == "mosquitto" or (choice == "auto" and mosquitto_installed()):
        return Mosquitto(workdir / "mosquitto").start()
    return EmbeddedBroker().start()


def _gps_source(choice: str, tournee: Tournee, clock: AcceleratedClock, workdir: Path,
                stack: contextlib.ExitStack) -> GpsSource:
    """The simulated day through a real gpsd (gpsfake plays it as NMEA, in step with the
    accelerated clock), or straight from the simulator when gpsd is not installed."""
    if choice == "gpsd" or (choice == "auto" and shutil.which("gpsfake")):
        # About five fixes a real second, whatever the speed: gpsfake paces sentences.
        step_s = max(1.0, clock.speed / FIXES_PER_REAL_S)
        fixes = list(tournee.fixes(clock.now(), tournee.end, step_s=step_s))
        per_fix = len(sentences(fixes[0]))
        cycle = step_s / clock.speed / per_fix
        fake = stack.enter_context(GpsFake(workdir / "gps", fixes, cycle_s=cycle, once=True))
        return GpsdSource("127.0.0.1", fake.port, timeout_s=1.0)
    return SimulatedSource(tournee, clock)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _print_welcome(fleet: Fleet, day: date, port: int, speed: float, broker: Broker,
                   source: GpsSource, workdir: Path, manager: tuple[str, str],
                   coordinator: tuple[str, str]) -> None:
    def link(path: str, what: str) -> str:
        return f"  http://127.0.0.1:{port}{path:<18} {what}"

    zone = fleet.zone
    lines = [
        "",
        "Médicobus demo is running.",
        f"  Service day: {day:%A %d %B %Y}, from {DAY_STARTS:%H:%M}, {speed:g}× real time",
        f"  Broker: {type(broker).__name__} on port {broker.port}; "
        f"GPS: {type(source).__name__}; data in {workdir}",
        "",
        "Open in a browser (the communes of the day, in the order the bus visits them):",
        link("/", "all communes"),
        *(link(f"/communes/{v.insee}", f"{v.commune}, {v.arrive.astimezone(zone):%H:%M}–"
                                        f"{v.depart.astimezone(zone):%H:%M}")
          for v in day_plan(fleet, fleet.vehicles[0].id, day).visits),
        link("/api/v1/stops", f"JSON API (http://127.0.0.1:{port}/api for all of it)"),
        link("/fleet/", f"fleet dashboard: log in as {manager[0]}, password {manager[1]}"),
        link("/fleet/tournee", f"coordinator's console: log in as {coordinator[0]}, "
                               f"password {coordinator[1]}"),
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)
