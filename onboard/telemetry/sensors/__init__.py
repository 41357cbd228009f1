"""Equipment sensors on the bus: the plugin interface and the registry of plugins.

A sensor plugin reads one piece of equipment (the engine through OBD-II, the house battery
through VE.Direct, the vaccine fridge's 1-wire probes) and hands back a `Sample`: the
values it read now, with their unit in their name (`coolant_c`, `soc_pct`). What to send
and when is not its business: `onboard.telemetry.sampling.Sampler` decides that, and
`runner.SensorRunner` paces the reads on a thread of its own.

The contract every plugin keeps, like the GPS source (`onboard/telemetry/gps.py`):
`read()` never raises and never blocks much longer than its timeout; it returns None while
the equipment is unplugged, silent or talking garbage, counts why in `stats`, logs one
WARNING when an outage starts and one when it ends, and reconnects by itself.

Plugins are named by `type` in the onboard config (`[[sensors]] type = "engine"`); the
registry imports a plugin's module only when a sensor of its type is configured, so a bus
without an OBD adapter never imports python-OBD.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from medicobus.clock import Clock

if TYPE_CHECKING:
    from onboard.config import SensorSettings


@dataclass(frozen=True)
class Sample:
    """What a sensor read at `ts`.

    `values` holds finite or not (the sampler flags NaN, inf and the impossible) floats by
    quantity; `codes` the codes set now (OBD-II trouble codes, battery alarms), [] for none
    and None for a sensor that has no codes. `flags` lets a plugin say a quantity could not
    be read and why ("crc", "power_on_reset", "stale"): such a quantity has no value and is
    reported as null with its flag.
    """

    ts: datetime
    values: dict[str, float]
    codes: list[str] | None = None
    flags: dict[str, str] = field(default_factory=dict)


class Sensor(Protocol):
    name: str  # the name its readings carry: "engine", "battery", "fridge"
    interval_s: float  # its natural pace: how often reading it is worth it
    stats: dict[str, int]  # what happened, by reason, for the health report and tests

    def read(self) -> Sample | None:
        """The current values, or None when the equipment has nothing to say right now
        (unplugged, silent, garbage). Never raises."""
        ...

    def close(self) -> None: ...


# Moving or not, as the bus's GPS tells it (`medicobus.motion.moving` on the last accepted
# fix, see `onboard.agent`): drives the simulated engine and battery.
Motion = Callable[[], bool]

# type -> "module:factory"; a factory is called as factory(settings, clock, motion).
_PLUGINS: dict[str, str] = {
    "engine": "onboard.telemetry.sensors.engine:from_settings",
    "battery": "onboard.telemetry.sensors.battery:from_settings",
    "fridge": "onboard.telemetry.sensors.fridge:from_settings",
    "simulated-engine": "onboard.telemetry.sensors.simulated:engine_from_settings",
    "simulated-battery": "onboard.telemetry.sensors.simulated:battery_from_settings",
    "simulated-fridge": "onboard.telemetry.sensors.simulated:fridge_from_settings",
}

SensorFactory = Callable[["SensorSettings", Clock, Motion | None], Sensor]


def plugin_types() -> list[str]:
    return sorted(_PLUGINS)


def build_sensor(settings: SensorSettings, clock: Clock, motion: Motion | None = None) -> Sensor:
    """The sensor `settings` describes. Raises ValueError for an unknown type, and whatever
    the plugin's module raises on import (python-OBD missing): the caller logs and goes on
    without that sensor."""
    try:
        target = _PLUGINS[settings.type]
    except KeyError:
        raise ValueError(f"no sensor plugin of type {settings.type!r}; "
                         f"known: {', '.join(plugin_types())}") from None
    module_name, _, factory_name = target.partition(":")
    factory: SensorFactory = getattr(importlib.import_module(module_name), factory_name)
    return factory(settings, clock, motion)


class OutageLog:
    """One WARNING when a device goes away and one when it is back, not one per read, with
    the backoff before the next attempt to reach it (0.5 s doubling up to 30 s)."""

    def __init__(self, log: Callable[..., None], what: str,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        self._warn = log
        self.what = what
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.backoff_s = backoff_initial_s
        self.next_attempt = 0.0  # time.monotonic() before which the device is not retried
        self.since: float | None = None  # monotonic start of the current outage

    @property
    def out(self) -> bool:
        return self.since is not None

    def may_try(self, now: float) -> bool:
        return now >= self.next_attempt

    def failed(self, now: float, reason: str) -> None:
        if self.since is None:
            self.since = now
            self._warn("%s unavailable (%s); retrying in the background", self.what, reason)
        self.next_attempt = now + self.backoff_s
        self.backoff_s = min(self.backoff_max_s, self.backoff_s * 2)

    def healthy(self, now: float) -> None:
        if self.since is not None:
            self._warn("%s back after %.1f s", self.what, now - self.since)
            self.since = None
        self.backoff_s = self.backoff_initial_s
        self.next_attempt = 0.0
