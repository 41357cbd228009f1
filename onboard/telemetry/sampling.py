"""From a sensor's Samples to the Readings worth sending: validity, deadband, heartbeat.

A quiet bus must cost little cellular data, and a broken probe must never be stored as
truth. For each Sample the `Sampler`

* checks every value: NaN becomes null flagged "nan", ±inf null flagged "infinite", a value
  outside the quantity's physical range null flagged "out_of_range" (a fridge at 300 °C is a
  broken probe, not a fire); a plugin's own flags ("crc", "power_on_reset", "stale") also
  give null;
* sends only the quantities that moved by their deadband or more since they were last
  sent (and any whose flag appeared, changed or cleared), the codes when their set changed,
  and everything at the heartbeat (300 s by default);
* when the sensor stays silent past `stale_after_s`, sends every quantity it knew once as
  null flagged "stale", so the ground does not show a dead fridge's last value as live.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import cast, get_args

from medicobus import contract
from medicobus.clock import Clock
from onboard.config import SensorSettings
from onboard.telemetry.sensors import Sample

log = logging.getLogger(__name__)

_FLAGS = frozenset(get_args(contract.Flag))
_QUANTITY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # the contract's Quantity
_CODE = re.compile(r"^[A-Za-z0-9_]{1,32}$")  # the contract's code
MAX_QUANTITIES = 40
MAX_CODES = 50

# Physical ranges: outside them a value cannot be true (a probe, a cable or a decoder is
# wrong). Keyed by quantity name; `_PATTERNS` cover numbered quantities (temp2_c...).
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "coolant_c": (-40.0, 150.0),
    "temp_c": (-40.0, 60.0),  # the fridge's probes
    "soc_pct": (0.0, 100.0),
    "voltage_v": (0.0, 70.0),  # a 48 V bank charging stays under 70 V
    "rpm": (0.0, 10_000.0),
    "speed_kmh": (0.0, 250.0),
    "fuel_pct": (0.0, 100.0),
    "current_a": (-1000.0, 1000.0),
    "battery_v": (0.0, 40.0),  # the vehicle's 12/24 V system
    "ttg_min": (0.0, 60.0 * 24 * 365),  # a BMV caps time-to-go well below a year
}

# Moving less than this is not news. Fridge 0.2 °C: the probe's resolution is 0.0625 °C,
# and a cold chain log needs tenths; coolant 2 °C, rpm 200: engine noise.
DEFAULT_DEADBANDS: dict[str, float] = {
    "coolant_c": 2.0,
    "temp_c": 0.2,
    "soc_pct": 1.0,
    "voltage_v": 0.05,
    "rpm": 200.0,
    "speed_kmh": 5.0,
    "fuel_pct": 1.0,
    "current_a": 1.0,
    "battery_v": 0.1,
    "ttg_min": 30.0,
}

# A numbered quantity (temp2_c, temp_vaccines_c) shares its family's range and deadband.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [(re.compile(r"^temp[a-z0-9_]*_c$"), "temp_c")]

# Decimals kept per value: finer than any deadband, coarse enough to keep payloads short.
DECIMALS = 3
DEFAULT_STALE_FACTOR = 3.0  # silent for 3 of its intervals (at least a minute): stale
MIN_STALE_S = 60.0


def _family(quantity: str) -> str:
    for pattern, family in _PATTERNS:
        if pattern.match(quantity):
            return family
    return quantity


@dataclass
class _Sent:
    value: float | None
    flag: str | None


class Sampler:
    """Turns one sensor's Samples into `contract.Reading`s (or None: nothing worth sending).

    Not thread-safe: one sampler belongs to one sensor's runner thread.
    """

    def __init__(self, sensor_name: str, settings: SensorSettings, clock: Clock, *,
                 vehicle: str, interval_s: float | None = None) -> None:
        self.sensor_name = sensor_name
        self.vehicle = vehicle
        self.clock = clock
        self.heartbeat_s = settings.heartbeat_s
        interval = settings.interval_s or interval_s or 10.0
        self.stale_after_s = settings.stale_after_s or max(MIN_STALE_S,
                                                           DEFAULT_STALE_FACTOR * interval)
        self.ranges = {**DEFAULT_RANGES, **settings.ranges}
        self.deadbands = {**DEFAULT_DEADBANDS, **settings.deadbands}
        self._sent: dict[str, _Sent] = {}  # per quantity, what the ground last got
        self._codes_sent: list[str] | None = None
        self._last_report: datetime | None = None  # when everything was last sent
        self._last_sample: datetime | None = None
        self._stale_reported = False
        self.stats: dict[str, int] = {"samples": 0, "readings": 0, "suppressed": 0,
                                      "flagged": 0, "stale": 0}

    # -- per quantity ------------------------------------------------------------------

    def range_of(self, quantity: str) -> tuple[float, float] | None:
        return self.ranges.get(quantity) or self.ranges.get(_family(quantity))

    def deadband_of(self, quantity: str) -> float:
        if quantity in self.deadbands:
            return self.deadbands[quantity]
        return self.deadbands.get(_family(quantity), 0.0)

    def check(self, quantity: str, value: float) -> tuple[float | None, str | None]:
        """The value to send and its flag: (value, None) when it can be true."""
        if math.isnan(value):
            return None, "nan"
        if math.isinf(value):
            return None, "infinite"
        bounds = self.range_of(quantity)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return None, "out_of_range"
        return round(value, DECIMALS), None

    # -- samples -----------------------------------------------------------------------

    def feed(self, sample: Sample) -> contract.Reading | None:
        """The Reading to send for this sample, or None when nothing moved enough."""
        self.stats["samples"] += 1
        self._last_sample = sample.ts
        self._stale_reported = False
        current: dict[str, _Sent] = {}
        for quantity, raw in sample.values.items():
            value, flag = self.check(quantity, float(raw))
            current[quantity] = _Sent(value, flag)
        for quantity, flag in sample.flags.items():
            current[quantity] = _Sent(None, flag)  # the plugin could not read it
        current = self._valid(current)
        self.stats["flagged"] += sum(1 for s in current.values() if s.flag)

        heartbeat = (self._last_report is None
                     or (sample.ts - self._last_report).total_seconds() >= self.heartbeat_s)
        changed = current if heartbeat else {
            q: s for q, s in current.items() if self._moved(q, s)}
        codes = None
        if sample.codes is not None:
            codes = sorted({c for c in sample.codes if _CODE.match(c)})[:MAX_CODES]
        codes_changed = codes is not None and codes != self._codes_sent
        if not changed and not codes_changed and not heartbeat:
            self.stats["suppressed"] += 1
            return None
        if heartbeat:
            self._last_report = sample.ts
        return self._reading(sample.ts, changed,
                             codes if (codes_changed or (heartbeat and codes is not None))
                             else None)

    def missing(self) -> contract.Reading | None:
        """Called when the sensor gave nothing: once it has been silent for
        `stale_after_s`, every quantity it had is sent as null flagged "stale" (once)."""
        if self._stale_reported or self._last_sample is None or not self._sent:
            return None
        now = self.clock.now()
        if (now - self._last_sample).total_seconds() < self.stale_after_s:
            return None
        self._stale_reported = True
        self.stats["stale"] += 1
        stale = {q: _Sent(None, "stale") for q in self._sent}
        return self._reading(now, stale, None)

    def _valid(self, current: dict[str, _Sent]) -> dict[str, _Sent]:
        # A plugin's bug (a bad name, an unknown flag) must cost its quantity, not the
        # Reading: the contract would refuse the whole message.
        valid: dict[str, _Sent] = {}
        for quantity, sent in sorted(current.items()):
            if not _QUANTITY.match(quantity) or len(valid) >= MAX_QUANTITIES:
                self.stats["invalid"] = self.stats.get("invalid", 0) + 1
                log.debug("%s: dropping quantity %r", self.sensor_name, quantity)
                continue
            if sent.flag is not None and sent.flag not in _FLAGS:
                self.stats["invalid"] = self.stats.get("invalid", 0) + 1
                sent = _Sent(None, "out_of_range")
            valid[quantity] = sent
        return valid

    def _moved(self, quantity: str, now: _Sent) -> bool:
        before = self._sent.get(quantity)
        if before is None:
            return True
        if now.flag != before.flag:
            return True  # a flag appeared, changed or cleared
        if now.value is None or before.value is None:
            return now.value is not before.value
        deadband = self.deadband_of(quantity)
        if deadband == 0:
            return now.value != before.value
        # A tiny tolerance so that a move of exactly the deadband (4.5 -> 4.7) counts.
        return abs(now.value - before.value) >= deadband - 1e-9

    def _reading(self, ts: datetime, changed: dict[str, _Sent],
                 codes: list[str] | None) -> contract.Reading:
        self._sent.update(changed)
        if codes is not None:
            self._codes_sent = codes
        self.stats["readings"] += 1
        return contract.Reading(
            vehicle=self.vehicle, ts=ts, sensor=self.sensor_name,
            values={q: s.value for q, s in sorted(changed.items())},
            flags={q: cast(contract.Flag, s.flag) for q, s in sorted(changed.items()) if s.flag},
            codes=codes,
        )
