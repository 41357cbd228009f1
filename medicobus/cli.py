"""`medicobus`: one command, a subcommand per part of the system."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date, datetime
from pathlib import Path

from medicobus.settings import ConfigError
from medicobus.signals import stop_on_signals

DESCRIPTION = """\
Médicobus: onboard telemetry and ground service for mobile medical centres.

  medicobus demo                    the whole system on this machine, in accelerated time
  medicobus onboard --config FILE   the agent on the bus (GPS -> outbox -> MQTT)
  medicobus kiosk --config FILE     the patients' check-in kiosk on the bus (touchscreen)
  medicobus display --config FILE   the waiting room's screen, served on the bus's network
  medicobus ground --config FILE    the ground service (ingest, ETAs, mairie pages, API)
  medicobus ground report --month 2026-11 --format pdf --out rapport.pdf
                                    the funders' activity report (PDF, XLSX, CSV)
  medicobus ground eta-replay --from D --to D   the ETAs of recorded days, scored
  medicobus ground eta-accuracy --from D --to D [--csv FILE]   the ETAs published, scored
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="medicobus", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="run broker, ground service and a simulated bus on this machine",
        description="Runs a broker (Mosquitto if installed, else an embedded one), the ground "
        "service and a simulated bus driving a day's tournée in the Perche in accelerated "
        "time, then prints the pages to open. Ctrl-C stops everything.",
    )  # fmt: skip
    demo.add_argument("--speed", type=float, default=30.0,
                      help="how many times faster than real time (default: 30)")
    demo.add_argument("--http-port", type=int, default=8080,
                      help="port of the web pages (default: 8080; a free one if taken)")
    demo.add_argument("--kiosk-port", type=int, default=8081,
                      help="port of the kiosk in a browser (default: 8081; a free one if taken)")
    demo.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto",
                      help="which broker to run (default: Mosquitto when installed)")
    demo.add_argument("--gps", choices=["auto", "gpsd", "simulated"], default="auto",
                      help="GPS through gpsd/gpsfake when installed, or the built-in simulator")
    demo.add_argument("--data-dir", type=Path, default=None,
                      help="where to keep the demo's databases (default: a temporary folder)")
    demo.add_argument("--day", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                      help="the service day to drive (default: today, or the next day with "
                      "visits)")
    demo.add_argument("--duration", type=float, default=None,
                      help="stop after this many real seconds (default: run until Ctrl-C)")

    onboard = sub.add_parser(
        "onboard", help="run the agent on the bus",
        description="Reads GPS from gpsd, filters and reports fixes, detects arrival and "
        "departure at the day's stops, and sends everything through the durable outbox.",
    )  # fmt: skip
    onboard.add_argument("--config", type=Path, default=Path("/etc/medicobus/onboard.toml"),
                         help="onboard TOML file (default: /etc/medicobus/onboard.toml)")

    kiosk = sub.add_parser(
        "kiosk", help="run the check-in kiosk on the bus's touchscreen",
        description="The patients' check-in kiosk (French, English): appointments matched "
        "privately, walk-ins, tickets and a live queue; staff mode behind a PIN. Works "
        "offline; see docs/kiosk.md for the touchscreen set-up.",
    )  # fmt: skip
    kiosk.add_argument("--config", type=Path, default=Path("/etc/medicobus/onboard.toml"),
                       help="onboard TOML file (default: /etc/medicobus/onboard.toml)")

    display = sub.add_parser(
        "display", help="serve the waiting room's screen from the bus (local network)",
        description="The waiting room's screen: numbers called and to which room, people "
        "waiting, the estimated wait, a chime and optionally the call spoken; for a TV or a "
        "tablet on the bus's network, at http://<the Pi>:<[display] port>/.",
    )  # fmt: skip
    display.add_argument("--config", type=Path, default=Path("/etc/medicobus/onboard.toml"),
                         help="onboard TOML file (default: /etc/medicobus/onboard.toml)")

    ground = sub.add_parser(
        "ground", help="run the ground service",
        description="Ingests what the buses publish, keeps live state and ETAs, publishes "
        "each bus's plan for the day and serves the mairie pages and the JSON API.",
    )  # fmt: skip
    ground.add_argument("--config", type=Path, default=Path("/etc/medicobus/ground.toml"),
                        help="ground TOML file (default: /etc/medicobus/ground.toml)")
    ground.add_argument("--check", action="store_true",
                        help="check the configuration and the fleet file, then exit")
    ground.add_argument("--fleet", type=Path, metavar="FILE",
                        help="with --check: check this fleet file on its own, no ground "
                        "configuration needed")
    ground.add_argument("--import-appointments", type=Path, metavar="CSV",
                        help="import the day's bookings (CSV export: id, time, last name, "
                        "first name, birth date) for one vehicle, then exit; the running "
                        "service sends them to the bus as keyed digests, never names")
    ground.add_argument("--export-tournee", type=Path, metavar="TOML",
                        help="write the tournée (the fleet file with the console's changes) "
                        "as a fleet file of its own, to keep in git, then exit")
    ground.add_argument("--vehicle", help="with --import-appointments: the vehicle "
                        "(default: the fleet's only one)")
    ground.add_argument("--date", type=date.fromisoformat, help="with --import-appointments: "
                        "the day, YYYY-MM-DD (default: today)")
    ground_sub = ground.add_subparsers(dest="ground_command",
                                       metavar="report | eta-replay | eta-accuracy")
    for name, said in (
            ("eta-replay", "re-run the recorded days from --from to --to through the current "
                           "ETA model and the baselines (schedule only; schedule plus current "
                           "deviation), print their accuracy"),
            ("eta-accuracy", "the ETAs the service published those days, scored (all, per "
                             "vehicle, per stop, per week)")):  # fmt: skip
        eta = ground_sub.add_parser(name, help=said, description=said + " (with the ground's "
                                    "--config, given before the command)")
        eta.add_argument("--from", dest="first", type=date.fromisoformat, required=True,
                         metavar="YYYY-MM-DD")
        eta.add_argument("--to", dest="last", type=date.fromisoformat, required=True,
                         metavar="YYYY-MM-DD")
        if name == "eta-accuracy":
            eta.add_argument("--csv", type=Path, metavar="FILE",
                             help="also write each scored prediction here")
    report = ground_sub.add_parser(
        "report", help="the funders' activity report of a month or a range of days",
        description="Rapport d'activité par commune et par véhicule (visites, patients, "
        "attentes, km, chaîne du froid), from the ground's database: PDF in French, XLSX, "
        "or CSV (a ZIP, one file per table). Counts of fewer than [reports] min_count "
        "patients are written \"< 5\" (docs/privacy.md).",
    )  # fmt: skip
    when = report.add_mutually_exclusive_group(required=True)
    when.add_argument("--month", metavar="YYYY-MM", help="the month, e.g. 2026-11")
    when.add_argument("--from", dest="first", type=date.fromisoformat, metavar="YYYY-MM-DD",
                      help="the first day of a range (with --to)")
    report.add_argument("--to", dest="last", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the last day of the range (inclusive)")
    report.add_argument("--format", choices=["pdf", "xlsx", "csv"], default="pdf",
                        help="pdf (default), xlsx, or csv (a ZIP of one CSV per table)")
    report.add_argument("--out", type=Path, help="the file to write (default: "
                        "rapport-activite-<month>.<format> here)")
    source = report.add_mutually_exclusive_group()
    source.add_argument("--config", dest="report_config", type=Path, metavar="FILE",
                        default=Path("/etc/medicobus/ground.toml"),
                        help="ground TOML file (default: /etc/medicobus/ground.toml)")
    source.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="the data a demo left behind (its --data-dir), with the demo's "
                        "fleet")

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # WeasyPrint (the reports' PDF) logs each step of its work at INFO, from its import on.
    logging.getLogger("weasyprint").setLevel(logging.WARNING)
    try:
        if args.command == "demo":
            from medicobus.demo import run_demo

            return run_demo(args.speed, args.http_port, args.broker, args.gps, args.data_dir,
                            args.duration, args.kiosk_port, args.day)
        if args.command == "onboard":
            return _run_onboard(args.config)
        if args.command == "kiosk":
            return _run_kiosk(args.config)
        if args.command == "display":
            return _run_display(args.config)
        if args.ground_command == "report":
            return _report(args)
        if args.fleet is not None:
            if not args.check:
                parser.error("--fleet ne va qu'avec --check / --fleet goes with --check")
            return _check_fleet(args.fleet)
        if args.ground_command in ("eta-replay", "eta-accuracy"):
            if args.last < args.first:
                parser.error(f"{args.ground_command}: --from avant --to / --from before --to")
            if args.ground_command == "eta-replay":
                return _eta_replay(args.config, args.first, args.last)
            return _eta_accuracy(args.config, args.first, args.last, args.csv)
        if args.import_appointments:
            return _import_appointments(args.config, args.import_appointments, args.vehicle,
                                        args.date)
        if args.export_tournee:
            return _export_tournee(args.config, args.export_tournee)
        return _run_ground(args.config, args.check)
    except ConfigError as exc:
        print(f"medicobus: configuration error:\n{exc}", file=sys.stderr)
        return 2


def _run_onboard(config: Path) -> int:
    from medicobus.clock import SystemClock
    from onboard.agent import Agent
    from onboard.config import load_onboard
    from onboard.telemetry.gps import GpsdSource

    settings = load_onboard(config)
    source = GpsdSource(settings.gps.host, settings.gps.port, timeout_s=settings.gps.timeout_s)
    Agent(settings, source, SystemClock()).run(stop_on_signals())
    return 0


def _run_display(config: Path) -> int:
    from medicobus.clock import clock_from_env
    from onboard.config import load_onboard
    from onboard.kiosk.queue import bus_queue
    from onboard.waiting_room import serve

    settings = load_onboard(config)
    serve(bus_queue(settings, clock_from_env(os.environ), None), settings.display)
    return 0


def _run_kiosk(config: Path) -> int:
    from medicobus.clock import clock_from_env
    from onboard.config import load_onboard
    from onboard.kiosk.app import run_kiosk

    settings = load_onboard(config)
    # The screen is the patients': log lines go to a file beside the kiosk's data.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=settings.data_dir / "kiosk.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    run_kiosk(settings, clock_from_env(os.environ))
    return 0


def _eta_replay(config: Path, first: date, last: date) -> int:
    from ground.accuracy import markdown, table
    from ground.fleet import load_fleet
    from ground.replay import eta_replay
    from ground.service import load_ground
    from ground.store import Store
    from ground.tournee import Tournee
    from medicobus.clock import SystemClock

    settings = load_ground(config)
    tournee = Tournee(load_fleet(settings.fleet), settings.database, SystemClock())
    store = Store(settings.database)
    try:
        done = eta_replay(store, tournee.fleet, first, last)
    finally:
        store.close()
        tournee.close()
    print(f"ETA replay {first} – {last}: {done.days} days, {done.visits} visits planned, "
          f"{done.arrived} reached (reported or seen in the positions); predictions made "
          "every minute, scored against the real arrivals.\n")
    print("\n".join(markdown({name: table(s) for name, s in done.scored.items()})))
    return 0


def _eta_accuracy(config: Path, first: date, last: date, csv_file: Path | None) -> int:
    from collections.abc import Hashable
    from datetime import time, timedelta

    from ground.accuracy import Row, markdown, table, tables_by, week_of
    from ground.eta_record import EtaRecord, as_csv, recorded
    from ground.fleet import load_fleet
    from ground.service import load_ground
    from ground.store import Store

    settings = load_ground(config)
    zone = load_fleet(settings.fleet).zone
    since = datetime.combine(first, time(0), zone)
    until = datetime.combine(last + timedelta(days=1), time(0), zone)
    store, record = Store(settings.database), EtaRecord(settings.database)
    try:
        scored = recorded(record, store, since, until)
    finally:
        record.close()
        store.close()
    print(f"ETAs published {first} – {last}: {len(scored)} scored against the arrivals the "
          "buses reported.\n")
    groups: dict[str, dict[Hashable, list[Row]]] = {
        "all": {"all": table(scored)},
        "vehicle": tables_by(scored, lambda s: s.prediction.vehicle),
        "stop": tables_by(scored, lambda s: s.prediction.stop),
        "week": tables_by(scored, week_of)}
    for by, tables in groups.items():
        print(f"## {by}\n")
        print("\n".join(markdown({str(k): rows for k, rows in tables.items()})) + "\n")
    if csv_file is not None:
        csv_file.write_text(as_csv(scored, zone), encoding="utf-8")
        print(f"wrote {csv_file}")
    return 0


def _import_appointments(config: Path, csv_file: Path, vehicle: str | None,
                         day: date | None) -> int:
    from ground.appointments import BookingError, hashed, read_bookings
    from ground.fleet import load_fleet
    from ground.service import load_ground
    from ground.store import Store

    settings = load_ground(config)
    fleet = load_fleet(settings.fleet)
    day = day or datetime.now(fleet.zone).date()
    if vehicle is None:
        if len(fleet.vehicles) != 1:
            print("medicobus: several vehicles: say which with --vehicle", file=sys.stderr)
            return 2
        vehicle = fleet.vehicles[0].id
    try:
        key = settings.checkin_key_file.read_bytes().strip()
        appointments = hashed(read_bookings(csv_file, day, fleet), fleet, vehicle, day, key)
    except (BookingError, OSError) as exc:
        print(f"medicobus: cannot import {csv_file}:\n{exc}", file=sys.stderr)
        return 2
    Store(settings.database).save_appointments(appointments)
    print(f"{len(appointments.items)} appointments for {vehicle} on {day} imported; the ground "
          "service sends them to the bus (as digests) within seconds.")
    return 0


def _export_tournee(config: Path, out: Path) -> int:
    from ground.fleet import load_fleet
    from ground.service import load_ground
    from ground.tournee import Tournee, export_toml
    from medicobus.clock import SystemClock

    settings = load_ground(config)
    tournee = Tournee(load_fleet(settings.fleet), settings.database, SystemClock())
    try:
        text, changes = export_toml(tournee.fleet), len(tournee.history(limit=1_000_000))
    finally:
        tournee.close()
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"medicobus: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    print(f"{out}: the tournée of {settings.fleet} with {changes} change(s) from the console")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ground.fleet import load_fleet
    from ground.reports.activity import Period
    from ground.reports.make import Reporter
    from ground.service import GroundSettings, load_ground
    from ground.store import Store
    from ground.tournee import Tournee
    from medicobus.clock import SystemClock
    from medicobus.demo import FLEET_FILE

    if args.data_dir is not None:
        settings = GroundSettings(fleet=FLEET_FILE, database=args.data_dir / "ground.db")
    else:
        settings = load_ground(args.report_config)
    if not settings.database.is_file():  # opening it would make an empty one
        print(f"medicobus: no ground database at {settings.database}", file=sys.stderr)
        return 2
    clock = SystemClock()
    tournee = Tournee(load_fleet(settings.fleet), settings.database, clock)
    store = Store(settings.database, clock)
    try:
        zone = tournee.fleet.zone
        if args.month is not None:
            period = Period.month(args.month, zone)
        elif args.last is None:
            raise ValueError("--from needs --to / --from va avec --to")
        else:
            period = Period(args.first, args.last, zone)
        made = Reporter(lambda: tournee.fleet, store, settings.alerts, settings.reports,
                        clock).make(period, args.format)
        out = args.out or Path(made.name)
        out.write_bytes(made.content)
    except (ValueError, OSError) as exc:
        print(f"medicobus: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
        tournee.close()
    t = made.report.total
    print(f"{out}: {t.planned} visites prévues, {t.held} tenues, {t.cancelled} annulées / "
          f"{t.planned} visits planned, {t.held} held, {t.cancelled} cancelled")
    return 0


def _fleet_summary(path: Path) -> str:
    """What a fleet file holds, in one line; a broken one raises ConfigError."""
    from ground.fleet import load_fleet

    fleet = load_fleet(path)
    v, s, t = len(fleet.vehicles), len(fleet.stops), len(fleet.timetable)
    c = len(fleet.closures)
    return (f"{path}: {v} véhicule(s), {s} arrêt(s), {t} entrée(s) d'horaire, "
            f"{c} fermeture(s) / {v} vehicles, {s} stops, {t} timetable entries, {c} closures")


def _check_fleet(path: Path) -> int:
    print(f"ok: {_fleet_summary(path)}")
    return 0


def _run_ground(config: Path, check: bool) -> int:
    from ground.service import GroundService, load_ground
    from medicobus.clock import SystemClock

    settings = load_ground(config)
    if check:
        print(f"{config}: ok; {_fleet_summary(settings.fleet)}")
        return 0
    service = GroundService(settings, SystemClock())
    stop = stop_on_signals()
    service.start()
    service.serve_http()
    stop.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
