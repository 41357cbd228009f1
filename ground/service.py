"""The ground service: the consumer and its pipeline, plan publishing and the web, wired."""

from __future__ import annotations

import functools
import gc
import logging
import sqlite3
import threading
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import uvicorn
from pydantic import BaseModel, ConfigDict, Field

from ground.accuracy import published
from ground.alerts import DEFAULT_RULES, AlertEngine, AlertRules, AlertStorage
from ground.board import Board
from ground.eta import TravelModel
from ground.eta_record import EtaRecord, recorded
from ground.fleet import Fleet, load_fleet
from ground.influx import InfluxExporter, InfluxSettings
from ground.ingest import Ingest
from ground.mairies import DelayWatch, MairieNotifier, MairieSettings
from ground.notify import Notifier, NotifySettings
from ground.pipeline import Pipeline
from ground.plans import PlanPublisher
from ground.precision import Precision
from ground.replay import LEARN_WEEKS, learn
from ground.reports.mailing import MonthlyMail
from ground.reports.make import Reporter, ReportSettings
from ground.state import STALE_AFTER, LiveState
from ground.store import DeadLetterLimits, Store
from ground.timebounds import TimeBounds
from ground.tournee import Changed, Tournee
from ground.web.app import create_app
from ground.web.auth import Auth, AuthSettings
from ground.web.console.api import console_api
from ground.web.fleet import fleet_router
from ground.web.fleet.security import Guard
from ground.web.map import MapSettings
from ground.web.public.kit import KitSettings
from ground.web.server import HttpSettings, server_config
from medicobus.clock import Clock
from medicobus.mqtt import BrokerSettings
from medicobus.settings import load_toml

log = logging.getLogger(__name__)



class GroundSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fleet: Path
    database: Path = Path("/var/lib/medicobus/ground.db")
    stale_after_s: Annotated[int, Field(ge=30)] = int(STALE_AFTER.total_seconds())
    # The secret shared with the buses that keys appointment digests (see docs/privacy.md).
    checkin_key_file: Path = Path("/etc/medicobus/checkin.key")
    broker: BrokerSettings = BrokerSettings(username="ground")
    http: HttpSettings = HttpSettings()
    dashboard: AuthSettings = AuthSettings()  # the fleet managers' accounts
    alerts: AlertRules = DEFAULT_RULES
    dead_letters: DeadLetterLimits = DeadLetterLimits()  # what was set aside: kept how long
    notify: NotifySettings = NotifySettings()
    influxdb: InfluxSettings | None = None  # telemetry also to InfluxDB, when configured
    time_bounds: TimeBounds = TimeBounds()  # how far a bus's clock may be off
    mairies: MairieSettings = MairieSettings()  # telling the mairies of changes and delays
    map: MapSettings = MapSettings()  # the live map's tile server (OpenStreetMap's)
    kit: KitSettings = KitSettings()  # the mairies' kit: poster, embeddable block (issue 13)
    reports: ReportSettings = ReportSettings()  # the funders' reports: operator, logo


def load_ground(path: Path | str) -> GroundSettings:
    settings = load_toml(path, GroundSettings)
    for name in ("fleet", "checkin_key_file", "database"):  # relative to the config file
        value = getattr(settings, name)
        if not value.is_absolute():
            setattr(settings, name, (Path(path).parent / value).resolve())
    if settings.reports.logo is not None and not settings.reports.logo.is_absolute():
        settings.reports.logo = (Path(path).parent / settings.reports.logo).resolve()
    return settings


class GroundService:
    def __init__(self, settings: GroundSettings, clock: Clock,
                 fleet: Fleet | None = None) -> None:
        self.settings = settings
        self.clock = clock
        # The tournée: the fleet file and the coordinator's changes (ground.tournee).
        self.tournee = Tournee(fleet or load_fleet(settings.fleet), settings.database, clock)
        self.fleet = self.tournee.fleet
        self.store = Store(settings.database, clock, settings.dead_letters)
        self.eta_record = EtaRecord(settings.database, clock)  # the ETAs published, kept
        self._etas_noted: datetime | None = None
        self._etas_purged: date | None = None
        scored = functools.partial(recorded, self.eta_record, self.store)  # since, until
        self.precision = Precision(scored, clock)  # how precisely the public is told ETAs
        self.state = LiveState()
        self.travel = TravelModel()
        self._learned_on: date | None = None
        self.board = Board(self.fleet, self.state, self.travel, clock,
                           stale_after=timedelta(seconds=settings.stale_after_s))
        n = settings.notify
        self.notifier = Notifier(n) if (n.webhooks or n.email) else None
        self.alerts = AlertEngine(settings.alerts, AlertStorage(settings.database),
                                  self.state, self.fleet, clock, self.notifier,
                                  stale_after=timedelta(seconds=settings.stale_after_s))
        self.influx = (InfluxExporter(settings.influxdb, self.store, clock)
                       if settings.influxdb else None)  # fmt: skip
        self.pipeline = Pipeline(self.store, self.state, {v.id for v in self.fleet.vehicles},
                                 exports=[self.influx.submit] if self.influx else [],
                                 alerts=self.alerts, board=self.board,
                                 bounds=settings.time_bounds)
        self.ingest = Ingest(settings.broker, self.pipeline, clock,
                             on_connected=self._publish_plans)
        self.plans = PlanPublisher(self.fleet, self.ingest.client)
        auth = Auth(settings.dashboard)  # one login for the dashboard and the console
        self.reporter = Reporter(lambda: self.fleet, self.store, settings.alerts,
                                 settings.reports, clock)
        mail = settings.reports.email
        self.monthly = (MonthlyMail(mail, self.reporter, settings.database, clock)
                        if mail else None)  # fmt: skip
        self.app = create_app(
            self.board, http=settings.http, map_settings=settings.map, kit=settings.kit,
            fleet=fleet_router(self.board, self.store, self.alerts, settings.dashboard,
                               auth=auth, map_settings=settings.map, tournee=self.tournee,
                               reporter=self.reporter,
                               precision=scored),
            console=console_api(self.tournee, Guard(auth, settings.dashboard)),
            precision=lambda: self.precision.table)  # fmt: skip
        self.tournee.subscribe(self._tournee_changed)
        self.mairies = MairieNotifier(settings.mairies, settings.database, self.fleet.zone,
                                      clock)
        self.tournee.subscribe(self.mairies.tell_changes)
        self.delays = DelayWatch(self.mairies, self.board, claim=self.precision.claim)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.http: uvicorn.Server | None = None

    def start(self) -> None:
        """Rebuild state from the store, then start consuming and publishing plans."""
        midnight = datetime.combine(self.board.today(), time(0), self.fleet.zone)
        bounds = self.settings.time_bounds
        for message, received in self.store.history(since=midnight):
            # Stored before the ground judged times: what is outside the window stays out.
            if bounds.judge(message, received) is None:
                self.state.apply(message, received)
        learn(self.travel, self.store, self.fleet, midnight - timedelta(weeks=LEARN_WEEKS))
        self._learned_on = self.board.today()
        self.precision.daily(self.board.today())
        self.alerts.evaluate()
        # What is loaded now (fleet, index, config, the day's state) lives as long as the
        # service: out of the garbage collector's full passes, which otherwise pause every
        # thread for longer the bigger the fleet.
        gc.freeze()
        for part in (self.notifier, self.influx, self.mairies, self.monthly):
            if part is not None:
                part.start()
        self.ingest.start()
        self._spawn(self._daily, "plans-daily")
        self._spawn(self._alert_timer, "alerts")

    def serve_http(self) -> None:
        """Run the web server on a thread; `stop` ends it."""
        self.http = uvicorn.Server(server_config(self.app, self.settings.http,
                                                 log_level="warning"))
        self._spawn(self.http.run, "http")

    def stop(self) -> None:
        self._stop.set()
        if self.http:
            self.http.should_exit = True
        self.ingest.stop()
        for t in self._threads:
            t.join(timeout=10)
        for part in (self.influx, self.notifier, self.mairies, self.monthly):
            if part is not None:
                part.stop()
        self.alerts.close()
        self.tournee.close()
        self.eta_record.close()
        self.store.close()

    def _alert_timer(self) -> None:
        # Time alone opens some alerts (offline for 10 min, a reading held out of range).
        while not self._stop.wait(5.0):
            changed = self.alerts.evaluate()
            if changed:
                self.board.notify({a.vehicle for a in changed})
            self.delays.check()  # a bus late past the threshold: its mairies are told
            self._note_etas()

    def _note_etas(self) -> None:
        """Once a minute of the clock's, what the board publishes goes to the record."""
        now = self.clock.now()
        if self._etas_noted is not None and now - self._etas_noted < timedelta(minutes=1):
            return
        self._etas_noted = now
        try:
            for vehicle in self.fleet.vehicles:
                self.eta_record.note(published(self.board.forecasts(vehicle.id), now,
                                               vehicle.id))
            if self._etas_purged != now.date():  # once a day: the record's oldest go
                self.eta_record.purge(now)
                self._etas_purged = now.date()
        except (sqlite3.Error, ValueError):  # locked, disk: the next minute tries again
            log.exception("published ETAs could not be recorded")

    def _tournee_changed(self, changed: Changed) -> None:
        """The coordinator changed the tournée: everything that reads it reads the new one,
        the communes' pages are told, and today's buses get their plan again."""
        self.fleet = self.alerts.fleet = self.plans.fleet = changed.fleet
        self.board.replace_fleet(changed.fleet, changed.communes)
        today = self.board.today()
        if today in changed.days and self.ingest.connected.is_set():
            self.plans.publish(today, changed.vehicles)

    def _publish_plans(self) -> None:
        today = self.board.today()
        self.plans.publish(today)
        self.plans.publish_appointments(self.store.appointments(today), again=True)

    def _daily(self) -> None:
        purged_on: date | None = None
        while not self._stop.wait(2.0):
            if self._learned_on != self.board.today():
                self._relearn()
            self.precision.daily(self.board.today())  # the record's last four weeks
            if purged_on != self.board.today():  # dead letters past their time, daily
                try:
                    self.store.purge_dead_letters()
                    purged_on = self.board.today()
                except sqlite3.Error:  # locked, disk: tried again at the next turn
                    log.exception("dead letters could not be purged")
            if self.monthly is not None:  # last month's report, on its day
                try:
                    self.monthly.check()
                except sqlite3.Error:  # locked, disk: tried again at the next turn
                    log.exception("the monthly report could not be queued")
            if self.ingest.connected.is_set():
                today = self.board.today()
                if self.plans.published_for != today:  # a new day: yesterday's bookings go
                    self.store.forget_appointments(before=today)
                self.plans.publish_if_new_day(today)
                # Imported by `medicobus ground --import-appointments`, another process.
                self.plans.publish_appointments(self.store.appointments(today))

    def _relearn(self) -> None:
        """Yesterday's drives taught: a new travel model, learned off to the side and then
        swapped in whole (the board never reads one half learned)."""
        today = self.board.today()
        travel = TravelModel()
        midnight = datetime.combine(today, time(0), self.fleet.zone)
        self._learned_on = today  # once a day: eight weeks are not read again every turn
        try:
            learn(travel, self.store, self.fleet, midnight - timedelta(weeks=LEARN_WEEKS))
        except Exception:  # locked, disk, a drive no one foresaw: yesterday's model serves
            # until tomorrow; the daily thread (plans, reports) must go on
            log.exception("the travel model could not be learned again")
            return
        self.travel = self.board.travel = travel

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)
