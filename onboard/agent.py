"""The bus's agent: reads GPS and runs each fix through the position pipeline, in order:

    filter (drop bad fixes) -> geofence (arrival / departure) -> report policy -> outbox

The link drains the outbox to the broker on its own thread, so the pipeline never waits
for the network. Equipment sensors (engine, house battery, fridge: `[[sensors]]` in the
config) run one thread each (`onboard/telemetry/sensors/runner.py`) and put their Readings
in the same outbox. A step that fails (a bug, a full disk) is logged and the loop goes on
with its state: a restart by systemd would lose the filter's and the report policy's memory.

The agent's clock is the one given, stepped to GPS time when it is obviously behind
(`medicobus.clock.GpsSteppedClock`), so readings are not stamped months in the past by a
Pi that booted without network. The storage (free space, what a full disk refused, damaged
files set aside) is reported to the ground as readings (`onboard/storage_report.py`).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from medicobus import contract, motion
from medicobus.clock import Clock, GpsSteppedClock
from onboard.config import OnboardSettings
from onboard.geofence import VisitTracker
from onboard.link import Link
from onboard.outbox import Outbox
from onboard.plan import PlanStore
from onboard.storage_report import StorageReport
from onboard.telemetry.fix import Fix, GpsSource
from onboard.telemetry.fix_filter import FixFilter
from onboard.telemetry.reporting import ReportPolicy
from onboard.telemetry.sampling import Sampler
from onboard.telemetry.sensors import build_sensor
from onboard.telemetry.sensors.runner import SensorRunner

log = logging.getLogger(__name__)

STEP_ERROR_LOG_S = 60.0  # a step failing again and again is logged at most this often


class Agent:
    def __init__(self, settings: OnboardSettings, source: GpsSource, clock: Clock) -> None:
        self.settings = settings
        self.vehicle = settings.vehicle
        self.source = source
        self.clock = GpsSteppedClock(clock)  # what the agent, its link and sensors stamp with
        self.outbox = Outbox(settings.data_dir / "outbox.db", settings.outbox.max_rows,
                             settings.outbox.reserve_mb)
        self.storage = StorageReport(self.outbox, settings.data_dir, self.vehicle,
                                     self.clock)
        self.filter = FixFilter(settings.filter, self.vehicle)
        if settings.filter.future_tolerance_s is not None:
            log.warning("filter.future_tolerance_s is ignored: fixes are judged by GPS time")
        self.plans = PlanStore(settings.data_dir / "plan.db")
        self.visits = VisitTracker(settings.geofence, self.plans)
        self.policy = ReportPolicy(settings.report)
        self._new_plans: list[contract.Plan] = []
        self._plans_lock = threading.Lock()
        self.link = Link(settings.broker, self.vehicle, self.outbox, self._receive,
                         clock=self.clock, batch_size=settings.outbox.batch_size,
                         inflight_batches=settings.outbox.inflight_batches)
        self.silent_reads = 0
        self.step_errors = 0
        self._step_error_logged: datetime | None = None
        self.moving = False  # as the last accepted fix says: drives the simulated sensors
        self.sensors = self._build_sensors()

    def _build_sensors(self) -> list[SensorRunner]:
        runners: list[SensorRunner] = []
        for i, conf in enumerate(self.settings.sensors):
            try:
                sensor = build_sensor(conf, self.clock, motion=lambda: self.moving)
            except Exception:  # a missing library or a bad port: the rest of the bus runs
                log.exception("sensors[%d] (%s) cannot be started; going on without it",
                              i, conf.type)
                continue
            sampler = Sampler(sensor.name, conf, self.clock, vehicle=self.vehicle,
                              interval_s=sensor.interval_s)
            runners.append(SensorRunner(sensor, sampler, self.outbox, self.clock,
                                        interval_s=conf.interval_s))
        return runners

    def _receive(self, message: contract.Plan | contract.Appointments) -> None:
        # Called on the network thread. Appointments are only kept for the kiosk; a plan is
        # taken by the pipeline thread at its next step.
        if isinstance(message, contract.Appointments):
            self.plans.save_appointments(message)
            log.info("appointments for %s received: %d", message.day, len(message.items))
            return
        with self._plans_lock:
            self._new_plans.append(message)

    def step(self) -> None:
        with self._plans_lock:
            plans, self._new_plans = self._new_plans, []
        for plan in plans:
            log.info("plan for %s received: %d visits", plan.day, len(plan.visits))
            self.visits.use(plan)
        fix = self.source.read()
        if fix is None:
            self.silent_reads += 1
        else:
            self.process(fix)
        self.storage.send_if_due()  # after the fix: a failing report never costs the GPS

    def process(self, fix: Fix) -> None:
        if not self.filter.accept(fix):
            return
        self.clock.observe(fix.ts)
        self.moving = motion.moving(fix.speed, self.settings.report.moving_speed_kmh)
        crossings = self.visits.update(fix)
        for c in crossings:
            log.info("%s at %s (%s)", c.event, c.visit.commune, c.visit.visit)
            self.outbox.put(contract.VisitEvent(
                vehicle=self.vehicle, ts=c.ts, event=c.event, visit=c.visit.visit,
                stop=c.visit.stop, lat=fix.lat, lon=fix.lon,
            ))  # fmt: skip
        if self.policy.due(fix) or crossings:
            self.outbox.put(fix.position(self.vehicle))  # the filter checked it builds

    def run(self, stop: threading.Event) -> None:
        self.link.start()
        for runner in self.sensors:
            runner.start()
        try:
            while not stop.is_set():
                self._step_surviving()
                self.clock.sleep(self.settings.gps.poll_s)
        finally:
            for runner in self.sensors:
                runner.stop()  # before the outbox closes: a reading may be on its way
            self.link.stop()
            self.source.close()
            self.outbox.close()

    def _step_surviving(self) -> None:
        """One step; whatever it raises is counted and logged (with its traceback, at most
        once every STEP_ERROR_LOG_S), and the agent keeps its state for the next step."""
        try:
            self.step()
        except Exception:
            self.step_errors += 1
            now = self.clock.now()
            last = self._step_error_logged
            if last is None or (now - last).total_seconds() >= STEP_ERROR_LOG_S:
                self._step_error_logged = now
                log.exception("a step of the position pipeline failed (%d so far); "
                              "going on with the next", self.step_errors)
