"""Fixes from gpsd's streaming reports, riding through everything gpsd and the network do.

`GpsdSource` asks gpsd to stream (`?WATCH={"enable":true,"json":true}`) and turns each TPV
report into a Fix, as the receiver gave it:

* the fix's time is the receiver's; a TPV with a position but no time is refused (counted
  in `stats["no_time"]`), never dated with the Pi's clock;
* a speed or track gpsd leaves out stays None (not 0 m/s, not due north);
* TPV `status` 8 (gpsd's STATUS_SIM; 7 is STATUS_TIME, a surveyed timing fix) marks the fix
  `simulated`, which the filter refuses;
* `acc`: the error gpsd reports, per axis (max of `epx`, `epy`) else horizontal (`eph`):
  the receiver's own estimate where its protocol has one (u-blox: hAcc, as eph), gpsd's
  model of the receiver's dilution of precision otherwise (gpsd 3.22: 15 m x xdop/ydop,
  19 m x HDOP). When gpsd gives none but its SKY report has the receiver's HDOP, HDOP x
  UERE_95_M, doubled for a 2D fix, whose assumed altitude the HDOP leaves out. A receiver
  that says neither leaves `acc` None: only the jump check judges it.

gpsd may report one time several times as a cycle's sentences come in (at start-up, each
NMEA sentence: RMC gives a 2D fix, GGA then makes it 3D...): a fix is held until gpsd reports
a later time, and the last report of a time is the fix. That costs one reporting cycle of
latency (a second for most receivers) and never hands out half a cycle.

`read()` returns the newest reading not yet read (an older unread fix is counted as
`superseded`; a "no fix" never replaces an unread fix), waiting for one up to `timeout_s`
when none is pending: the agent's loop is thus paced by the receiver. It never raises and
never blocks much longer than `timeout_s`:

* connection and every wait are bounded by `timeout_s`; a gpsd that has a receiver but says
  nothing for that long is taken as hung and the connection dropped;
* any failure closes the connection; reconnection is tried again on later reads with an
  exponential backoff (0.5 s doubling up to 30 s), so a down gpsd costs a read nothing;
* no receiver (gpsd lists no device) gives a Fix with mode 0 at once, a receiver without a
  fix the TPV's mode 1, both with NaN lat/lon;
* what is not gpsd's JSON is counted as garbage: before gpsd's VERSION greeting it means the
  port is not gpsd's (connection dropped); after it, the line is skipped;
* one WARNING when an outage starts and one when gpsd is back, not one per read;
* `stats` counts what happened, for the health report.

Why a reader of our own: gpsd-py3 (the design card's) only polls (`?POLL`), which merges
half-read cycles and hides missing fields. gpsd's own client is not on PyPI in a form that
runs here: `gps` 3.19 calls `json.loads(encoding=...)`, gone since Python 3.9, and `gpsd`
is an unofficial fork without support whose errors derive from BaseException. `gpsdclient`
reads through `socket.makefile`, whose buffer is undefined after a timeout, so a bounded
read would cost the connection every time gpsd is quiet. gpsd's protocol is JSON lines over
TCP: a line buffer and `json.loads` are all it takes.
"""

from __future__ import annotations

import json
import logging
import math
import select
import socket
import time
from datetime import UTC, datetime
from typing import Any

from medicobus.clock import Clock, SystemClock
from onboard.telemetry.fix import Fix
from onboard.telemetry.guard import count_connection, guarded_read

log = logging.getLogger(__name__)

WATCH = b'?WATCH={"enable":true,"json":true}\n'
STATUS_SIMULATED = 8  # TPV status: gpsd's STATUS_SIM (gps.h); 7 is STATUS_TIME, surveyed in
# Metres of 95 % horizontal error per unit of HDOP, gpsd's own H_UERE_NO_DGPS
# (libgpsd_core.c): the figure gpsd itself multiplies the receiver's DOPs by.
UERE_95_M = 15.0
TWO_D_FACTOR = 2.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
MAX_LINE_BYTES = 64 * 1024  # gpsd's longest reports (RTCM3, many satellites) are a few kB
RECV_BYTES = 8192
MAX_RECVS_PER_READ = 64  # bounds one read's work should gpsd flood us


class _Garbage(Exception):
    """A line that is not the gpsd JSON we expect."""


class _Closed(Exception):
    """The other end closed the connection."""


class GpsdSource:
    """A GpsSource streaming from gpsd at host:port. `read()` never raises and never blocks
    much longer than `timeout_s`. Meant to be read from one thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2947,
        timeout_s: float = 3.0,
        clock: Clock | None = None,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        # Dates only readings without a position (no receiver, no fix, no time from gpsd):
        # the filter drops them first, so their time orders nothing.
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stats: dict[str, int] = {
            "reads": 0,
            "fixes": 0,
            "no_fix": 0,
            "no_time": 0,
            "superseded": 0,
            "connects": 0,
            "reconnects": 0,
            "connect_failures": 0,
            "disconnects": 0,
            "timeouts": 0,
            "garbage": 0,
            "errors": 0,
        }
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._greeted = False  # gpsd's VERSION line came
        self._watching = False  # gpsd answered our WATCH (after listing its devices)
        self._devices: set[str] = set()
        self._hdop: float | None = None  # the receiver's, from the last SKY report
        self._held: Fix | None = None  # the newest fix, until gpsd reports a later time
        self._pending: Fix | None = None  # the newest reading not yet read
        self._backoff_s = backoff_initial_s
        self._next_attempt = 0.0  # time.monotonic() before which we do not try to connect
        self._outage_since: float | None = None  # monotonic start of the current outage

    # -- the GpsSource interface ------------------------------------------------------

    def read(self) -> Fix | None:
        return guarded_read("gpsd", self.stats, self._read, self._lost)

    def close(self) -> None:
        self._disconnect()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> Fix | None:
        deadline = time.monotonic() + self.timeout_s
        if self._sock is None and not self._connect():
            return None
        try:
            heard = self._receive(0)  # what came since the last read: the newest wins
            while True:
                self._take_lines()
                reading = self._next_reading()
                if reading is not None:
                    return reading
                budget = deadline - time.monotonic()
                if budget <= 0 or not self._receive(budget):
                    break
                heard = True
        except _Closed:
            self._lost("connection closed by gpsd")
            return None
        except _Garbage as exc:
            self.stats["garbage"] += 1
            self._lost(f"not gpsd: {exc}")
            return None
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            return None
        if not heard:
            self.stats["timeouts"] += 1
            self._lost(f"no report within {self.timeout_s:g} s")
        return None

    def _next_reading(self) -> Fix | None:
        if self._pending is not None:
            reading, self._pending = self._pending, None
        elif self._watching and not self._devices:
            reading = Fix(ts=self.clock.now(), lat=math.nan, lon=math.nan, mode=0)
        else:
            return None
        self.stats["fixes" if reading.has_fix else "no_fix"] += 1
        return reading

    def _receive(self, wait_s: float) -> bool:
        """Take what gpsd sent, waiting up to `wait_s` for the first bytes; False when
        nothing came. Raises _Closed or OSError."""
        sock = self._sock
        assert sock is not None
        got = False
        for _ in range(MAX_RECVS_PER_READ):
            ready, _, _ = select.select([sock], [], [], 0 if got else wait_s)
            if not ready:
                break
            data = sock.recv(RECV_BYTES)
            if not data:
                raise _Closed()
            self._buffer += data
            got = True
        return got

    def _take_lines(self) -> None:
        """Handle every complete line received. Raises _Garbage when the other end is not
        gpsd (garbage before its greeting, a line without end)."""
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > MAX_LINE_BYTES:
            raise _Garbage(f"a line longer than {MAX_LINE_BYTES} bytes")
        for line in lines:
            if not line.strip():
                continue
            try:
                self._handle(_report(line))
            except _Garbage as exc:
                if not self._greeted:
                    raise
                self.stats["garbage"] += 1
                log.debug("gpsd at %s:%d: skipped %s", self.host, self.port, exc)

    def _handle(self, report: dict[str, Any]) -> None:
        kind = report["class"]
        if not self._greeted:
            if kind != "VERSION":
                raise _Garbage(f"{kind} before gpsd's VERSION greeting")
            self._greeted = True
            self._healthy()
        elif kind == "TPV":
            self._tpv(report)
        elif kind == "SKY":
            self._hdop = _number(report, "hdop")
        elif kind == "DEVICES":
            devices = report.get("devices")
            if not isinstance(devices, list):
                raise _Garbage("DEVICES without a list of devices")
            self._devices = {str(d.get("path")) for d in devices if isinstance(d, dict)}
        elif kind == "DEVICE":
            path = str(report.get("path"))
            if report.get("activated"):
                self._devices.add(path)
            else:  # gpsd closed the device: nothing more will complete the held fix
                self._devices.discard(path)
                self._release()
        elif kind == "WATCH":
            self._watching = True
        elif kind == "ERROR":
            log.warning("gpsd at %s:%d says: %s", self.host, self.port, report.get("message"))

    def _tpv(self, report: dict[str, Any]) -> None:
        mode = report.get("mode")
        if not isinstance(mode, int) or isinstance(mode, bool):
            raise _Garbage(f"TPV with mode {mode!r}")
        ts = parse_gpsd_time(report.get("time"))
        if "time" in report and ts is None:
            raise _Garbage(f"TPV with time {report['time']!r}")
        if mode < 2:
            self._release()
            self._keep(Fix(ts=ts or self.clock.now(), lat=math.nan, lon=math.nan, mode=mode))
            return
        lat, lon = _number(report, "lat"), _number(report, "lon")
        if lat is None or lon is None:
            raise _Garbage(f"TPV in mode {mode} without lat/lon")
        if ts is None:
            self.stats["no_time"] += 1
            return
        if self._held is not None and self._held.ts != ts:
            self._release()
        status = report.get("status")
        self._held = Fix(
            ts=ts, lat=lat, lon=lon, mode=mode,
            speed=_number(report, "speed"), heading=_number(report, "track"),
            acc=self._accuracy(report, mode), simulated=status == STATUS_SIMULATED,
        )  # fmt: skip

    def _release(self) -> None:
        """The held fix is whole: gpsd has moved on from its time."""
        if self._held is not None:
            self._keep(self._held)
            self._held = None

    def _accuracy(self, report: dict[str, Any], mode: int) -> float | None:
        per_axis = [e for e in (_number(report, "epx"), _number(report, "epy")) if e is not None]
        if per_axis:
            return max(per_axis)
        eph = _number(report, "eph")
        if eph is not None:
            return eph
        if self._hdop is not None:
            return self._hdop * UERE_95_M * (TWO_D_FACTOR if mode == 2 else 1.0)
        return None

    def _keep(self, reading: Fix) -> None:
        pending = self._pending
        if pending is not None and pending.has_fix:
            if not reading.has_fix:
                return  # a fix not yet read outweighs a later "no fix", which says nothing
            self.stats["superseded"] += 1
        self._pending = reading

    # -- connection -----------------------------------------------------------------------

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except TimeoutError:
            self.stats["timeouts"] += 1
            failure = f"no answer within {self.timeout_s:g} s"
        except OSError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        else:
            try:
                sock.sendall(WATCH)
            except OSError as exc:
                sock.close()
                failure = f"{type(exc).__name__}: {exc}"
            else:
                self._sock = sock
                count_connection(self.stats)
                return True
        self.stats["connect_failures"] += 1
        self._failed(failure)
        return False

    def _lost(self, reason: str) -> None:
        """A connected source just failed: drop the connection, retry soon."""
        if self._sock is not None:
            self.stats["disconnects"] += 1
            self._disconnect()
            self._backoff_s = self.backoff_initial_s
        self._failed(reason)

    def _failed(self, reason: str) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            log.warning(
                "gpsd at %s:%d unavailable (%s); retrying in the background",
                self.host, self.port, reason,
            )
        else:
            log.debug("gpsd at %s:%d still unavailable: %s", self.host, self.port, reason)
        self._next_attempt = now + self._backoff_s
        self._backoff_s = min(self.backoff_max_s, self._backoff_s * 2)

    def _healthy(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "gpsd at %s:%d back after %.1f s",
                self.host, self.port, time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        self._backoff_s = self.backoff_initial_s

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        self._buffer = b""
        self._greeted = self._watching = False
        self._devices = set()
        self._hdop = None
        self._held = self._pending = None
        if sock is not None:
            sock.close()


def _report(line: bytes) -> dict[str, Any]:
    """One line of gpsd's JSON as a report with a class. Raises _Garbage."""
    try:
        report = json.loads(line)
    except ValueError:  # also UnicodeDecodeError
        raise _Garbage(_excerpt(line)) from None
    if not isinstance(report, dict) or not isinstance(report.get("class"), str):
        raise _Garbage(f"not a gpsd report: {_excerpt(line)}")
    return report


def _number(report: dict[str, Any], key: str) -> float | None:
    """A numeric field of a report, None when gpsd left it out. Raises _Garbage."""
    value = report.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Garbage(f"{report['class']} {key} = {value!r}")
    return float(value)


def parse_gpsd_time(value: object) -> datetime | None:
    """gpsd's ISO 8601 'time' ('2024-03-04T08:00:07.000Z') as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def _excerpt(data: bytes, limit: int = 60) -> str:
    text = data.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
