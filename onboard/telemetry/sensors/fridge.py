"""The vaccine fridge: DS18B20 probes on the Pi's 1-wire bus, read through the kernel.

With `dtoverlay=w1-gpio` the kernel's w1_therm driver shows each probe as a directory
`/sys/bus/w1/devices/28-<serial>/` whose `w1_slave` file, when read, runs a conversion
(~750 ms) and returns two lines, the probe's scratchpad each time:

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

The first line ends in YES when the scratchpad's CRC checked, NO when the bus garbled it;
the second gives the temperature in thousandths of a degree. Rejected, each flagged:

* a CRC failure ("crc"), and an all-zero scratchpad, which passes the CRC (CRC of zeros is
  zero) but is what a shorted or floating data line reads;
* 85.000 °C, the value a probe holds after power-on before any conversion: seen after a
  brown-out or a loose supply wire, it is not a temperature ("power_on_reset");
* a probe that was there and is gone (unplugged, its directory removed by the kernel), or
  whose file cannot be read: "stale" until it comes back.

Quantities: `temp_c` for the first probe, `temp2_c`, `temp3_c`... for the next ones in
order of probe id, unless `probes` in the settings names them ({"28-...": "temp_c"}). The
numbering is over every probe seen since start, so a probe's name does not change when
another is unplugged.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from medicobus.clock import Clock, SystemClock
from onboard.config import SensorSettings
from onboard.telemetry.guard import guarded_read
from onboard.telemetry.sensors import Motion, OutageLog, Sample

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 30.0  # a fridge's air moves slowly; each read costs 750 ms per probe
POWER_ON_MILLI_C = 85_000
_CRC_LINE = re.compile(r"crc=([0-9a-fA-F]{2})\s+(YES|NO)\s*$")
_TEMP = re.compile(r"t=(-?\d+)\s*$")
_HEX_BYTE = re.compile(r"^[0-9a-fA-F]{2}$")


class ProbeError(Exception):
    """A probe's file that says no temperature; `.flag` says why for the Reading."""

    def __init__(self, flag: str, reason: str) -> None:
        super().__init__(reason)
        self.flag = flag


def parse_w1_slave(text: str) -> float:
    """°C from a w1_slave file's text; raises ProbeError("crc" | "power_on_reset")."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise ProbeError("crc", f"{len(lines)} line(s) where the kernel writes two")
    crc = _CRC_LINE.search(lines[0])
    temp = _TEMP.search(lines[1])
    if crc is None or temp is None:
        raise ProbeError("crc", f"not the w1_therm format: {lines[0][:60]!r}")
    if crc.group(2) != "YES":
        raise ProbeError("crc", "CRC check failed")
    scratchpad = lines[0].split(":")[0].split()
    if scratchpad and all(_HEX_BYTE.match(b) and int(b, 16) == 0 for b in scratchpad):
        raise ProbeError("crc", "all-zero scratchpad (data line shorted or floating)")
    milli = int(temp.group(1))
    if milli == POWER_ON_MILLI_C:
        raise ProbeError("power_on_reset", "85 °C power-on value: no conversion done")
    return milli / 1000.0


class FridgeSensor:
    """DS18B20 probes under `w1_dir`. `read()` never raises."""

    def __init__(self, w1_dir: Path | str = "/sys/bus/w1/devices", *, name: str = "fridge",
                 probes: dict[str, str] | None = None, interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Clock | None = None) -> None:
        self.name = name
        self.interval_s = interval_s
        self.w1_dir = Path(w1_dir)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.names = dict(probes or {})  # probe id -> quantity, from the settings
        self._seen: list[str] = sorted(self.names)  # every probe met, for stable numbering
        self.stats: dict[str, int] = {"reads": 0, "samples": 0, "no_probe": 0, "crc": 0,
                                      "power_on_reset": 0, "missing": 0, "read_errors": 0,
                                      "errors": 0}
        self._outage = OutageLog(log.warning, f"1-wire probes under {self.w1_dir}")
        self._probe_down: set[str] = set()

    def read(self) -> Sample | None:
        return guarded_read("1-wire", self.stats, self._read,
                            lambda reason: self._outage.failed(time.monotonic(), reason))

    def close(self) -> None:
        pass  # nothing held open: each read opens the kernel's files afresh

    def quantity(self, probe: str) -> str:
        if probe in self.names:
            return self.names[probe]
        unnamed = [p for p in self._seen if p not in self.names]
        n = unnamed.index(probe) + 1
        return "temp_c" if n == 1 else f"temp{n}_c"

    def _present(self) -> list[str]:
        try:
            return sorted(p.name for p in self.w1_dir.glob("28-*") if p.is_dir())
        except OSError:
            return []

    def _read(self) -> Sample | None:
        present = self._present()
        for probe in present:
            if probe not in self._seen:
                self._seen.append(probe)
        self._seen.sort()
        if not present:
            self.stats["no_probe"] += 1
            self._outage.failed(time.monotonic(), "no DS18B20 probe on the bus")
            return None
        values: dict[str, float] = {}
        flags: dict[str, str] = {}
        for probe in self._seen:
            quantity = self.quantity(probe)
            if probe not in present:
                self.stats["missing"] += 1
                flags[quantity] = "stale"
                self._probe_trouble(probe, "unplugged")
                continue
            try:
                text = (self.w1_dir / probe / "w1_slave").read_text(encoding="ascii",
                                                                    errors="replace")
                values[quantity] = parse_w1_slave(text)
            except ProbeError as exc:
                self.stats[exc.flag] += 1
                flags[quantity] = exc.flag
                self._probe_trouble(probe, str(exc))
                continue
            except OSError as exc:  # the probe went away between listing and reading
                self.stats["read_errors"] += 1
                flags[quantity] = "stale"
                self._probe_trouble(probe, f"{type(exc).__name__}: {exc}")
                continue
            if probe in self._probe_down:
                self._probe_down.discard(probe)
                log.warning("fridge probe %s (%s) reads again", probe, quantity)
        self._outage.healthy(time.monotonic())
        if not values and not flags:
            return None
        self.stats["samples"] += 1
        return Sample(ts=self.clock.now(), values=values, flags=flags)

    def _probe_trouble(self, probe: str, reason: str) -> None:
        if probe not in self._probe_down:  # once per episode, not once per read
            self._probe_down.add(probe)
            log.warning("fridge probe %s: %s", probe, reason)


def from_settings(settings: SensorSettings, clock: Clock, motion: Motion | None) -> FridgeSensor:
    return FridgeSensor(settings.w1_dir, name=settings.sensor_name, probes=settings.probes,
                        interval_s=settings.interval_s or DEFAULT_INTERVAL_S, clock=clock)
