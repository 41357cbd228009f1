"""Simulated engine, house battery and vaccine fridge for the demo, on the demo's clock.

They keep the Sensor interface, so the demo's bus runs the same runner, sampler and outbox
as a real one:

* the engine runs while the bus moves (`motion()`, from the bus's GPS): rpm and speed
  wander around a cruise, the coolant warms towards ~90 °C and cools when stopped, fuel
  goes down; engine off, only the battery voltage (as an ELM327 reads it on pin 16);
* the house battery discharges while the bus is parked in service hours (consultations:
  lights, computer, heating, the fridge) and recharges from the alternator while driving;
* the fridge holds 4-5 °C, except for one excursion a day: from `excursion_at` (local
  time, mid-morning) it drifts above 8 °C, stays there ~15 minutes, then recovers to 4-5 °C,
  so the demo's "fridge outside 2-8 °C for more than 10 min" alert opens and closes.

Values are functions of the clock's time (and, for the battery and fuel, of the time
spent driving or parked since the last read), so an accelerated clock runs a day in minutes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, time
from zoneinfo import ZoneInfo

from medicobus.clock import Clock
from onboard.config import SensorSettings
from onboard.telemetry.sensors import Motion, Sample

LOCAL = ZoneInfo("Europe/Paris")
SERVICE_HOURS = (time(7, 30), time(19, 0))  # consultations draw on the house battery
MAX_STEP_S = 600.0  # a long gap (the demo paused) integrates as at most this much


def _parked(motion: Motion | None) -> Callable[[], bool]:
    return (lambda: True) if motion is None else (lambda: not motion())


class SimulatedEngine:
    def __init__(self, clock: Clock, motion: Motion | None = None, *,
                 interval_s: float = 5.0, name: str = "engine") -> None:
        self.clock = clock
        self.motion = motion
        self.interval_s = interval_s
        self.name = name
        self.stats: dict[str, int] = {"reads": 0, "samples": 0}
        self.coolant_c = 15.0
        self.fuel_pct = 82.0
        self._last: datetime | None = None

    def read(self) -> Sample:
        self.stats["reads"] += 1
        self.stats["samples"] += 1
        now = self.clock.now()
        dt = 0.0 if self._last is None else min(MAX_STEP_S,
                                               (now - self._last).total_seconds())
        self._last = now
        running = bool(self.motion and self.motion())
        # Coolant relaxes towards 90 °C running (thermostat), ambient 15 °C stopped.
        target, tau = (90.0, 400.0) if running else (15.0, 2400.0)
        self.coolant_c = target + (self.coolant_c - target) * math.exp(-dt / tau)
        if not running:  # engine off, as a real adapter with the ignition off says
            return Sample(ts=now, values={"rpm": 0.0, "speed_kmh": 0.0, "battery_v": 12.6},
                          codes=None)
        phase = now.timestamp() / 47.0
        speed = 62.0 + 18.0 * math.sin(phase) + 4.0 * math.sin(phase * 3.7)
        self.fuel_pct = max(5.0, self.fuel_pct - dt * speed / 3600.0 * 0.09)  # ~12 L/100 km
        return Sample(ts=now, values={
            "speed_kmh": round(speed, 1),
            "rpm": round(900.0 + speed * 28.0, 0),
            "coolant_c": round(self.coolant_c, 1),
            "fuel_pct": round(self.fuel_pct, 1),
            "battery_v": 14.2,
        }, codes=[])

    def close(self) -> None:
        pass


class SimulatedBattery:
    CAPACITY_AH = 200.0
    CONSULTING_A = -18.0  # heating, lights, laptop, printer, fridge
    IDLE_A = -1.5  # the fridge and the Pi, overnight
    CHARGING_A = 35.0  # alternator through a DC-DC charger

    def __init__(self, clock: Clock, motion: Motion | None = None, *,
                 interval_s: float = 5.0, name: str = "battery") -> None:
        self.clock = clock
        self.parked = _parked(motion)
        self.interval_s = interval_s
        self.name = name
        self.stats: dict[str, int] = {"reads": 0, "samples": 0}
        self.soc_pct = 92.0
        self._last: datetime | None = None

    def current_a(self, now: datetime) -> float:
        if not self.parked():
            return self.CHARGING_A if self.soc_pct < 99.5 else 2.0
        local = now.astimezone(LOCAL).time()
        return self.CONSULTING_A if SERVICE_HOURS[0] <= local < SERVICE_HOURS[1] else self.IDLE_A

    def read(self) -> Sample:
        self.stats["reads"] += 1
        self.stats["samples"] += 1
        now = self.clock.now()
        dt = 0.0 if self._last is None else min(MAX_STEP_S,
                                               (now - self._last).total_seconds())
        self._last = now
        current = self.current_a(now)
        self.soc_pct = min(100.0, max(0.0, self.soc_pct
                                      + current * dt / 3600.0 / self.CAPACITY_AH * 100.0))
        voltage = 11.8 + 1.3 * self.soc_pct / 100.0 + current * 0.004
        values = {"voltage_v": round(voltage, 2), "current_a": round(current, 1),
                  "soc_pct": round(self.soc_pct, 1)}
        if current < 0:
            values["ttg_min"] = round(self.soc_pct / 100.0 * self.CAPACITY_AH / -current * 60)
        codes = ["LOW_SOC"] if self.soc_pct < 30.0 else []
        return Sample(ts=now, values=values, codes=codes)

    def close(self) -> None:
        pass


class SimulatedFridge:
    RAMP_UP_S = 300.0  # door left ajar / compressor stalls: 4.5 -> 9.5 °C in 5 min
    PLATEAU_S = 660.0  # with the ramps' ends, above 8 °C ~15 minutes in all
    RAMP_DOWN_S = 420.0

    def __init__(self, clock: Clock, *, excursion_at: time | None = time(10, 30),
                 interval_s: float = 30.0, name: str = "fridge") -> None:
        self.clock = clock
        self.excursion_at = excursion_at
        self.interval_s = interval_s
        self.name = name
        self.stats: dict[str, int] = {"reads": 0, "samples": 0}

    def temperature(self, now: datetime) -> float:
        # The compressor's cycle: 4.0-5.0 °C with a ~20 min period.
        base = 4.5 + 0.45 * math.sin(now.timestamp() * 2 * math.pi / 1200.0)
        if self.excursion_at is None:
            return base
        local = now.astimezone(LOCAL)
        start = datetime.combine(local.date(), self.excursion_at, tzinfo=LOCAL)
        t = (local - start).total_seconds()
        peak = 9.6
        if t < 0 or t > self.RAMP_UP_S + self.PLATEAU_S + self.RAMP_DOWN_S:
            return base
        if t < self.RAMP_UP_S:
            return base + (peak - base) * t / self.RAMP_UP_S
        t -= self.RAMP_UP_S
        if t < self.PLATEAU_S:
            return peak + 0.3 * math.sin(t / 90.0)
        t -= self.PLATEAU_S
        return peak + (base - peak) * t / self.RAMP_DOWN_S

    def read(self) -> Sample:
        self.stats["reads"] += 1
        self.stats["samples"] += 1
        now = self.clock.now()
        return Sample(ts=now, values={"temp_c": round(self.temperature(now), 2)})

    def close(self) -> None:
        pass


def engine_from_settings(settings: SensorSettings, clock: Clock,
                         motion: Motion | None) -> SimulatedEngine:
    return SimulatedEngine(clock, motion, interval_s=settings.interval_s or 5.0,
                           name=settings.sensor_name)


def battery_from_settings(settings: SensorSettings, clock: Clock,
                          motion: Motion | None) -> SimulatedBattery:
    return SimulatedBattery(clock, motion, interval_s=settings.interval_s or 5.0,
                            name=settings.sensor_name)


def fridge_from_settings(settings: SensorSettings, clock: Clock,
                         motion: Motion | None) -> SimulatedFridge:
    return SimulatedFridge(clock, excursion_at=settings.excursion_at,
                           interval_s=settings.interval_s or 30.0, name=settings.sensor_name)
