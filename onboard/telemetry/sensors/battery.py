"""The house battery: a Victron battery monitor (BMV, SmartShunt) or solar charger speaking
the VE.Direct text protocol on a serial port (19200 baud, 8N1).

The device sends, about once a second, blocks of fields:

    \\r\\nV\\t12800\\r\\nI\\t-3150\\r\\nSOC\\t876\\r\\n ... \\r\\nChecksum\\t<one byte>

The checksum byte makes the sum of every byte of the block, from its first \\r\\n to the
checksum byte itself, 0 modulo 256; a BMV splits its fields over two such blocks. Binary
"HEX protocol" frames (':' up to '\\n') may be interleaved anywhere and are outside the
checksum. The checksum byte can be any value, ':' or '\\r' included.

`VEDirectParser` is our own: the PyPI parsers looked at (`vedirect` 1.1.0, `vedirect-m8`
1.3.4) either checksum whatever sits between two "PID" lines and raise on a bad one, or drop
bad blocks without counting them and reconfigure the root logger on import; we need every
dropped block counted and a parser that survives any byte.

Quantities: voltage_v (V, mV), current_a (I, mA; negative discharging), soc_pct (SOC, per
mille), ttg_min (TTG, minutes; -1, infinite when charging, is left out), and as codes the
alarm reasons set in AR ("LOW_VOLTAGE", "LOW_SOC"...), "ALARM" while the alarm relay/buzzer
is on, "ERR_<n>" for a charger's error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime

import serial

from medicobus.clock import Clock, SystemClock
from onboard.config import SensorSettings
from onboard.telemetry.guard import count_connection, guarded_read
from onboard.telemetry.sensors import Motion, OutageLog, Sample

log = logging.getLogger(__name__)

BAUDRATE = 19200
DEFAULT_INTERVAL_S = 5.0
MAX_LABEL = 16  # the longest label in Victron's list is 9; more is garbage
MAX_VALUE = 64
MAX_FIELDS = 40  # a BMV block has ~18
MAX_HEX = 256  # a HEX frame longer than this is noise that happened to contain ':'
READ_CHUNK = 4096

# AR (alarm reason), a bitmask: the BMV's and the MPPT's, from Victron's protocol document.
ALARM_REASONS = {
    1: "LOW_VOLTAGE",
    2: "HIGH_VOLTAGE",
    4: "LOW_SOC",
    8: "LOW_STARTER_VOLTAGE",
    16: "HIGH_STARTER_VOLTAGE",
    32: "LOW_TEMPERATURE",
    64: "HIGH_TEMPERATURE",
    128: "MID_VOLTAGE",
    256: "OVERLOAD",
    512: "DC_RIPPLE",
    1024: "LOW_V_AC_OUT",
    2048: "HIGH_V_AC_OUT",
    4096: "SHORT_CIRCUIT",
    8192: "BMS_LOCKOUT",
}

_WAIT, _CR, _LABEL, _VALUE, _LF, _CHECKSUM, _HEX = range(7)


class VEDirectParser:
    """Bytes in, checksummed blocks ({label: value}) out. Never raises on any input.

    `stats`: blocks (good), checksum_errors (dropped), garbage (malformed, dropped),
    hex_frames (skipped), partial (the first block after a start or resync, usually joined
    mid-stream, so not counted as a checksum error).
    """

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"blocks": 0, "checksum_errors": 0, "garbage": 0,
                                      "hex_frames": 0, "partial": 0}
        self._state = _WAIT
        self._resume = _WAIT  # the state a HEX frame interrupted
        self._hex_len = 0
        self._sum = 0
        self._label = bytearray()
        self._value = bytearray()
        self._fields: dict[str, str] = {}
        self._pending = ""  # the label whose value is being read
        self._synced = False  # a block has been seen from its true start

    def resync(self) -> None:
        """Forget the block in progress (the port was reopened)."""
        self._restart()
        self._synced = False

    def feed(self, data: bytes) -> list[dict[str, str]]:
        return list(self._feed(data))

    def _restart(self) -> None:
        self._state = _WAIT
        self._sum = 0
        self._label.clear()
        self._value.clear()
        self._fields = {}

    def _garbage(self) -> None:
        self.stats["garbage"] += 1
        self._restart()
        self._synced = False

    def _feed(self, data: bytes) -> Iterator[dict[str, str]]:
        for byte in data:
            state = self._state
            if state == _HEX:
                self._hex_len += 1
                if byte == 0x0A:
                    self.stats["hex_frames"] += 1
                    self._state = self._resume
                elif self._hex_len > MAX_HEX:
                    self._hex_len = 0
                    self._garbage()
                continue
            if byte == 0x3A and state != _CHECKSUM:  # ':' starts a HEX frame
                self._resume, self._state, self._hex_len = state, _HEX, 0
                continue
            if state == _CHECKSUM:
                self._sum = (self._sum + byte) & 0xFF
                block = self._fields
                good = self._sum == 0
                synced = self._synced
                self._restart()
                if good:
                    self.stats["blocks"] += 1
                    self._synced = True
                    yield block
                elif synced:
                    self.stats["checksum_errors"] += 1
                else:
                    self.stats["partial"] += 1
                    self._synced = True  # the next block starts at its true start
                continue
            self._sum = (self._sum + byte) & 0xFF
            if state == _WAIT:
                if byte == 0x0D:
                    self._sum = 0x0D
                    self._state = _CR
                continue
            if state == _CR:
                if byte == 0x0A:
                    self._state = _LABEL
                elif byte != 0x0D:
                    self._state = _WAIT
                continue
            if state == _LF:
                if byte == 0x0A:
                    self._state = _LABEL
                else:
                    self._garbage()
                continue
            if state == _LABEL:
                if byte == 0x09:
                    label = self._label.decode("ascii")
                    self._label.clear()
                    self._state = _CHECKSUM if label == "Checksum" else _VALUE
                    self._pending = label
                elif 0x21 <= byte <= 0x7E and len(self._label) < MAX_LABEL:
                    self._label.append(byte)
                else:
                    self._garbage()
                continue
            if state == _VALUE:
                if byte == 0x0D:
                    if len(self._fields) >= MAX_FIELDS:
                        self._garbage()
                        continue
                    self._fields[self._pending] = self._value.decode("ascii")
                    self._value.clear()
                    self._state = _LF
                elif (0x20 <= byte <= 0x7E or byte == 0x09) and len(self._value) < MAX_VALUE:
                    self._value.append(byte)
                else:
                    self._garbage()
                continue


def block_checksum(body: bytes) -> int:
    """The checksum byte a sender appends after `body` (which ends with b"Checksum\\t")."""
    return (-sum(body)) & 0xFF


def values_of(fields: dict[str, str]) -> tuple[dict[str, float], list[str] | None]:
    """Quantities and codes from a device's fields (merged over its blocks)."""
    values: dict[str, float] = {}
    scales = {"V": ("voltage_v", 1000.0), "I": ("current_a", 1000.0),
              "SOC": ("soc_pct", 10.0), "TTG": ("ttg_min", 1.0)}
    for label, (quantity, divisor) in scales.items():
        raw = fields.get(label)
        if raw is None:
            continue
        try:
            number = int(raw)
        except ValueError:
            continue  # "---": a BMV not synchronised yet has no SOC or TTG to give
        if label == "TTG" and number < 0:
            continue  # -1: infinite (charging or no load): nothing to report
        values[quantity] = number / divisor
    codes: list[str] | None = None
    if "AR" in fields or "Alarm" in fields or "ERR" in fields:
        codes = []
        try:
            reasons = int(fields.get("AR", "0"))
        except ValueError:
            reasons = 0
        codes += [name for bit, name in ALARM_REASONS.items() if reasons & bit]
        if fields.get("Alarm", "").upper() == "ON":
            codes.append("ALARM")
        err = fields.get("ERR", "0")
        if err.isdigit() and int(err) != 0:
            codes.append(f"ERR_{int(err)}")
    return values, codes


class BatterySensor:
    """A VE.Direct device on a serial port. `read()` never raises; it returns the latest
    checksummed values once per fresh block, None while the device is unplugged, silent
    or only sending blocks that fail their checksum."""

    def __init__(self, port: str, *, name: str = "battery", baudrate: int = BAUDRATE,
                 interval_s: float = DEFAULT_INTERVAL_S, timeout_s: float = 2.0,
                 clock: Clock | None = None, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 30.0) -> None:
        self.name = name
        self.port = port
        self.baudrate = baudrate
        self.interval_s = interval_s
        self.timeout_s = timeout_s  # a device sends a block a second: silent this long, gone
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.parser = VEDirectParser()
        self.stats: dict[str, int] = {"reads": 0, "samples": 0, "connects": 0,
                                      "reconnects": 0, "connect_failures": 0,
                                      "disconnects": 0, "silent": 0, "errors": 0}
        self._serial: serial.Serial | None = None
        self._fields: dict[str, str] = {}  # merged over the device's blocks
        self._fresh = False  # a good block arrived since the last Sample
        self._last_block: float | None = None  # monotonic time of the last good block
        self._outage = OutageLog(log.warning, f"VE.Direct device at {port}",
                                 backoff_initial_s, backoff_max_s)

    @property
    def connected(self) -> bool:
        return self._serial is not None

    def read(self) -> Sample | None:
        return guarded_read("VE.Direct", self.stats, self._read, self._lost)

    def close(self) -> None:
        self._disconnect()

    def _read(self) -> Sample | None:
        now = time.monotonic()
        if self._serial is None:
            if not self._outage.may_try(now) or not self._connect():
                return None
            self._last_block = time.monotonic()  # give a fresh port its timeout
        assert self._serial is not None
        # Read what waits, and wait for a block up to timeout_s if none is fresh yet.
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                data = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._lost(f"{type(exc).__name__}: {exc}")
                return None
            for block in self.parser.feed(data):
                self._fields.update(block)
                self._fresh = True
                self._last_block = time.monotonic()
            if self._fresh and not self._serial.in_waiting:
                break
            if time.monotonic() >= deadline:
                break
        if not self._fresh:
            assert self._last_block is not None
            if time.monotonic() - self._last_block >= self.timeout_s:
                self.stats["silent"] += 1
                # Silent or only bad blocks: reopening costs nothing and frees a USB
                # adapter that was unplugged without the port noticing.
                self._lost(f"no valid block for {time.monotonic() - self._last_block:.1f} s")
            return None
        self._fresh = False
        values, codes = values_of(self._fields)
        if not values:
            return None
        self._outage.healthy(time.monotonic())
        self.stats["samples"] += 1
        return Sample(ts=self._now(), values=values, codes=codes)

    def _now(self) -> datetime:
        return self.clock.now()

    def _connect(self) -> bool:
        try:
            # timeout: the longest one read() call blocks; a block comes every second.
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0.2)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.stats["connect_failures"] += 1
            self._outage.failed(time.monotonic(), f"{type(exc).__name__}: {exc}")
            return False
        self.parser.resync()
        self._fields = {}  # a replugged port may be another device
        self._fresh = False
        count_connection(self.stats)
        return True

    def _lost(self, reason: str) -> None:
        if self._serial is not None:
            self.stats["disconnects"] += 1
            self._disconnect()
        self._outage.failed(time.monotonic(), reason)

    def _disconnect(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except Exception:  # a vanished device may fail to close
                log.debug("closing %s failed", self.port, exc_info=True)


def from_settings(settings: SensorSettings, clock: Clock, motion: Motion | None) -> BatterySensor:
    assert settings.port is not None  # the config requires it for this type
    return BatterySensor(settings.port, name=settings.sensor_name,
                         baudrate=settings.baudrate or BAUDRATE,
                         interval_s=settings.interval_s or DEFAULT_INTERVAL_S,
                         timeout_s=settings.timeout_s, clock=clock)
