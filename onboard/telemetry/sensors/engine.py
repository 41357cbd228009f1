"""The engine: OBD-II through an ELM327 adapter, with python-OBD (`obd` on PyPI).

Quantities: speed_kmh, rpm, coolant_c, fuel_pct, battery_v (the control module's voltage,
else the adapter's own reading of pin 16), and the stored trouble codes ("P0301") as codes.

python-OBD was written for a laptop in a parked car, not for a box that stays plugged in
for years. `EngineSensor` wraps it so that `read()` never raises and never hangs:

* python-OBD opens the port itself with a 10 s read timeout and, on a silent adapter,
  retries each read for a second more: a dead adapter could hold a read for minutes. While
  it connects we lend its module a `serial` whose ports are `_GuardedPort`s: a port that
  raises SerialException when nothing at all
  came `timeout_s` after a command (silence), when an answer runs past `answer_max_s`, or
  past `answer_max_bytes` without the ELM's '>' prompt (garbage). python-OBD catches that,
  marks itself NOT_CONNECTED, and we reconnect with a backoff (0.5 s doubling up to 30 s).
* Unplugged (the port vanishes or errors): the same path.
* Adapter alive, car silent (ignition off): python-OBD stops at "OBD connected"; we report
  the adapter's battery voltage (worth watching when parked) and try the car again every
  `car_retry_s`. A car that stops answering mid-connection (engine off) is dropped after
  `CAR_SILENT_READS` reads without a single answer, and found again the same way.
* Trouble codes (mode 03) are asked for at connection and then every `dtc_interval_s`.

One WARNING when the adapter goes away and one when it is back; `stats` counts the rest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import obd
import serial
from obd import OBDStatus

from medicobus.clock import Clock, SystemClock
from onboard.config import SensorSettings
from onboard.telemetry.guard import count_connection, guarded_read
from onboard.telemetry.sensors import Motion, OutageLog, Sample

log = logging.getLogger(__name__)
# python-OBD logs every failed read and connection attempt at WARNING and above through a
# handler of its own on stderr; our own log says once when the adapter is gone and back.
logging.getLogger("obd").setLevel(logging.CRITICAL + 1)

DEFAULT_INTERVAL_S = 5.0
CAR_SILENT_READS = 3
POLL_S = 0.05  # the underlying port's read timeout: how often the guard looks at the clock

# quantity -> (python-OBD command name, unit to convert to)
_PIDS: dict[str, tuple[str, str]] = {
    "speed_kmh": ("SPEED", "kilometer_per_hour"),
    "rpm": ("RPM", "revolutions_per_minute"),
    "coolant_c": ("COOLANT_TEMP", "degree_Celsius"),
    "fuel_pct": ("FUEL_LEVEL", "percent"),
}

_lend_lock = threading.Lock()  # python-OBD's module global `serial` is swapped under it


class _Garbage(serial.SerialException):
    """The adapter talked, but not an ELM327 answer (no prompt within bounds)."""


class _Silent(serial.SerialException):
    """The adapter said nothing at all after a command."""


class _GuardedPort:
    """A pyserial port that bounds every answer: silence, time and size (see module doc).

    python-OBD sets `timeout` and reads with pyserial's semantics (up to `size` bytes or
    until the timeout); the guard reads the real port in POLL_S steps so that it can
    give up on its own terms in between.
    """

    def __init__(self, port: serial.SerialBase, silent_s: float, answer_max_s: float,
                 answer_max_bytes: int, on_trouble: Callable[[str], None]) -> None:
        self._port = port
        self.timeout: float | None = port.timeout
        port.timeout = POLL_S
        self.silent_s = silent_s
        self.answer_max_s = answer_max_s
        self.answer_max_bytes = answer_max_bytes
        self._on_trouble = on_trouble
        self._written_at: float | None = None
        self._received = 0

    # What python-OBD uses of a pyserial port, passed through.
    @property
    def baudrate(self) -> int:
        return int(self._port.baudrate)

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._port.baudrate = value

    @property
    def in_waiting(self) -> int:
        return int(self._port.in_waiting)

    @property
    def portstr(self) -> str:
        return str(self._port.portstr)

    def flushInput(self) -> None:  # noqa: N802 - pyserial's (deprecated) name
        self._port.reset_input_buffer()

    def flushOutput(self) -> None:  # noqa: N802
        self._port.reset_output_buffer()

    def flush(self) -> None:
        self._port.flush()

    def close(self) -> None:
        self._port.close()

    def write(self, data: bytes) -> int | None:
        self._written_at = time.monotonic()
        self._received = 0
        return self._port.write(data)

    def read(self, size: int = 1) -> bytes:
        started = time.monotonic()
        out = bytearray()
        while len(out) < size:
            chunk = self._port.read(size - len(out))
            out += chunk
            # Judged after reading: python-OBD sleeps after some commands before it reads,
            # and what arrived meanwhile is an answer, not silence.
            self._check(len(out))
            if self.timeout is not None and time.monotonic() - started >= self.timeout:
                break
            if not chunk and self.timeout == 0:
                break
        self._received += len(out)
        return bytes(out)

    def _check(self, pending: int) -> None:
        if self._written_at is None:
            return
        waited = time.monotonic() - self._written_at
        received = self._received + pending
        if received == 0 and waited > self.silent_s:
            self._on_trouble("silent")
            raise _Silent(f"no answer within {self.silent_s:g} s")
        if waited > self.answer_max_s:
            self._on_trouble("garbage")
            raise _Garbage(f"answer still going after {self.answer_max_s:g} s")
        if received > self.answer_max_bytes:
            self._on_trouble("garbage")
            raise _Garbage(f"{received} bytes without an ELM327 prompt")


class _SerialLender:
    """Stands in for the `serial` module inside python-OBD while it connects."""

    SerialException = serial.SerialException
    PARITY_NONE = serial.PARITY_NONE

    def __init__(self, make: Callable[[serial.SerialBase], _GuardedPort]) -> None:
        self._make = make
        self.port: _GuardedPort | None = None

    def serial_for_url(self, url: str, *args: Any, **kwargs: Any) -> _GuardedPort:
        self.port = self._make(serial.serial_for_url(url, *args, **kwargs))
        return self.port


class EngineSensor:
    """An ELM327 adapter at `port`. `read()` never raises."""

    def __init__(self, port: str, *, name: str = "engine", baudrate: int | None = None,
                 protocol: str | None = None, timeout_s: float = 2.0,
                 interval_s: float = DEFAULT_INTERVAL_S, clock: Clock | None = None,
                 answer_max_s: float = 20.0, answer_max_bytes: int = 8192,
                 car_retry_s: float = 30.0, dtc_interval_s: float = 60.0,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        self.name = name
        self.port = port
        self.baudrate = baudrate  # None: python-OBD probes the adapter's usual rates
        self.protocol = protocol  # None: the ELM327 searches (ATSP0)
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.answer_max_s = answer_max_s  # a protocol search takes a few seconds
        self.answer_max_bytes = answer_max_bytes
        self.car_retry_s = car_retry_s
        self.dtc_interval_s = dtc_interval_s
        self.stats: dict[str, int] = {
            "reads": 0, "samples": 0, "connects": 0, "reconnects": 0,
            "connect_failures": 0, "disconnects": 0, "silent": 0, "garbage": 0,
            "car_silent": 0, "ignition_off": 0, "dtc_reads": 0, "errors": 0,
        }
        self._conn: obd.OBD | None = None
        self._car = False  # the car answered (not only the adapter)
        self._car_silent_reads = 0
        self._car_retry_at = 0.0
        self._codes: list[str] | None = None
        self._dtc_due = 0.0
        self._outage = OutageLog(log.warning, f"ELM327 adapter at {port}",
                                 backoff_initial_s, backoff_max_s)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def car_connected(self) -> bool:
        return self._conn is not None and self._car

    def read(self) -> Sample | None:
        return guarded_read("OBD", self.stats, self._read, self._lost)

    def close(self) -> None:
        self._disconnect()

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> Sample | None:
        now = time.monotonic()
        if self._conn is not None and not self._car and now >= self._car_retry_at:
            self._disconnect()  # ignition may be on now: a new connection searches again
        if self._conn is None and (not self._outage.may_try(now) or not self._connect()):
            return None
        conn = self._conn
        assert conn is not None
        adapter_v = self._quantity(conn, obd.commands.ELM_VOLTAGE, "volt")
        if conn.status() == OBDStatus.NOT_CONNECTED or adapter_v is None:
            self._lost("no answer from the adapter")
            return None
        values: dict[str, float] = {}
        if self._car:
            for quantity, (command, unit) in _PIDS.items():
                value = self._quantity(conn, obd.commands[command], unit)
                if value is not None:
                    values[quantity] = value
            module_v = self._quantity(conn, obd.commands.CONTROL_MODULE_VOLTAGE, "volt")
            if module_v is not None:
                values["battery_v"] = module_v
            if conn.status() == OBDStatus.NOT_CONNECTED:
                self._lost("the adapter went away mid-read")
                return None
            self._read_codes(conn)
            self._car_answered(bool(values))
        else:
            # Ignition off: the engine is not turning and the bus is not driving. Saying so
            # replaces the last speed seen, which the ground would otherwise keep as current.
            values.update(rpm=0.0, speed_kmh=0.0)
        values.setdefault("battery_v", adapter_v)
        self._outage.healthy(time.monotonic())
        self.stats["samples"] += 1
        return Sample(ts=self.clock.now(), values=values,
                      codes=list(self._codes) if self._car and self._codes is not None
                      else None)

    def _quantity(self, conn: obd.OBD, command: obd.OBDCommand, unit: str) -> float | None:
        response = conn.query(command)
        if response.is_null() or response.value is None:
            return None
        try:
            return float(response.value.to(unit).magnitude)
        except Exception:  # a decoder's odd value (a str, a wrong unit): not a number
            self.stats["garbage"] += 1
            return None

    def _read_codes(self, conn: obd.OBD) -> None:
        now = time.monotonic()
        if now < self._dtc_due:
            return
        response = conn.query(obd.commands.GET_DTC)
        if response.is_null() or not isinstance(response.value, list):
            return  # keep the last codes we knew: an unanswered request clears nothing
        self.stats["dtc_reads"] += 1
        self._dtc_due = now + self.dtc_interval_s
        self._codes = sorted({str(code) for code, _description in response.value})

    def _car_answered(self, answered: bool) -> None:
        if answered:
            self._car_silent_reads = 0
            return
        self.stats["car_silent"] += 1
        self._car_silent_reads += 1
        if self._car_silent_reads >= CAR_SILENT_READS:
            log.warning("%s: the car stopped answering (ignition off?); "
                        "watching the adapter's voltage", self.port)
            self._car = False  # keep the adapter; the car is searched for again later
            self._car_retry_at = time.monotonic() + self.car_retry_s
            self._codes = None

    # -- connection -----------------------------------------------------------------------

    def _trouble(self, kind: str) -> None:
        self.stats[kind] += 1

    def _guard(self, port: serial.SerialBase) -> _GuardedPort:
        return _GuardedPort(port, self.timeout_s, self.answer_max_s, self.answer_max_bytes,
                            self._trouble)

    def _connect(self) -> bool:
        lender = _SerialLender(self._guard)
        conn: obd.OBD | None = None
        failure: str | None = None
        with _lend_lock:
            saved = obd.elm327.serial
            obd.elm327.serial = lender
            try:
                # The link (/dev/serial/by-id/...) is resolved at each connection: after a
                # replug it may point elsewhere, and python-OBD recognises a pseudo-terminal
                # (a test's emulator) by its /dev/pts name and skips probing its baud rate.
                conn = obd.OBD(os.path.realpath(self.port), baudrate=self.baudrate,
                               protocol=self.protocol, fast=False, timeout=self.timeout_s)
            except Exception as exc:  # python-OBD lets some port errors through
                failure = f"{type(exc).__name__}: {exc}"
            finally:
                obd.elm327.serial = saved
        status = conn.status() if conn is not None else OBDStatus.NOT_CONNECTED
        if conn is None or status in (OBDStatus.NOT_CONNECTED, OBDStatus.ELM_CONNECTED):
            # ELM_CONNECTED: it answered AT commands but read no voltage on pin 16, so it
            # is not plugged into a car; not a usable adapter either.
            self._close_quietly(conn, lender)
            self.stats["connect_failures"] += 1
            self._outage.failed(time.monotonic(),
                                failure or f"the adapter answered: {status}")
            return False
        self._conn = conn
        self._car = status == OBDStatus.CAR_CONNECTED
        self._car_silent_reads = 0
        self._dtc_due = 0.0
        if not self._car:
            self.stats["ignition_off"] += 1
            self._car_retry_at = time.monotonic() + self.car_retry_s
            self._codes = None
        count_connection(self.stats)
        log.info("ELM327 at %s: %s%s", self.port, status,
                 f" ({conn.protocol_name()})" if self._car else "")
        return True

    def _lost(self, reason: str) -> None:
        if self._conn is not None:
            self.stats["disconnects"] += 1
            self._disconnect()
        self._outage.failed(time.monotonic(), reason)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self._car = False
        self._close_quietly(conn, None)

    @staticmethod
    def _close_quietly(conn: obd.OBD | None, lender: _SerialLender | None) -> None:
        try:
            if conn is not None:
                conn.close()  # writes ATZ, then closes the port
            elif lender is not None and lender.port is not None:
                lender.port.close()
        except Exception:  # a vanished adapter may fail to take the ATZ or to close
            log.debug("closing the OBD connection failed", exc_info=True)
        if lender is not None and lender.port is not None:
            try:
                lender.port.close()  # python-OBD keeps the port of a failed connection open
            except Exception:
                log.debug("closing the OBD port failed", exc_info=True)


def from_settings(settings: SensorSettings, clock: Clock, motion: Motion | None) -> EngineSensor:
    assert settings.port is not None  # the config requires it for this type
    return EngineSensor(settings.port, name=settings.sensor_name, baudrate=settings.baudrate,
                        protocol=settings.protocol, timeout_s=settings.timeout_s,
                        interval_s=settings.interval_s or DEFAULT_INTERVAL_S, clock=clock)
