"""The bus's agent: reads GPS and runs each fix through the position pipeline, in order:

    filter (drop bad fixes) -> geofence (arrival / departure) -> report policy -> outbox

The link drains the outbox to the broker on its own thread, so the pipeline never waits
for the network. Equipment sensors (engine, house battery, fridge: `[[sensors]]` in the
config) run one thread each (`onboard/telemetry/sensors/runner.py`) and put their Readings
in the same outbox.
"""

from __future__ import annotations

import logging
import threading

from medicobus import contract, motion
from medicobus.clock import Clock
from onboard.config import OnboardSettings
from onboard.geofence import VisitTracker
from onboard.link import Link
from onboard.outbox import Outbox
from onboard.plan import PlanStore
from onboard.telemetry.fix import Fix, GpsSource
from onboard.telemetry.fix_filter import FixFilter
from onboard.telemetry.reporting import ReportPolicy
from onboard.telemetry.sampling import Sampler
from onboard.telemetry.sensors import build_sensor
from onboard.telemetry.sensors.runner import SensorRunner

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, settings: OnboardSettings, source: GpsSource, clock: Clock) -> None:
        self.settings = settings
        self.vehicle = settings.vehicle
        self.source = source
        self.clock = clock
        self.outbox = Outbox(settings.data_dir / "outbox.db", settings.outbox.max_rows)
        self.filter = FixFilter(settings.filter, clock)
        self.plans = PlanStore(settings.data_dir / "plan.db")
        self.visits = VisitTracker(settings.geofence, self.plans)
        self.policy = ReportPolicy(settings.report)
        self._new_plans: list[contract.Plan] = []
        self._plans_lock = threading.Lock()
        self.link = Link(settings.broker, self.vehicle, self.outbox, self._receive,
                         clock=clock, batch_size=settings.outbox.batch_size,
                         inflight_batches=settings.outbox.inflight_batches)
        self.silent_reads = 0
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
            return
        self.process(fix)

    def process(self, fix: Fix) -> None:
        if not self.filter.accept(fix):
            return
        self.moving = motion.moving(fix.speed, self.settings.report.moving_speed_kmh)
        crossings = self.visits.update(fix)
        for c in crossings:
            log.info("%s at %s (%s)", c.event, c.visit.commune, c.visit.visit)
            self.outbox.put(contract.VisitEvent(
                vehicle=self.vehicle, ts=c.ts, event=c.event, visit=c.visit.visit,
                stop=c.visit.stop, lat=fix.lat, lon=fix.lon,
            ))  # fmt: skip
        if self.policy.due(fix) or crossings:
            self.outbox.put(contract.Position(
                vehicle=self.vehicle, ts=fix.ts, lat=round(fix.lat, 6), lon=round(fix.lon, 6),
                speed=_rounded(fix.speed, 1), heading=_rounded(fix.heading, 0),
                acc=_rounded(fix.acc, 0),
            ))  # fmt: skip

    def run(self, stop: threading.Event) -> None:
        self.link.start()
        for runner in self.sensors:
            runner.start()
        try:
            while not stop.is_set():
                self.step()
                self.clock.sleep(self.settings.gps.poll_s)
        finally:
            for runner in self.sensors:
                runner.stop()  # before the outbox closes: a reading may be on its way
            self.link.stop()
            self.source.close()
            self.outbox.close()


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
