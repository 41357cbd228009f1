"""One daemon thread per sensor: read at the sensor's pace, sample, put Readings in the
outbox.

Each sensor gets its own thread because a read can take seconds (an ELM327 searching for
the car's protocol, a 1-wire conversion at 750 ms a probe): a slow or stuck sensor must
not delay the others nor the GPS pipeline. A sensor whose `read()` raises anyway (a bug:
the interface says it never does) is caught, logged (with its traceback the first time),
counted and read again at its next turn: the agent never goes down for a sensor.
"""

from __future__ import annotations

import logging
import threading
import time

from medicobus.clock import Clock
from onboard.outbox import Outbox
from onboard.telemetry.sampling import Sampler
from onboard.telemetry.sensors import Sample, Sensor

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.05


class SensorRunner:
    def __init__(self, sensor: Sensor, sampler: Sampler, outbox: Outbox, clock: Clock,
                 interval_s: float | None = None) -> None:
        self.sensor = sensor
        self.sampler = sampler
        self.outbox = outbox
        self.clock = clock
        self.interval_s = max(MIN_INTERVAL_S, interval_s or sensor.interval_s)
        self.stats: dict[str, int] = {"reads": 0, "samples": 0, "readings": 0,
                                      "sensor_errors": 0, "sampler_errors": 0,
                                      "outbox_errors": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False  # the sensor's last read raised: log the next one quietly

    @property
    def name(self) -> str:
        return self.sensor.name

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sensor-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading and close the sensor. A read in progress is let finish (up to
        `timeout_s`): closing a port under python-OBD's feet would only add errors."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("sensor %s still busy after %.0f s; leaving its thread",
                            self.name, timeout_s)
                return
        try:
            self.sensor.close()
        except Exception:
            log.exception("closing sensor %s failed", self.name)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def step(self) -> None:
        """One read, sample and put; never raises."""
        self.stats["reads"] += 1
        sample: Sample | None = None
        try:
            sample = self.sensor.read()
            if self._failing:
                log.warning("sensor %s reads again", self.name)
                self._failing = False
        except Exception:
            self.stats["sensor_errors"] += 1
            if not self._failing:
                log.exception("sensor %s raised (a bug: read() must not); going on",
                              self.name)
                self._failing = True
            else:
                log.debug("sensor %s raised again", self.name, exc_info=True)
        try:
            if sample is not None:
                self.stats["samples"] += 1
                reading = self.sampler.feed(sample)
            else:
                reading = self.sampler.missing()
        except Exception:
            self.stats["sampler_errors"] += 1
            log.exception("sampling %s failed", self.name)
            return
        if reading is None:
            return
        try:
            self.outbox.put(reading)
            self.stats["readings"] += 1
        except Exception:  # a closed or full disk: the next reading will try again
            self.stats["outbox_errors"] += 1
            log.exception("could not store a reading of %s", self.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.step()
            self._wait(self.interval_s, time.monotonic() - started)

    def _wait(self, interval_s: float, spent_real_s: float) -> None:
        # The interval is in the clock's time: the demo's AcceleratedClock runs `speed`
        # times faster than real time. Waiting on the stop event (not clock.sleep) keeps
        # stop() prompt.
        speed = float(getattr(self.clock, "speed", 1.0)) or 1.0
        self._stop.wait(max(0.0, interval_s / speed - spent_real_s))
